"""``--lang`` names one of the issue's languages; anything else is exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli

WRONG = ["xx", "e n", "de", ""]


def _refused(result_err: str, wanted: str) -> None:
    errors = [line for line in result_err.splitlines() if ": warning: " not in line]
    assert errors == [f"{SAMPLE_ISSUE}/issue.yaml: --lang {wanted!r} is not a language of "
                      "issue 2021-10-partners-meeting (give one of its languages: en, fr)"]


@pytest.mark.parametrize("wanted", WRONG)
def test_preview_refuses_a_language_the_issue_lacks(project: Path, run_cli: RunCli,
                                                    wanted: str) -> None:
    result = run_cli("preview", SAMPLE_ISSUE, "--lang", wanted)
    assert result.code == 2, result.err
    _refused(result.err, wanted)
    assert not (project / "preview").exists()


@pytest.mark.parametrize("args", [("--to", "t@example.org"), ("--yes",), ("--dry-run",)])
def test_send_refuses_a_language_the_issue_lacks(project: Path, run_cli: RunCli,
                                                 args: tuple[str, ...]) -> None:
    result = run_cli("send", SAMPLE_ISSUE, *args, "--lang", "xx")
    assert result.code == 2, result.err
    _refused(result.err, "xx")
    assert not (project / "outbox").exists() or not any((project / "outbox").rglob("*.*"))
    assert not (project / ".mirage" / "tracking.sqlite").exists()


def test_a_language_of_the_issue_is_taken_in_any_case(project: Path, run_cli: RunCli) -> None:
    result = run_cli("preview", SAMPLE_ISSUE, "--lang", "FR")
    assert result.code == 0, result.err
    assert sorted(p.name for p in (project / "preview" / "2021-10-partners-meeting").glob("*.*")
                  if p.suffix != ".png") == ["fr.eml", "fr.html", "fr.txt"]
