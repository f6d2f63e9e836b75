"""Every class of input mistake: exit 2, one exact `path:line: message` line, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit

CASES = [
    pytest.param(
        "mirage.yaml", "  contact: info", "  contakt: info",
        "mirage.yaml:7: unknown key 'project.contakt' (known keys here: contact, language, "
        "name, website)", id="unknown-key"),
    pytest.param(
        "mirage.yaml", "  contact: info@mirageproject.eu\n", "",
        "mirage.yaml:5: missing required key 'project.contact' (add 'contact:')",
        id="missing-key"),
    pytest.param(
        "mirage.yaml", "  concurrency: 4", "  concurrency: four",
        "mirage.yaml:21: 'transport.concurrency' must be a whole number from 1 to 100; you "
        "wrote 'four'",
        id="wrong-type"),
    pytest.param(
        "mirage.yaml", "  max_attempts: 5", "  max_attempts: 5\n  password: hunter2",
        "mirage.yaml:26: 'transport.password' puts a secret in the config file (remove it; put "
        "the value in an environment variable and name that variable with "
        "'transport.password_env')", id="password-key"),
    pytest.param(
        "mirage.yaml", "  name: MIraGE", "  name: [MIraGE",
        "mirage.yaml:5: this '[' is never closed (add the closing ']', or put the value in "
        "quotes)", id="yaml-syntax"),
    pytest.param(
        f"{SAMPLE_ISSUE}/issue.yaml", "  - online-trainings.md", "  - missing.md",
        f"{SAMPLE_ISSUE}/issue.yaml:15: article file 'missing.md' not found (create "
        f"{SAMPLE_ISSUE}/missing.md or fix the name)", id="missing-article"),
    pytest.param(
        "lists/subscribers.csv", "peter.novak@example.org", "peter.novak@@example.org",
        "lists/subscribers.csv:5: 'peter.novak@@example.org' is not a valid e-mail address: The "
        "part after the @-sign contains invalid characters: '@'. (correct the address or delete "
        "the row)", id="invalid-address"),
    pytest.param(
        "lists/subscribers.csv", "Jean Dupont,fr", "Jean Dupont,xx",
        "lists/subscribers.csv:3: lang 'xx' is not a known language code (use an ISO 639-1 code "
        "such as en, fr or pt-BR)", id="unknown-language"),
    pytest.param(
        "lists/subscribers.csv", "Jean Dupont,fr", "Jean Dupont,french",
        "lists/subscribers.csv:3: lang 'french' is not a language code (use an ISO 639-1 code "
        "such as en, fr or pt-BR)", id="not-a-language-code"),
    pytest.param(
        "lists/subscribers.csv", "sofia.rossi@example.org,,en,",
        'sofia.rossi@example.org,"Sofia\nBcc: all@example.org",en,',
        "lists/subscribers.csv:6: 'name' contains a line break (CR/LF), which would break the "
        "message headers (remove the line break from this row)", id="crlf-in-list"),
    pytest.param(
        f"{SAMPLE_ISSUE}/issue.yaml", '  en: "MIraGE news:',
        '  en: "MIraGE\\r\\nBcc: x@y.org news:',
        f"{SAMPLE_ISSUE}/issue.yaml:2: 'subject' (en) contains a line break (CR/LF), which "
        "would break the message headers (keep it on one line)", id="crlf-in-subject"),
    pytest.param(
        "templates/newsletter.html.j2", "{{ t.why }}", "{{ t.why }} {{ unknown_var }}",
        "templates/newsletter.html.j2:80: undefined template variable: 'unknown_var' is "
        "undefined (fix the name, or define it; see docs/guide/templates.md for the variables "
        "templates get)",
        id="undefined-variable"),
    pytest.param(
        "templates/newsletter.html.j2", "{{ recipient.greeting }}", "{{ recipient.nosuch }}",
        "templates/newsletter.html.j2:62: undefined template variable: recipient has no field "
        "'nosuch' (known: email, greeting, name, organisation) (fix the name, or define it; see "
        "docs/guide/templates.md for the variables templates get)", id="undefined-recipient-field"),
    pytest.param(
        "templates/newsletter.html.j2", "{% endfor %}", "{% endfr %}",
        "templates/newsletter.html.j2:74: template syntax error: Encountered unknown tag "
        "'endfr'. Jinja was looking for the following tags: 'endfor' or 'else'. The innermost "
        "block that needs to be closed is 'for'.", id="template-syntax"),
    pytest.param(
        f"{SAMPLE_ISSUE}/partners-meeting.md", "date: 2021-10-15", "date: 15/10/2021",
        f"{SAMPLE_ISSUE}/partners-meeting.md:3: 'date' '15/10/2021' is not a date (write it as "
        "YYYY-MM-DD)", id="bad-article-date"),
    pytest.param(
        f"{SAMPLE_ISSUE}/partners-meeting.md", "title: MIraGE partners' meeting, October 2021\n",
        "", f"{SAMPLE_ISSUE}/partners-meeting.md:2: missing required key 'title' (add 'title:')",
        id="article-without-title"),
    pytest.param(
        f"{SAMPLE_ISSUE}/issue.yaml", "list: subscribers", "list: members",
        f"{SAMPLE_ISSUE}/issue.yaml:12: list 'members' not found (create lists/members.csv or "
        ".yaml, or fix the name)", id="missing-list"),
    pytest.param(  # the fix said was "create lists/subscribers.csv.csv"
        f"{SAMPLE_ISSUE}/issue.yaml", "list: subscribers", "list: subscribers.csv",
        f"{SAMPLE_ISSUE}/issue.yaml:12: list 'subscribers.csv' is a file name, not a list name "
        "(give the list's name without the extension: 'subscribers' for "
        "lists/subscribers.csv)", id="list-with-extension"),
    pytest.param(
        f"{SAMPLE_ISSUE}/issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
        "send_at: 2021-10-29 09:00",
        f"{SAMPLE_ISSUE}/issue.yaml:16: 'send_at' '2021-10-29 09:00' is not an ISO 8601 time "
        "with a time zone (write it like 2026-12-01T09:00:00+01:00)", id="send-at-no-zone"),
    pytest.param(  # a subject is text: the braces would reach every reader as written
        f"{SAMPLE_ISSUE}/issue.yaml", "  en: \"MIraGE news: final",
        "  en: \"{{ recipient.name }}, final",
        f"{SAMPLE_ISSUE}/issue.yaml:2: 'subject' (en) holds template syntax "
        "({{ recipient.name }}), which the subject line does not run: every reader would get "
        "it as written (write the text itself; personal words belong in the templates "
        "(templates/newsletter.html.j2 and .txt.j2))", id="subject-template-syntax"),
    pytest.param(
        f"{SAMPLE_ISSUE}/issue.yaml", "  fr: Lettre d'information MIraGE",
        "  fr: Lettre {% if x %}MIraGE",
        f"{SAMPLE_ISSUE}/issue.yaml:6: 'title' (fr) holds template syntax ({{% if x %}}), "
        "which the issue's title does not run: every reader would get it as written (write "
        "the text itself; personal words belong in the templates (templates/newsletter.html.j2"
        " and .txt.j2))", id="title-template-syntax"),
    pytest.param(  # copied from the last issue: the article went out twice in one newsletter
        f"{SAMPLE_ISSUE}/issue.yaml", "  - online-trainings.md",
        "  - online-trainings.md\n  - ./partners-meeting.md",
        f"{SAMPLE_ISSUE}/issue.yaml:16: article './partners-meeting.md' is listed twice, also "
        "at line 14 (delete one of the two lines)", id="article-listed-twice"),
]


@pytest.mark.parametrize(("file", "old", "new", "expected"), CASES)
def test_validate_reports_the_exact_line(project: Path, run_cli: RunCli, file: str, old: str,
                                         new: str, expected: str) -> None:
    edit(project / file, old, new)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert expected in result.err.splitlines(), result.err


def test_all_problems_are_reported_at_once(project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: 0")
    edit(project / "mirage.yaml", "  timeout: 30", "  timeout: soon")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    errors = [line for line in result.err.splitlines() if ": warning: " not in line]
    assert [line.split(":")[1] for line in errors] == ["21", "24"]
    assert result.out.startswith(f"{SAMPLE_ISSUE.split('/')[-1]}: 2 error(s), 1 warning(s)")


def test_preview_and_send_refuse_bad_input_too(project: Path, run_cli: RunCli) -> None:
    edit(project / "templates/newsletter.html.j2", "{{ t.why }}", "{{ nope }}")
    result = run_cli("preview", SAMPLE_ISSUE)
    assert result.code == 2
    assert "templates/newsletter.html.j2:80: undefined template variable" in result.err
    assert not (project / "preview").exists()


def test_sample_validates_with_only_the_translation_warning(run_cli: RunCli) -> None:
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert result.err.splitlines() == [
        "mirage.yaml:27: warning: no confirmed 'fr' translation of the EU disclaimer; fr "
        "readers get the en text (add disclaimer.translations.fr with statement and text from "
        "your grant agreement; never machine-translate)"
    ]
    assert result.out.strip() == ("2021-10-partners-meeting: 0 error(s), 1 warning(s); "
                                  "languages en, fr; 5 recipient(s) (en: 3, fr: 2)")


def test_duplicate_address_is_a_warning(project: Path, run_cli: RunCli) -> None:
    with (project / "lists/subscribers.csv").open("a", encoding="utf-8") as handle:
        handle.write("Maria.Georgiou@EXAMPLE.org,Maria again,en,\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0
    assert ("lists/subscribers.csv:7: warning: duplicate address Maria.Georgiou@example.org "
            "(first at lists/subscribers.csv:2) (only the first is sent to; delete this row)"
            ) in result.err.splitlines()


def test_config_found_from_the_issue_folder(project: Path, run_cli: RunCli) -> None:
    result = run_cli("validate", str(project / SAMPLE_ISSUE), cwd=project.parent)
    assert result.code == 0, result.err


def test_missing_config_names_the_fix(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "lonely").mkdir()
    result = run_cli("validate", "lonely", cwd=tmp_path)
    assert result.code == 2
    assert result.err.strip() == (
        "mirage.yaml: config file not found (run in the project folder, pass --config PATH, or "
        "create one with 'mirage-mailer init DIR')")
