"""A state file that cannot be written (a full disk, a read-only ``.mirage/``), said in one line.

Why: an ``OSError`` from a lock, the claim journal, the secret or a marker is not a bug but
the machine's state; it ended ``send`` as "internal error ... please report it" (exit 70), or
without the file or what to do. It is a ``DeliveryError`` (exit 3), as a lock held is:
nothing about the input is wrong, the tracking state is kept, and the same command resumes
once the disk has room or the folder is writable again.
"""

from __future__ import annotations

import errno
from pathlib import Path

from mirage_mailer.util.errors import DeliveryError, Problem, display_path

RESUMES = "the tracking state is kept; a rerun resumes where this one stopped"

_FIXES = {
    errno.ENOSPC: "free space on that disk",
    errno.EDQUOT: "free space on that disk (this user's quota is used up)",
    errno.EFBIG: "raise this process's file size limit (ulimit -f) or free space",
    errno.EROFS: "the disk is mounted read-only: remount it writable or move the project",
    errno.EACCES: "make the folder writable by this user",
    errno.EPERM: "make the folder writable by this user",
    errno.ENOTDIR: "a file stands where a folder is expected: move it away",
    errno.EEXIST: "a file stands where a folder is expected: move it away",
    errno.EISDIR: "a folder stands where a file is expected: move it away",
    errno.EIO: "the disk reports an I/O error: check it",
}
# the errors that are the disk's or the folder's, not a bug: the CLI's last resort names them
STATE_ERRNOS = frozenset(_FIXES)


class StateWriteError(DeliveryError):
    """A file under the state folder could not be created or written: exit 3."""


def state_write_error(exc: OSError, path: Path | str | None = None, *,
                      resumes: bool = True) -> StateWriteError:
    """``exc`` as one line: the file (``exc.filename`` first: it names the file the call
    touched, where ``path`` is what the caller was making), what happened, what to do."""
    target = exc.filename if exc.filename is not None else path
    where = display_path(str(target)) if target is not None else "mirage-mailer"
    what = exc.strerror or str(exc) or type(exc).__name__
    fix = _FIXES.get(exc.errno or 0, "check the folder and the disk")
    return StateWriteError(Problem(where, None, f"cannot write: {what}",
                                   f"{fix}; {RESUMES}" if resumes else fix))


def is_state_fault(exc: BaseException) -> bool:
    """An ``OSError`` that a full or read-only disk (or a misplaced file) explains."""
    return isinstance(exc, OSError) and exc.errno in STATE_ERRNOS
