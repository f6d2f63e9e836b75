"""Whether a queued row may still be claimed, without a read transaction a message.

A reader who unsubscribes (the web app, ``unsubscribe``, a bounce) after a row was queued
must not be sent, so before each claim the row's status used to be read: a SQLite read
transaction, which takes and drops a lock on the WAL index (two ``fcntl`` calls), about
28 µs of a message in a running send. Here the check is one look at the WAL index's header
instead: SQLite rewrites that header (its ``iChange`` counter, the last frame, the salts and
checksums; https://www.sqlite.org/walformat.html) at every commit by any connection, and
every reader reads it without a lock, as done here. While the header is what it was when a
page of pending rows was read, no transaction has committed since, so those rows are still
pending; once it differs (another process's commit, or our own batches every 0.5 s), the
rows not yet claimed are read again, in one statement, before the claim is answered. So an
unsubscription committed before a claim still stops that message, for one read per change
instead of one per message.

Where there is no WAL index to look at (PostgreSQL, a SQLite file not in WAL mode, a
``-shm`` file that cannot be mapped, or of another layout than the one read here) every
claim reads its row, as before.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

HEADER = 48  # bytes of one copy of the WAL index header; SQLite keeps two, one after the other
WAL_INDEX_VERSION = 3007000  # its first field, native byte order: the layout read here
Read = Callable[[list[int]], set[int]]  # ids -> those still claimable, in one read


class ClaimCheck:
    """The rows of the pages a send read that are still pending, as of one WAL index header."""

    def __init__(self, database: Path | None) -> None:
        self._view: mmap.mmap | None = _map(database) if database is not None else None
        self._seen: bytes | None = None  # the header when ``_pending`` was last known true
        self._pending: set[int] = set()

    def version(self) -> bytes | None:
        """The WAL index header now; None when there is none, or a writer is rewriting it
        (its two copies differ: SQLite writes the second first)."""
        view = self._view
        if view is None:
            return None
        both = view[:2 * HEADER]
        head = both[:HEADER]
        return head if head == both[HEADER:] else None

    def noted(self, version: bytes | None, ids: Iterable[int]) -> None:
        """A page of rows read as pending, by a read that began after ``version`` was
        taken. Rows kept from an older page stay only if nothing committed in between."""
        if version is None:
            self._seen = None
            self._pending.clear()
            return
        if version != self._seen:
            self._pending.clear()
            self._seen = version
        self._pending.update(ids)

    def close(self) -> None:
        """Unmap the WAL index: the mapping keeps the ``-shm`` file's pages (and, once
        SQLite unlinks it at the last close, its inode) alive until it is closed. Later
        claims read their rows, as without a WAL index."""
        if self._view is not None:
            self._view.close()
            self._view = None
        self._seen = None
        self._pending.clear()

    def claimable(self, row: int, read: Read) -> bool:
        """Whether ``row`` is still pending (or on the wire from this run); ``read`` asks
        the store, for the rows this check cannot vouch for."""
        now = self.version()
        if now is not None and now == self._seen and row in self._pending:
            self._pending.discard(row)  # claimed: a retry of it asks the store
            return True
        if now is None or row not in self._pending:
            return row in read([row])
        # something committed since the rows were read: read again those not yet claimed
        # (``now`` was taken before this read began, so the answer holds as of ``now``)
        self._pending = read(list(self._pending))
        self._seen = now
        if row in self._pending:
            self._pending.discard(row)
            return True
        return False


def _map(database: Path) -> mmap.mmap | None:
    """The first bytes of the database's WAL index (``<file>-shm``), mapped read-only; the
    store's own connection keeps that file in place while it is open."""
    try:
        fd = os.open(f"{database}-shm", os.O_RDONLY)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size < 2 * HEADER:
            return None
        view = mmap.mmap(fd, 2 * HEADER, mmap.MAP_SHARED, mmap.PROT_READ)
        if struct.unpack_from("=I", view)[0] != WAL_INDEX_VERSION:  # another layout: read rows
            view.close()
            return None
        return view
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
