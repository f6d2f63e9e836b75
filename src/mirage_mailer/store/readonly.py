"""Reading a store that sits in a folder this user cannot write (a read-only disk, a backup,
a ``.mirage/`` kept 0500): ``report`` must still work there.

Why not a plain open: a WAL database needs its ``-shm`` index, which a reader creates beside
the file; where it cannot, SQLite answers "unable to open database file". So such a store
is opened read-only (``mode=ro``), which reads a ``-shm`` and ``-wal`` that exist, changes
not yet copied into the file included. Where there is no ``-shm`` and no ``-wal`` with
anything in it, every committed change is in the file itself and no connection is open (the
last one to close removes them): the file is read as it is (``immutable=1``, no index to
make), so the reader writes nothing. A ``-wal`` with changes in it but no usable index is
refused: reading the file alone would show the store as it was before those changes.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
from pathlib import Path

from mirage_mailer.store.errors import StoreError
from mirage_mailer.util.errors import Problem, display_path


def cannot_write(path: Path) -> bool:
    """An existing database that this user cannot write, or whose folder it cannot."""
    return path.is_file() and not (os.access(path.parent, os.W_OK) and os.access(path, os.W_OK))


def connect_readonly(path: Path, timeout: float,
                     factory: type[sqlite3.Connection]) -> sqlite3.Connection:
    """A read-only connection to ``path`` (see the module docstring), or ``StoreError``."""
    uri = reading_uri(path)
    changes = _wal_changes(path)
    try:
        return _usable(sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None,
                                       factory=factory, check_same_thread=False))
    except sqlite3.Error as exc:
        if not changes:
            raise
        raise StoreError(Problem(
            display_path(path), None,
            f"cannot read the tracking database: {exc}, and its -wal file holds changes "
            "that only a user who can write the folder can bring in",
            "make the folder writable by this user, or run this as the user who sends"
        )) from None


def reading_uri(path: Path) -> str:
    """The URI that reads ``path`` and writes nothing beside it (see the module docstring):
    ``mode=ro``, and ``immutable=1`` where no -shm and no -wal with changes exist."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    if not _wal_changes(path) and not Path(f"{path}-shm").exists():  # no connection is open
        uri += "&immutable=1"
    return uri


def read_only_beside(path: Path, exc: sqlite3.Error) -> Problem | None:
    """SQLite's "readonly database" when the cause is a ``-wal`` or ``-shm`` beside a
    writable ``path``: SQLite makes them with the database's mode, so a database once
    ``chmod 400`` leaves them read-only after it is writable again, and every write fails
    without naming them. None for any other cause."""
    if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF != sqlite3.SQLITE_READONLY:
        return None
    stuck = [side for side in (Path(f"{path}-wal"), Path(f"{path}-shm"))
             if side.exists() and not os.access(side, os.W_OK)]
    if not stuck:
        return None
    names = " ".join(shlex.quote(display_path(side)) for side in stuck)
    return Problem(display_path(stuck[-1]), None, f"cannot write to the tracking database: "
                   f"{exc}: this file beside it is read-only, as the database once was",
                   f"make it writable by this user: chmod u+w {names}; a rerun resumes "
                   "where this one stopped")


def _wal_changes(path: Path) -> bool:
    wal = Path(f"{path}-wal")
    return wal.exists() and wal.stat().st_size > 0


def _usable(conn: sqlite3.Connection) -> sqlite3.Connection:
    """SQLite opens lazily: read once, so a store it cannot read fails here."""
    try:
        # the plain method: a factory's own cursor may want what its caller sets up later
        sqlite3.Connection.execute(conn, "SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn
