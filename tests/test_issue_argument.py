"""ISSUE as typed is found the same way by every command (``services.loader.find_issue``):
``send`` takes an issue id as validate, preview and report do, from any folder of the
project or with --config; and preview's default folder is the project's, as every relative
path of the project is. CLI subprocesses on the sample project."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import RunCli

ISSUE_ID = "2021-10-partners-meeting"


def test_send_takes_an_issue_id_from_anywhere(project: Path, run_cli: RunCli) -> None:
    here = run_cli("send", ISSUE_ID, "--dry-run")
    assert here.code == 0, here.err
    assert here.out.startswith(f"{ISSUE_ID}: dry run, nothing sent: would send 5 ")
    elsewhere = run_cli("--config", str(project / "mirage.yaml"), "send", ISSUE_ID,
                        "--dry-run", cwd=Path("/"))
    assert (elsewhere.code, elsewhere.out) == (0, here.out)


def test_send_names_the_issues_there_are_for_an_unknown_id(run_cli: RunCli) -> None:
    result = run_cli("send", "2021-10-partners", "--dry-run")
    assert result.code == 2
    assert result.err.strip() == ("mirage-mailer: no issue '2021-10-partners' under issues/: "
                                  f"the issues are {ISSUE_ID}")


def test_preview_writes_into_the_project_wherever_it_runs(project: Path,
                                                         run_cli: RunCli) -> None:
    result = run_cli("preview", ISSUE_ID, "--lang", "en", cwd=project / "templates")
    assert result.code == 0, result.err
    assert (project / "preview" / ISSUE_ID / "en.html").is_file()
    assert not (project / "templates/preview").exists()
    # outside the current folder, so shown in full
    assert result.out.splitlines()[0] == str(project.resolve() / "preview" / ISSUE_ID / "en.html")


def test_preview_out_is_relative_to_the_current_folder(project: Path,
                                                       run_cli: RunCli) -> None:
    result = run_cli("preview", ISSUE_ID, "--lang", "en", "--out", "here",
                     cwd=project / "templates")
    assert result.code == 0, result.err
    assert (project / "templates/here/en.html").is_file()


def test_an_issue_folder_linked_from_outside_is_refused(project: Path, run_cli: RunCli,
                                                        tmp_path: Path) -> None:
    """The audit's case: two issues linked into issues/ from folders elsewhere that share a
    name were one issue in the store (its id was the target's name), so the second was
    never sent, exit 0. A link from outside is refused, as the docs say of every file."""
    drafts = tmp_path / "drafts"
    for month in ("oct", "nov"):
        shutil.copytree(project / "issues" / ISSUE_ID, drafts / month / "issue")
        (project / "issues" / f"2021-{month}-news").symlink_to(drafts / month / "issue")
    for command in (("validate",), ("send", "--yes")):
        result = run_cli(command[0], "issues/2021-nov-news", *command[1:])
        assert result.code == 2, result.err
        assert result.err.strip() == (
            f"issues/2021-nov-news: the issue folder is a link to {drafts / 'nov/issue'}, "
            "outside issues/ (move the issue folder itself there: a link that points "
            "elsewhere is refused)")
    assert not (project / "outbox/new").exists() or not any((project / "outbox/new").iterdir())


def test_a_link_between_issue_folders_is_still_that_issue(project: Path,
                                                          run_cli: RunCli) -> None:
    (project / "issues/latest").symlink_to(project / "issues" / ISSUE_ID)
    result = run_cli("send", "issues/latest", "--dry-run")
    assert result.code == 0, result.err
    assert result.out.startswith(f"{ISSUE_ID}: dry run, nothing sent: would send 5 ")


def test_an_unusable_folder_name_gets_the_whole_rule(project: Path, run_cli: RunCli) -> None:
    """'-draft' has only letters and '-', so "use letters, digits, '.', '_' and '-' only"
    was no way out; the rule's first character and length are said too."""
    shutil.copytree(project / "issues/2021-10-partners-meeting", project / "issues/-draft")
    result = run_cli("validate", "issues/-draft")
    assert result.code == 2
    assert ("issues/-draft: issue folder name '-draft' is not a usable issue id (rename the "
            "folder: letters, digits, '.', '_' and '-' only, starting with a letter or digit, "
            "at most 100 characters)") in result.err.splitlines(), result.err
