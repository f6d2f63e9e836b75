"""Opening a Maildir entry without following a link.

Both mailbox readers (bounces, mailed unsubscribe requests) read files that others drop into a
folder: a symbolic link there could make us read anything the process can (``/etc/shadow``),
and a pipe or device could hang the run. So an entry is checked with ``lstat``, opened with
``O_NOFOLLOW`` and checked again after opening (it may have been swapped in between).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from mirage_mailer.util.errors import display_path


class NotRegularFile(Exception):
    """The entry is no regular file; ``kind`` says what it is, for the one-line skip."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind

    @property
    def line(self) -> str:
        return f"not a regular file ({self.kind}); left in place"


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a directory" if stat.S_ISDIR(mode) else "a device, socket or pipe"


@contextmanager
def open_regular(path: Path) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """(handle, stat) of a regular file at ``path``; NotRegularFile otherwise, OSError as is."""
    kind = _kind(os.lstat(path).st_mode)
    if kind:
        raise NotRegularFile(kind)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a link after the lstat
            raise NotRegularFile("a symbolic link") from exc
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        kind = _kind(info.st_mode)  # swapped since the lstat
        if kind:
            raise NotRegularFile(kind)
        yield handle, info


def entry_ref(path: Path) -> str:
    """How a line names the entry: its own place, never where a link points."""
    return str(Path(display_path(path.parent)) / path.name)
