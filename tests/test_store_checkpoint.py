"""The WAL checkpoint after a long first plan runs on a thread, not in the committing call;
the rows are there either way, and a fork waits for a running checkpoint."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from mirage_mailer.project import list_worker
from mirage_mailer.store import NewRecipient, Store
from mirage_mailer.store import checkpoint as store_checkpoint
from mirage_mailer.store import core as store_core
from mirage_mailer.store import recipients as store_recipients


def _rows(n: int) -> list[NewRecipient]:
    return [NewRecipient(f"{'zyxwvutsrq'[i % 10]}{i}@example.org", None, "en", "main")
            for i in range(n)]


def test_the_long_commit_leaves_the_checkpoint_to_a_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_recipients, "BULK_MIN", 500)
    # any commit would checkpoint (50 pages)
    monkeypatch.setattr(store_core, "_AUTOCHECKPOINT_BYTES", 50 * store_core.PAGE_SIZE)
    started: list[Path] = []

    def held(path: Path, timeout: float) -> threading.Thread:
        started.append(path)  # no checkpoint: what the commit did is all there is
        thread = threading.Thread(target=lambda: None)
        thread.start()
        return thread

    monkeypatch.setattr(store_core, "checkpoint_behind", held)
    db = tmp_path / "t.sqlite"
    with Store(db) as store:
        before = db.stat().st_size
        store.reconcile("i", _rows(3_000))
        assert started == [db]
        assert db.stat().st_size == before  # every new page still only in the WAL
        wal = Path(f"{db}-wal").stat().st_size
        assert wal > 20 * before
        # and the connection checkpoints as usual again afterwards
        auto = store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert auto == 50
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM recipients").fetchone()[0] == 3_000
        assert conn.execute("SELECT count(*) FROM events WHERE kind = 'queued'"
                            ).fetchone()[0] == 3_000


def test_the_thread_copies_the_pages_and_close_waits_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_recipients, "BULK_MIN", 500)
    db = tmp_path / "t.sqlite"
    with Store(db) as store:
        before = db.stat().st_size
        store.reconcile("i", _rows(3_000))
        behind = store._behind
        assert behind is not None
        behind.join(timeout=30)
        assert db.stat().st_size > 10 * before  # the thread copied the WAL into the file
        assert store.counts("i")["pending"] == 3_000
    assert not behind.is_alive()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM recipients").fetchone()[0] == 3_000


def test_a_fork_waits_for_a_running_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "t.sqlite"
    with Store(db):
        pass
    done = threading.Event()
    real = store_checkpoint._checkpoint

    def slow(path: Path, timeout: float) -> None:
        time.sleep(0.3)  # inside "SQLite" when the fork comes
        done.set()
        real(path, timeout)

    monkeypatch.setattr(store_checkpoint, "_checkpoint", slow)
    thread = store_checkpoint.checkpoint_behind(db, 5.0)
    assert list_worker.can_fork()  # a list reader may still be forked: it waits, as here
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert done.is_set()
    thread.join(timeout=10)
