"""A SQLite store still in DELETE journal mode (an old copy, an operator's PRAGMA) while
another process only reads it: readers go on, writers stop with exit 3 and lose nothing.

Opening used to switch every store to WAL first, which needs the file to itself: any reader
elsewhere made every command, ``report`` included, wait 10 s and fail with exit 2."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.cli import main
from mirage_mailer.store import Store, StoreUnavailable, guard
from mirage_mailer.store.write_fault import BUSY_HINT, write_fault_hint
from mirage_mailer.util.errors import ExitCode
from support.sqlite_reader import current_mode, journal_mode, reader_holding

SECOND = "issues/2021-11-second"
GONE = "x.nobody@example.org"


def _sent(project: Path, run_cli: RunCli) -> Path:
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    shutil.copytree(project / SAMPLE_ISSUE, project / SECOND)
    database = project / ".mirage" / "tracking.sqlite"
    journal_mode(database, "DELETE")
    return database


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mirage_mailer", *args], cwd=project,
                          capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_the_store_opens_beside_a_reader_and_a_write_stops_cleanly(tmp_path: Path) -> None:
    database = tmp_path / "t.sqlite"
    with Store(database) as store:
        store.suppress("a@example.org", source="test")
    journal_mode(database, "DELETE")
    with reader_holding(database), Store(database, timeout=0.2) as store:
        assert store.is_suppressed("a@example.org")  # reading needs no switch of mode
        with pytest.raises(StoreUnavailable) as caught:
            store.suppress("b@example.org", source="test")
        assert caught.value.exit_code == ExitCode.CANNOT_DELIVER
        assert "rerun" in caught.value.problems[0].hint
    assert current_mode(database) == "delete"  # the reader kept it: switched at the next open
    with Store(database) as store:
        assert not store.is_suppressed("b@example.org")  # nothing half-written
    assert current_mode(database) == "wal"


def test_commands_beside_another_reader(project: Path, run_cli: RunCli) -> None:
    database = _sent(project, run_cli)
    outbox = project / "outbox" / "new"
    mailed = len(list(outbox.iterdir()))
    readers = [("report",), ("validate", SECOND), ("send", SECOND, "--dry-run"),
               ("preview", SECOND), ("run-due", "--now", "2030-01-01T00:00:00Z")]  # none due
    writers = [("send", SECOND, "--yes"), ("unsubscribe", GONE)]
    with reader_holding(database), ThreadPoolExecutor(len(readers)) as pool:
        # readers first: a DELETE-mode writer waiting to commit keeps new readers out too
        runs = list(pool.map(lambda args: (args, _cli(project, *args)), readers))
        # then each writer alone beside the reader: two writers at once also meet each
        # other (one's pending commit makes the other's read busy), which is not this case
        runs += [(args, _cli(project, *args)) for args in writers]
    for args, proc in runs:
        assert "Traceback" not in proc.stderr, proc.stderr
        if args in readers:
            assert proc.returncode == 0, (args, proc.stderr)
        else:
            assert proc.returncode == 3, (args, proc.returncode, proc.stderr)
            [line] = [x for x in proc.stderr.splitlines() if "tracking" in x]
            assert "another mirage-mailer process may hold it (wait and rerun)" in line
    assert len(list(outbox.iterdir())) == mailed  # nothing sent
    with Store(database) as store:  # nothing half-recorded
        assert sum(store.counts(Path(SECOND).name).values()) == 0
        assert not store.is_suppressed(GONE)
    resumed = run_cli("send", SECOND, "--yes")  # the reader gone, the rerun does it all
    assert resumed.code == 0 and "sent 5" in resumed.out, resumed
    assert current_mode(database) == "wal"


def test_a_store_locked_at_open_is_exit_3_not_bad_input(tmp_path: Path) -> None:
    """A writer mid-commit on a DELETE-mode file keeps even readers out: that is a lock of
    the moment (exit 3, rerun), not a wrong file or setting (exit 2)."""
    database = tmp_path / "t.sqlite"
    Store(database).close()
    journal_mode(database, "DELETE")
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            Store(database, timeout=0.2)
        assert caught.value.exit_code == ExitCode.CANNOT_DELIVER
        assert "wait and rerun" in caught.value.problems[0].hint
    finally:
        holder.rollback()
        holder.close()


def test_a_read_kept_out_by_a_writer_is_one_line_and_exit_3(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Past the open, a read that waited out another process's commit is not a bug (70)."""
    database = project / "busy.sqlite"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        reader = sqlite3.connect(database, timeout=0)
        with pytest.raises(sqlite3.OperationalError) as locked:
            reader.execute("SELECT count(*) FROM t")
        reader.close()
    finally:
        holder.rollback()
        holder.close()

    def busy(*_args: object, **_kwargs: object) -> None:
        raise locked.value

    monkeypatch.setattr("mirage_mailer.commands.report.report_stream", busy)
    monkeypatch.chdir(project)
    with pytest.raises(SystemExit) as stopped:
        main(["report"])
    assert stopped.value.code == 3
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "cannot read it now: database is locked" in line and "wait and rerun" in line


def test_a_busy_store_is_worded_alike_whichever_step_meets_it() -> None:
    """The health check said "may hold it; wait and rerun" and a write "may hold it (wait
    and rerun)": which one a writer beside another met first was a race, so the line a cron
    mail shows (and the test above) changed from run to run."""
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5  # SQLITE_BUSY, as the sqlite3 module sets it
    with pytest.raises(StoreUnavailable) as caught:
        guard._failed(Path("tracking.sqlite"), busy)
    assert [problem.hint for problem in caught.value.problems] == [BUSY_HINT]
    assert write_fault_hint(Path("tracking.sqlite"), 5) == BUSY_HINT
