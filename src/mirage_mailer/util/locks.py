"""Lock files that stop overlapping sends of one issue and overlapping cron runs.

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

from mirage_mailer.util.errors import DeliveryError, Problem, display_path
from mirage_mailer.util.statedir import FILE_MODE, private_dir
from mirage_mailer.util.statefault import state_write_error


class Lock:
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

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
