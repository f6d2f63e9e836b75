"""What to do when SQLite refuses a write: name the real cause, not "another process".

Why: a write that failed for a full disk or a file-size limit (``ulimit -f``) said "another
mirage-mailer process may hold it", which sends the user looking for a process that does not
exist. SQLite gives a result code (FULL, IOERR), not the ``errno`` behind it: a short write
under a size limit is FULL as well, and EFBIG or EDQUOT is an I/O error. So the cause is
read from the machine: this process's file-size limit against the database's files, then
the free space of its folder.
"""

from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

from mirage_mailer.util.statefault import fix_for

_BUSY, _LOCKED, _READONLY, _IOERR, _FULL = 5, 6, 8, 10, 13
_ROOM = 1 << 20  # less free space than this, for this user, is a full disk
_PAGE = 1 << 16  # a write of a few pages fails when a file is this close to the size limit
# a busy store, in one wording whichever step met it (opening, the health check, a write)
BUSY_HINT = "another mirage-mailer process may hold it (wait and rerun)"


def write_fault_hint(path: Path, code: int) -> str:
    """The hint for a write to ``path`` that failed with SQLite's primary ``code``."""
    if code in (_BUSY, _LOCKED):
        return BUSY_HINT
    if code == _READONLY:
        return "make the file and its folder writable by this user"
    cause = probable_errno(path)
    if cause is not None:
        return fix_for(cause)
    if code == _FULL:
        return fix_for(errno.ENOSPC)
    return ("the disk reports an I/O error, is read-only, or this user's quota is used up: "
            "check the disk, the file's permissions and the quota")


def probable_errno(path: Path) -> int | None:
    """EFBIG when a file of the database is at this process's size limit, ENOSPC when its
    folder has (almost) no room left for this user; None when neither explains it."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        for suffix in ("", "-wal", "-journal"):
            try:
                if os.stat(f"{path}{suffix}").st_size + _PAGE >= limit:
                    return errno.EFBIG
            except OSError:
                continue
    try:
        disk = os.statvfs(path.parent)
    except OSError:
        return None
    if disk.f_bavail * disk.f_frsize < _ROOM:
        return errno.ENOSPC
    return None
