"""``report`` on an issue that is neither a folder nor in the store is a typo: exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, report

UNKNOWN = ("issues/nonexist: no such issue: no issue folder, and nothing recorded for it in "
           "the tracking store (give one of the issues: 2021-10-partners-meeting)")


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_an_unknown_issue_is_refused(project: Path, run_cli: RunCli, fmt: str) -> None:
    result = run_cli("report", "nonexist", "--format", fmt)
    assert (result.code, result.out, result.err.splitlines()) == (2, "", [UNKNOWN])


def test_an_issue_with_rows_but_no_folder_is_still_reported(project: Path,
                                                            run_cli: RunCli) -> None:
    assert run_cli("report", SAMPLE_ISSUE, "--format", "json").code == 0  # nothing sent yet
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    shutil.rmtree(project / SAMPLE_ISSUE)
    found = report(run_cli, "2021-10-partners-meeting")
    assert found["counts"]["sent"] == 5  # type: ignore[index]
    gone = run_cli("report", "2021-09-other", "--format", "html", "--out", "r.html")
    assert gone.code == 2 and not (project / "r.html").exists()
    assert ("give one of the issues: 2021-10-partners-meeting)" in gone.err)


@pytest.mark.parametrize("given", ["issues/draft", "draft"])
def test_a_folder_without_issue_yaml_is_named_as_validate_names_it(
        project: Path, run_cli: RunCli, given: str) -> None:
    """A folder begun without its issue.yaml exists: "no issue folder" sent the officer
    looking for a folder that is there; validate names the missing file."""
    (project / "issues/draft").mkdir()
    result = run_cli("report", given)
    assert (result.code, result.out, result.err.splitlines()) == (2, "", [
        "issues/draft/issue.yaml: file not found, and nothing recorded for this issue in the "
        "tracking store (create it with subject, list and articles, or give one of the "
        "issues: 2021-10-partners-meeting)"])
    validated = run_cli("validate", "issues/draft")
    assert validated.err.startswith("issues/draft/issue.yaml: file not found")
