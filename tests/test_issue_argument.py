"""ISSUE as typed is found the same way by every command (``services.loader.find_issue``):
``send`` takes an issue id as validate, preview and report do, from any folder of the
project or with --config; and preview's default folder is the project's, as every relative
path of the project is. CLI subprocesses on the sample project."""

from __future__ import annotations

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
