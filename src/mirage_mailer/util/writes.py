"""Files written where the user said (``init DIR``, ``preview --out``, ``archive --out``, a new
issue): a folder that cannot be written is the user's to fix, so one line and exit 2, not an
internal error. Only the writing goes inside ``writing``: an OSError while reading templates
or the store is another problem with its own words. Files that hold readers' addresses are
written owner-only (``open_private``)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from mirage_mailer.util.errors import InputError, Problem, display_path
from mirage_mailer.util.statedir import FILE_MODE

FIX = "choose a folder you can write to"


def check_folder_path(target: Path, what: str) -> None:
    """Refuse, before anything is asked or built, a folder under a file (``afile/sub``): the
    nearest part of it that exists must be a folder."""
    for part in (target, *target.parents):
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                raise InputError(Problem(display_path(target), None,
                                         f"cannot write {what}: {display_path(part)} is a file",
                                         FIX))
            return


@contextmanager
def writing(target: Path, what: str) -> Iterator[None]:
    """Turn an OSError raised inside into ``TARGET: cannot write WHAT: reason`` (exit 2),
    naming the file that failed too when it is not TARGET itself (``afile/sub`` fails at
    ``afile/sub/issues``: the reason, 'Not a directory', is about a part of it)."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        failed = exc.filename
        if isinstance(failed, str | bytes | os.PathLike):
            shown = display_path(Path(os.fsdecode(failed)))
            if shown != display_path(target):
                reason += f" at {shown}"
        raise InputError(Problem(display_path(target), None,
                                 f"cannot write {what}: {reason}", FIX)) from exc


def open_private(path: Path, *, newline: str | None = None) -> TextIO:
    """``path`` opened for writing text, owner-only (0600) whatever the umask: for files that
    hold readers' addresses (``send --dry-run --csv``, ``report --format html --out``), which
    other users of a shared server must not read, as ``.mirage/`` is owner-only. An existing
    file keeps its mode when opened, so it is tightened too (quietly skipped when it is not
    ours: we may still write it, as its owner allowed)."""
    fd = _private_fd(path)
    try:
        return os.fdopen(fd, "w", encoding="utf-8", newline=newline)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path, data: bytes) -> None:
    """``path`` written with ``data``, owner-only as ``open_private`` writes: preview files
    hold a reader's name, address and personal unsubscribe link."""
    with os.fdopen(_private_fd(path), "wb") as handle:
        handle.write(data)


def _private_fd(path: Path) -> int:
    """``path`` opened for writing, truncated, 0600 (an existing file of ours tightened)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with contextlib.suppress(OSError):
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, FILE_MODE)
    return fd
