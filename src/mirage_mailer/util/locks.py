"""Lock files that stop overlapping sends of one issue and overlapping cron runs.

The locks that guard a store's rows live with the store (``lock_dir``): two project folders
whose ``tracking.database`` names the same SQLite file take the same lock files, so a send
from one stops a send of the same issue from the other (exit 3), as one folder's sends do.

``flock`` locks die with their process, even on SIGKILL, so a stale lock can never block the
next run; the holder's pid is written into the file so the refusal can name it. The folder
and the files are owner-only, like everything under ``.mirage/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from mirage_mailer.util.errors import DeliveryError, Problem, display_path
from mirage_mailer.util.statedir import FILE_MODE, private_dir
from mirage_mailer.util.statefault import state_write_error

STATE_LOCKS = "locks"  # under the state folder: the default store's locks, and the folder's


def lock_dir(state_dir: Path, database: Any) -> Path:
    """The folder of the locks that guard the rows of ``database``.

    Why: a lock under each project's ``.mirage/`` let two folders sharing one SQLite file
    send the same issue at once (every reader twice). So the place follows the file alone,
    whichever project names it: a database inside a state folder (the default, or another
    project's ``.mirage/tracking.sqlite``) has that folder's ``locks/``, as before; a file
    elsewhere gets ``<name>.locks/`` beside it, a folder of its own so the database's folder
    is never made owner-only. Symbolic links are resolved: every name of the file finds the
    same locks. Anything but a path (a PostgreSQL URL: its senders share by leases) keeps
    the state folder's.
    """
    if not isinstance(database, Path):
        return state_dir / STATE_LOCKS
    real = database.resolve()
    for folder in real.parents:
        if folder.name == state_dir.name:
            return state_dir / STATE_LOCKS if folder == state_dir.resolve() \
                else folder / STATE_LOCKS
    return real.parent / f"{real.name}.{STATE_LOCKS}"


class _Held:
    """``with`` for a lock taken by ``acquire`` and given back by ``release``."""

    def acquire(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class Lock(_Held):
    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``DeliveryError`` (exit 3): held by another process, or
        its file cannot be made or written (a full disk, a read-only ``.mirage/``)."""
        try:
            private_dir(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise state_write_error(exc, self.path) from None
        if os.fstat(fd).st_mode & 0o077:  # made by an older version: owner-only now
            with contextlib.suppress(OSError):
                os.fchmod(fd, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "another process"
            os.close(fd)
            raise DeliveryError(Problem(
                display_path(self.path), None,
                f"{self.what} is already running (pid {holder})",
                "wait for it to finish; the lock frees itself when that process ends")) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:  # the pid is for the refusal's words: no room for it, no run
            os.close(fd)  # frees the lock too
            raise state_write_error(exc, self.path) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Locks(_Held):
    """Several locks taken as one, in order: all of them or none (a refusal releases those
    already taken). Why: a send on a store outside ``.mirage/`` holds the store's lock and its
    own folder's, which the folder's journal replay checks."""

    def __init__(self, locks: list[Lock]) -> None:
        self.locks = locks
        self._held: list[Lock] = []

    def acquire(self) -> None:
        try:
            for lock in self.locks:
                lock.acquire()
                self._held.append(lock)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        while self._held:
            self._held.pop().release()
