"""A store in a folder this user cannot write (a read-only disk, ``.mirage/`` kept 0500) is
read as it is: ``report`` works there (audit: "cannot use the tracking database: unable to
open database file", exit 2), and the reader writes nothing beside it.

As root, ``chmod`` stops nothing, so the units tell the store that it cannot write
(``os.access``) and check it then writes nothing; the real CLI run on a 0500 folder needs a
user who is not root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.services.journal import Journal, journal_path, settle_all
from mirage_mailer.store import NewRecipient, Store, StoreError, StoreUnavailable
from mirage_mailer.store.guard import inspect

ISSUE = "2021-10-partners-meeting"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / ".mirage/tracking.sqlite"
    with Store(path) as store:
        store.add_recipients(ISSUE, [NewRecipient(f"r{n}@x.org", None, None, "main")
                                     for n in range(3)])
    return path


@pytest.fixture
def unwritable(database: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The database's folder, as a user who may not write it sees it."""
    real = os.access
    folder = database.parent

    def access(path: str | os.PathLike[str], mode: int, **kw: object) -> bool:
        if mode & os.W_OK and Path(path).resolve().is_relative_to(folder.resolve()):
            return False
        return real(path, mode)

    monkeypatch.setattr("mirage_mailer.store.readonly.os.access", access)
    yield folder


def listing(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_a_store_in_a_folder_it_cannot_write_is_read_and_nothing_is_written(
        database: Path, unwritable: Path) -> None:
    before = listing(unwritable)
    assert before.keys() == {"tracking.sqlite"}  # the last writer closed: no -wal, no -shm
    with Store(database) as store:
        assert store.counts(ISSUE)["pending"] == 3
    assert listing(unwritable) == before
    assert store.read_only


def test_changes_still_in_the_wal_are_read(database: Path, unwritable: Path) -> None:
    # a writer at work elsewhere (its -wal and -shm exist) holds rows not yet in the file
    script = (
        "import sys, time\n"
        "from mirage_mailer.store import NewRecipient, Store\n"
        f"s = Store({str(database)!r})\n"
        "s._conn.execute('PRAGMA wal_autocheckpoint=0')\n"
        f"s.add_recipients({ISSUE!r}, [NewRecipient('late@x.org', None, None, 'main')])\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        assert Path(f"{database}-wal").stat().st_size > 0
        with Store(database) as store:
            assert store.counts(ISSUE)["pending"] == 4
        assert store.read_only
    finally:
        proc.communicate("", timeout=30)


def test_a_read_only_store_refuses_a_write_as_a_full_disk_does(database: Path,
                                                              unwritable: Path) -> None:
    with Store(database) as store, pytest.raises(StoreUnavailable) as caught:
        store.add_recipients(ISSUE, [NewRecipient("new@x.org", None, None, "main")])
    assert str(caught.value).endswith(
        "tracking.sqlite: cannot write to the tracking database: attempt to write a readonly "
        "database (make the folder writable by this user; a rerun resumes where this one "
        "stopped)")


def test_a_killed_sends_journal_is_kept_for_the_next_send(database: Path, unwritable: Path,
                                                          tmp_path: Path) -> None:
    state = database.parent
    journal = Journal(journal_path(state, ISSUE), ISSUE)
    journal.claim(1, "x", 0, "<a@x>", "2026-11-30T10:00:00.000+00:00")
    journal.close()
    with Store(database) as store:
        settle_all(store, state)  # cannot bring it in: leaves it, says nothing
        assert store.counts(ISSUE)["pending"] == 3
    assert journal_path(state, ISSUE).exists()


def test_the_guard_reads_a_store_it_cannot_write_as_it_is(database: Path,
                                                           unwritable: Path) -> None:
    """``report``'s and ``send --dry-run``'s check of the store (audit 15j, r3): a plain
    read-only open of a WAL database makes a -shm beside it, which such a folder refuses
    ("attempt to write a readonly database")."""
    before = listing(unwritable)
    assert inspect(database, thorough=False).state == "ok"
    assert inspect(database, reading=True).state == "ok"
    assert listing(unwritable) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a folder chmod 0500")
def test_report_reads_a_store_in_a_read_only_folder(project: Path, run_cli: RunCli) -> None:
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    state = project / ".mirage"
    state.chmod(0o500)
    try:
        result = run_cli("report", SAMPLE_ISSUE, "--format", "json")
        assert result.code == 0, result.err
        assert '"sent": 5' in result.out
        assert sorted(p.name for p in state.iterdir() if "tracking" in p.name) == [
            "tracking.sqlite"]
    finally:
        state.chmod(0o700)



def test_a_damaged_store_in_a_folder_it_cannot_write_is_one_line(database: Path,
                                                                 unwritable: Path) -> None:
    database.write_bytes(b"not a database at all, " * 100)
    with pytest.raises(StoreError) as caught:
        Store(database)
    assert str(caught.value).startswith(f"{database}: the tracking database is damaged (")
