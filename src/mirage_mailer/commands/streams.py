"""The process's standard streams as cron and odd locales leave them: closed (``>&-``, ``<&-``),
on a full disk (``>/dev/full``), or in an encoding that cannot hold a Greek name
(``LANG=fr_FR.ISO-8859-1``). None of these may turn a finished run into "internal error".

- A closed stream is reopened on /dev/null before anything else opens a file: otherwise the
  next file opened (the tracking database) would get its number, and output would go into it.
  A closed stdin reads as empty and is no terminal; a closed stdout is nobody reading.
- stdout never raises for a write that fails (a full disk, an I/O error): the first error is
  kept and every later write dropped, so a send is never stopped half-way by its own log;
  ``cli.main`` names stdout once at the end. A reader that has gone (EPIPE) still raises, as
  ``cli.main`` gives that its own code (141).
- Text for people goes out in the locale's encoding with ``backslashreplace`` (``é`` stays
  ``é`` on a Latin-1 terminal, ``Γ`` becomes ``\\u0393``); output for other tools (CSV, JSON)
  is UTF-8 whatever the locale (``machine_output``), as what reads it expects.

Only the standard library here: ``__main__`` calls ``open_standard_streams`` first thing.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

_installed: _GuardedStdout | None = None


class _GuardedStdout(io.FileIO):
    """File descriptor 1 whose failed writes are remembered instead of raised."""

    def __init__(self) -> None:
        super().__init__(1, "w", closefd=False)
        self.lost: OSError | None = None

    def write(self, data: ReadableBuffer, /) -> int:
        size = memoryview(data).nbytes
        if self.lost is not None:
            return size  # the output is lost from here on: say so once, at the end
        try:
            return super().write(data)
        except BrokenPipeError:
            raise  # the reader went away: cli.main ends with 141
        except OSError as exc:
            self.lost = exc
            return size


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _reopen_closed_fds() -> None:
    """Put /dev/null on standard file descriptors the caller closed."""
    for fd in (0, 1, 2):
        if not _fd_open(fd):
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _text(fd: int, *, like: TextIO | None, errors: str,
          raw: io.FileIO | None = None) -> io.TextIOWrapper:
    """A text stream on ``fd`` (over ``raw`` where given), buffered as ``like`` was."""
    raw = raw or io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
    buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
    encoding = getattr(like, "encoding", None) or _locale_encoding()
    interactive = os.isatty(fd)
    return io.TextIOWrapper(buffered, encoding=encoding, errors=errors,
                            line_buffering=getattr(like, "line_buffering", interactive),
                            write_through=getattr(like, "write_through", False))


def _locale_encoding() -> str:
    import locale

    return locale.getpreferredencoding(False) or "utf-8"


def open_standard_streams() -> None:
    """Make stdin, stdout and stderr usable whatever state the caller left them in (see the
    module's docstring). Called once per process, before the first file is opened."""
    global _installed
    if _installed is not None:
        return
    _reopen_closed_fds()
    if sys.stdin is None:
        sys.stdin = _text(0, like=None, errors="strict")
    if sys.stderr is None:
        sys.stderr = _text(2, like=None, errors="backslashreplace")
    old = sys.stdout
    with contextlib.suppress(Exception):
        if old is not None:
            old.flush()
    _installed = _GuardedStdout()
    sys.stdout = _text(1, like=old, errors="backslashreplace", raw=_installed)


def lost_output() -> OSError | None:
    """The first write to stdout that failed (a full disk), if any; flushes first."""
    if _installed is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    return _installed.lost


def machine_output() -> None:
    """Write stdout as UTF-8 from here on: CSV and JSON are for other tools, which expect
    UTF-8, not the terminal's locale (a Latin-1 locale cannot even hold a Greek name)."""
    stream = sys.stdout
    if not isinstance(stream, io.TextIOWrapper):
        return
    if codecs.lookup(stream.encoding).name != "utf-8":
        stream.reconfigure(encoding="utf-8", errors="backslashreplace")


def is_terminal(stream: TextIO | None) -> bool:
    """A stream that is missing or closed is no terminal (cron's ``<&-``)."""
    if stream is None:
        return False
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False
