"""The project's state folder (``.mirage/``): owner-only, created safely by concurrent commands.

It holds the tracking database (personal data), the signing secret and lock files, so the
folder is 0700 and every file in it 0600, whatever the umask; a folder or file left too open
by an older version is tightened the next time a command touches it. Every creation tolerates
another process doing the same at the same moment (cron jobs, ``send`` beside ``preview``).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
SENT_MARKER = "sent"  # written once a real send has recorded recipients (see store.guard)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents, all 0700) if needed; make the folder owner-only.

    ``exist_ok`` everywhere: another process may be creating the same folder right now.
    """
    if not path.is_dir():
        if not path.parent.is_dir():
            private_dir(path.parent)
        path.mkdir(mode=DIR_MODE, exist_ok=True)
    tighten(path, DIR_MODE)
    return path


def tighten(path: Path, mode: int) -> None:
    """Drop group and other permission bits; quietly skips files we do not own or that vanished."""
    with contextlib.suppress(OSError):
        current = stat.S_IMODE(path.stat().st_mode)
        if current & 0o077:
            path.chmod(current & mode)


def _temp_beside(path: Path) -> Path:
    """A per-process temporary name beside ``path``, in a private folder."""
    private_dir(path.parent)
    return path.parent / f".{path.name}.{os.getpid()}.tmp"


def _write_synced(tmp: Path, data: bytes) -> None:
    """``data`` in ``tmp`` (0600), on disk before anyone can see it under its real name."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def create_once(path: Path, data: bytes) -> bool:
    """Write ``path`` with ``data`` (0600) unless it exists; True when this process wrote it.

    The content goes into a private temporary file first, which is then hard-linked into
    place: ``link`` fails when the name exists, so of two racing processes exactly one wins,
    and nobody ever sees a half-written file.
    """
    tmp = _temp_beside(path)
    try:
        _write_synced(tmp, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def replace_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` with ``data`` (0600) through a temporary file and a rename."""
    tmp = _temp_beside(path)
    try:
        _write_synced(tmp, data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
