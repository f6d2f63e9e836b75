"""A state file that cannot be written (a full disk, a read-only ``.mirage/``), said in one line.

Why: an ``OSError`` from a lock, the claim journal, the secret or a marker is not a bug but
the machine's state; it ended ``send`` as "internal error ... please report it" (exit 70), or
without the file or what to do. It is a ``DeliveryError`` (exit 3), as a lock held is:
nothing about the input is wrong, the tracking state is kept, and the same command resumes
once the disk has room or the folder is writable again.
"""

from __future__ import annotations

import errno
import os
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


def fix_for(number: int) -> str:
    """What to do about an ``errno`` that a full or read-only disk explains."""
    return _FIXES.get(number, "check the folder and the disk")


class StateWriteError(DeliveryError):
    """A file under the state folder could not be created or written: exit 3."""


def state_write_error(exc: OSError, path: Path | str | None = None, *, resumes: bool = True,
                      verb: str = "cannot write") -> StateWriteError:
    """``exc`` as one line: the file, what happened, what to do. The file is the one the
    call touched (``exc.filename``: the folder that could not be made, say), except the
    temporary name a file is written under (``statedir``): that is ``path``'s."""
    where = display_path(str(_target(exc, path))) if _target(exc, path) else "mirage-mailer"
    what = exc.strerror or str(exc) or type(exc).__name__
    fix = fix_for(exc.errno or 0)
    return StateWriteError(Problem(where, None, f"{verb}: {what}",
                                   f"{fix}; {RESUMES}" if resumes else fix))


def _target(exc: OSError, path: Path | str | None) -> Path | str | None:
    if exc.filename is None or isinstance(exc.filename, int):
        return path
    touched = Path(os.fsdecode(exc.filename))
    if path is not None:
        made = Path(path)
        if touched.parent == made.parent and touched.name.startswith(f".{made.name}."):
            return made  # statedir's temporary file: the user knows the real name
    return touched


def is_state_fault(exc: BaseException) -> bool:
    """An ``OSError`` that a full or read-only disk (or a misplaced file) explains."""
    return isinstance(exc, OSError) and exc.errno in STATE_ERRNOS
