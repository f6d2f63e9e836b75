"""`validate` names every problem in one run: a mistake in one stage (config, issue, articles,
lists, templates) no longer hides those of the stages after it (audit 14, area G, F1)."""

from __future__ import annotations

from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, edit

ISSUE_ID = SAMPLE_ISSUE.rsplit("/", 1)[1]
WARNING = ("mirage.yaml:27: warning: no confirmed 'fr' translation of the EU disclaimer; fr "
           "readers get the en text (add disclaimer.translations.fr with statement and text "
           "from your grant agreement; never machine-translate)")
CONCURRENCY = ("mirage.yaml:21: 'transport.concurrency' must be a whole number from 1 to 100; "
               "you wrote 'four'")
NO_TITLE = (f"{SAMPLE_ISSUE}/online-trainings.md:2: missing required key 'title' (add "
            "'title:')")
NO_LIST = (f"{SAMPLE_ISSUE}/issue.yaml:12: list 'nosuch' not found (create lists/nosuch.csv "
           "or .yaml, or fix the name)")
BAD_ROW = ("lists/subscribers.csv:7: 'bad-row' is not a valid e-mail address: An email "
           "address must have an @-sign. (correct the address or delete the row)")
UNDEFINED = ("templates/newsletter.html.j2:80: undefined template variable: 'nope' is "
             "undefined (fix the name, or define it; see docs/guide/templates.md for the "
             "variables templates get)")


def _no_title(project: Path) -> None:
    edit(project / SAMPLE_ISSUE / "online-trainings.md",
         "title: Training materials now free to reuse\n", "")


