"""Files the program writes that hold readers' addresses are owner-only (0600) whatever the
umask, as docs/guide/sending.md asks to keep them private: ``send --dry-run --csv PATH`` and
``report --format html --out FILE``, a new file or one already there with a wider mode.
Real CLI subprocesses on the sample project (Maildir outbox, SQLite store), run under the
common umask 022, which made them 0644 before."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The CLI subprocesses inherit a umask that leaves files readable by everyone."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing-0644"])
def test_dry_run_csv_is_owner_only(project: Path, run_cli: RunCli, existing: bool) -> None:
    target = project / "plan.csv"
    if existing:
        target.write_text("old\n", encoding="utf-8")
        target.chmod(0o644)
    result = run_cli("send", SAMPLE_ISSUE, "--dry-run", "--csv", "plan.csv")
    assert result.code == 0, result.err
    assert target.read_text(encoding="utf-8").startswith("email,name,lang,list,decision,")
    assert _mode(target) == 0o600


def test_html_report_is_owner_only(project: Path, run_cli: RunCli) -> None:
    """An issue not sent yet is enough: the mode does not depend on the page's rows."""
    out = project / "reports" / "report.html"
    result = run_cli("report", SAMPLE_ISSUE, "--format", "html", "--out", "reports/report.html")
    assert result.code == 0, result.err
    assert "<html" in out.read_text(encoding="utf-8")
    assert _mode(out) == 0o600
