"""A WAL checkpoint on a thread of its own, after a transaction that wrote a long WAL.

Why: an issue's first plan of a long list commits one transaction of some 500 MB of WAL at a
million rows, and the connection that commits runs the automatic checkpoint right there (1 to
2 s), before the send can go on. Copying those pages into the database file needs nothing
from the send, so it runs on its own connection on a thread (SQLite releases the GIL), beside
the work that follows. What SQLite guarantees makes this safe: a committed transaction is in
the WAL, which stays authoritative until a checkpoint has copied every frame and the WAL is
reset; a checkpoint cut short (a crash, SIGKILL) leaves the WAL to be replayed by the next
opener, so the store is the same either way. A ``PASSIVE`` checkpoint takes no lock that
readers or writers wait for: the web app and the send's own commits go on meanwhile.

A fork while a thread is inside SQLite could leave one of its mutexes locked in the child, so
every fork of this process waits for a running checkpoint first (``os.register_at_fork``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from mirage_mailer.util.forksafe import ignorable_by_forks

_running: set[threading.Thread] = set()
_guard = threading.Lock()


def _wait_all() -> None:
    """Join every running checkpoint (before a fork)."""
    with _guard:
        threads = list(_running)
    for thread in threads:
        thread.join()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_wait_all)


def _checkpoint(path: Path, timeout: float) -> None:
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        pass  # only an optimisation: the next automatic checkpoint copies the frames instead
    finally:
        with _guard:
            _running.discard(threading.current_thread())


def checkpoint_behind(path: Path, timeout: float) -> threading.Thread:
    """Start a passive checkpoint of ``path``'s WAL on a thread; join it before closing the
    last connection (closing would checkpoint again, in the foreground)."""
    # a list reader may be forked meanwhile (run-due's next issue): the fork waits for it
    thread = ignorable_by_forks(threading.Thread(target=_checkpoint, args=(path, timeout),
                                                 name="mirage-wal-checkpoint"))
    with _guard:
        _running.add(thread)
    thread.start()
    return thread
