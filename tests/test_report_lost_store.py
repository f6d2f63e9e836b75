"""``report`` on a project that has sent but lost its store says so (exit 2), in the words
``send`` refuses with, instead of reporting that nothing was ever sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli

LOST = (".mirage/tracking.sqlite: the tracking database {what}, but this project has sent "
        "before (.mirage/sent): a report would say nobody got any issue (restore the "
        "database from a backup; 'mirage-mailer send ISSUE_DIR --new-store' starts over on "
        "purpose)")
FORMATS = [("table",), ("json",), ("csv",), ("html", "--out", "r.html")]


@pytest.mark.parametrize("args", [(), ("--period", "2020-01-01..2040-12-31")])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f[0] for f in FORMATS])
def test_a_missing_store_after_a_send_is_refused(project: Path, run_cli: RunCli,
                                                  fmt: tuple[str, ...],
                                                  args: tuple[str, ...]) -> None:
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    (project / ".mirage/tracking.sqlite").rename(project / "saved.sqlite")
    issue = (SAMPLE_ISSUE,) if fmt[0] == "html" and not args else ()
    result = run_cli("report", *issue, *args, "--format", *fmt)
    assert (result.code, result.out) == (2, ""), result.out
    assert result.err.splitlines() == [LOST.format(what="is missing")]
    assert not (project / "r.html").exists()
    assert not (project / ".mirage/tracking.sqlite").exists()  # a report creates no store


def test_an_emptied_store_is_refused_and_send_says_the_same(project: Path,
                                                            run_cli: RunCli) -> None:
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    (project / ".mirage/tracking.sqlite").write_bytes(b"")
    result = run_cli("report", SAMPLE_ISSUE, "--format", "json")
    assert (result.code, result.out) == (2, "")
    assert result.err.splitlines() == [LOST.format(what="is empty (zero bytes)")]
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 2
    assert ("the tracking database is empty (zero bytes), but this project has sent before "
            "(.mirage/sent): every reader would get the issue again; nothing was sent"
            in sent.err)


def test_a_project_that_never_sent_still_reports_nothing_sent(project: Path,
                                                              run_cli: RunCli) -> None:
    result = run_cli("report")
    assert (result.code, result.out.strip(), result.err) == (0, "no issue has been sent yet",
                                                             "")


def test_the_store_put_back_reports_again(project: Path, run_cli: RunCli) -> None:
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    store = project / ".mirage/tracking.sqlite"
    store.rename(project / "saved.sqlite")
    assert run_cli("report").code == 2
    (project / "saved.sqlite").rename(store)
    result = run_cli("report", SAMPLE_ISSUE, "--format", "json")
    assert result.code == 0, result.err
    assert '"sent": 5' in result.out