def test_four_mistakes_in_four_stages_in_one_run(project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: four")
    # nosuch beside subscribers: the list that is found is still read, row by row
    edit(project / SAMPLE_ISSUE / "issue.yaml", "list: subscribers", "list: [subscribers, nosuch]")
    _no_title(project)
    with (project / "lists/subscribers.csv").open("a", encoding="utf-8") as handle:
        handle.write("bad-row,X,en,\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    # in the order of the stages: config, issue and articles, lists, rows
    assert result.err.splitlines() == [WARNING, CONCURRENCY, NO_TITLE, NO_LIST, BAD_ROW]
    assert result.out.splitlines() == [
        f"{ISSUE_ID}: 4 error(s), 1 warning(s); languages en, fr; 5 recipient(s) (en: 3, "
        "fr: 2)"]


def test_an_article_error_does_not_hide_a_missing_list(project: Path, run_cli: RunCli) -> None:
    edit(project / SAMPLE_ISSUE / "issue.yaml", "list: subscribers", "list: nosuch")
    _no_title(project)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert result.err.splitlines() == [WARNING, NO_TITLE, NO_LIST]
    assert result.out.startswith(f"{ISSUE_ID}: 2 error(s), 1 warning(s); languages en, fr; "
                                 "0 recipient(s)")


def test_templates_are_checked_beside_a_transport_error(project: Path,
                                                         run_cli: RunCli) -> None:
    """The transport plays no part in rendering: a bad concurrency leaves the templates and
    the lists to check, with the settings that loaded."""
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: four")
    edit(project / "templates/newsletter.html.j2", "{{ t.why }}", "{{ nope }}")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert result.err.splitlines() == [WARNING, CONCURRENCY, UNDEFINED]
    assert result.out.splitlines() == [
        f"{ISSUE_ID}: 2 error(s), 1 warning(s); languages en, fr; 5 recipient(s) (en: 3, "
        "fr: 2)"]


def test_templates_are_checked_beside_an_article_error(project: Path,
                                                       run_cli: RunCli) -> None:
    """Rendered without the article that has errors: the template's own mistake is named in
    the same run."""
    _no_title(project)
    edit(project / "templates/newsletter.html.j2", "{{ t.why }}", "{{ nope }}")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert result.err.splitlines() == [WARNING, NO_TITLE, UNDEFINED]


def test_an_issue_yaml_error_leaves_the_templates_unchecked(project: Path,
                                                           run_cli: RunCli) -> None:
    """Without a subject there is nothing to render them with: the summary says so."""
    edit(project / SAMPLE_ISSUE / "issue.yaml", '  en: "MIraGE news:',
         '  en: "MIraGE\\r\\nnews:')
    edit(project / "templates/newsletter.html.j2", "{{ t.why }}", "{{ nope }}")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert result.err.splitlines()[-1].startswith(f"{SAMPLE_ISSUE}/issue.yaml:2: 'subject' (en)")
    assert UNDEFINED not in result.err
    assert result.out.strip().endswith("; not checked: templates and disclaimer (fix the "
                                       "errors above first)")


def test_unreadable_config_says_what_was_not_checked(project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  name: MIraGE", "  name: [MIraGE")
    _no_title(project)  # not read: without settings, the issue's language is unknown
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert result.err.splitlines() == [
        "mirage.yaml:5: this '[' is never closed (add the closing ']', or put the value in "
        "quotes)"]
    assert result.out.splitlines() == [
        f"{ISSUE_ID}: 1 error(s), 0 warning(s); not checked: issue, articles, lists, "
        "templates and disclaimer (fix the errors above first)"]


def test_preview_and_send_name_every_problem_and_send_nothing(project: Path,
                                                              run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: four")
    edit(project / SAMPLE_ISSUE / "issue.yaml", "list: subscribers", "list: nosuch")
    _no_title(project)
    for command in (("preview", SAMPLE_ISSUE), ("send", SAMPLE_ISSUE, "--yes")):
        result = run_cli(*command)
        assert result.code == 2, (command, result.err)
        assert result.err.splitlines() == [CONCURRENCY, NO_TITLE, NO_LIST], command
        assert result.out == "", command
    assert not (project / "preview").exists()
    outbox = project / "outbox"
    assert not outbox.exists() or not any(path.is_file() for path in outbox.rglob("*"))


NOT_UTF8 = ("lists/subscribers.csv:7: not valid UTF-8 (save the file as UTF-8 (in a "
            "spreadsheet: 'CSV UTF-8'))")
YAML_ROW = ("lists/partners.yaml:2: 'bad-row' is not a valid e-mail address: An email address "
            "must have an @-sign. (correct the address or delete the row)")


def _windows_row(project: Path) -> None:
    """One row as Excel or Notepad saves it on Windows (Windows-1252)."""
    with (project / "lists/subscribers.csv").open("ab") as handle:
        handle.write(b"ren\xe9e@example.org,Ren\xe9e Lef\xe8vre,fr,\r\n")


def test_an_unreadable_list_is_one_problem_among_the_others(project: Path,
                                                            run_cli: RunCli) -> None:
    """A list that stops reading at one line no longer hides every other problem and the
    summary (audit 15j, r6): the article error, the next list's bad row, and what was left
    unchecked are all said."""
    _no_title(project)
    _windows_row(project)
    (project / "lists/partners.yaml").write_text(
        "subscribers:\n  - email: bad-row\n    name: X\n", encoding="utf-8")
    edit(project / SAMPLE_ISSUE / "issue.yaml", "list: subscribers",
         "list: [subscribers, partners]")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert result.err.splitlines() == [WARNING, NO_TITLE, NOT_UTF8, YAML_ROW]
    assert result.out.splitlines() == [
        f"{ISSUE_ID}: 3 error(s), 1 warning(s); not checked: recipients, templates and "
        "disclaimer (fix the errors above first)"]


def test_preview_and_send_name_an_unreadable_list_beside_the_rest(project: Path,
                                                                  run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: four")
    _no_title(project)
    _windows_row(project)
    for command in (("preview", SAMPLE_ISSUE), ("send", SAMPLE_ISSUE, "--yes"),
                    ("send", SAMPLE_ISSUE, "--dry-run")):
        result = run_cli(*command)
        assert result.code == 2, (command, result.err)
        assert result.err.splitlines() == [CONCURRENCY, NO_TITLE, NOT_UTF8], command
        assert result.out == "", command
    assert not (project / "preview").exists()
    outbox = project / "outbox"
    assert not outbox.exists() or not any(path.is_file() for path in outbox.rglob("*"))
