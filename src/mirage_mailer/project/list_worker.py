"""A long CSV list read and checked on the second core while this process plans and writes.

Parsing and checking a row (the csv module, header safety, the address, the language) is
about half of what planning costs per row, and none of it depends on the store or on other
rows. So a list file of ``PARALLEL_BYTES`` or more is read by a forked child process that
sends its rows back in order, in batches of compact tuples (a ``Subscriber`` without the
list name and path, which are the same for every row); a ``RowProblem`` travels as it is,
and a problem that makes the file unusable ends the stream at the very row where reading it
in this process would have stopped, so callers see the same rows, the same row problems and
the same ``InputError``.

The child only reads the file: it holds no store connection of its own and leaves through
``os._exit`` (no clean-up of anything it inherited). It blocks when the pipe is full, so
memory stays flat in list size; when this process stops reading (done early, an exception,
Ctrl-C) the child is ended, and when this process dies the child's next write fails and it
exits. Fork only: a process with other threads running reads the list itself, as before.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import traceback
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mirage_mailer.util.errors import DeliveryError, InputError, Problem, display_path
from mirage_mailer.util.fieldsjson import fields_json
from mirage_mailer.util.forksafe import other_threads
from mirage_mailer.util.gcquiet import BULK_THRESHOLD

PARALLEL_BYTES = 4 << 20  # about 50,000 rows: a smaller list is read before a fork pays off
_BATCH = 2_000  # rows per message on the pipe
_END, _ROWS, _INPUT, _FAILED = "end", "rows", "input", "failed"

Reader = Callable[[Path, str], Iterator[Any]]  # lists._iter_csv


def can_fork() -> bool:
    """Forking is safe only while no other thread may hold a lock the child would need
    (the store's staging thread holds none: ``util/forksafe.py``)."""
    return "fork" in multiprocessing.get_all_start_methods() and other_threads() == 0


def iter_in_child(path: Path, list_name: str, reader: Reader, subscriber: type[Any], *,
                  subject: Callable[[str], str] | None = None) -> Iterator[Any]:
    """``reader(path, list_name)``'s rows, in order, read by a child process; with
    ``subject``, each row's ``subject`` is ``subject(row.email)``, computed by the child (a
    keyed hash: 2 µs a row that this process no longer spends)."""
    for payload in _from_child(path, partial(_row_batches, path, list_name, reader,
                                             subscriber, subject)):
        for item in payload:
            if type(item) is tuple:
                email, name, lang, fields, line, hashed, text = item
                yield subscriber(email, name, lang, fields, list_name, path, line,
                                 hashed, text)
            else:
                yield item


def columns_in_child(path: Path, list_name: str,
                     read: Callable[[Path, str], Iterator[Any]]) -> Iterator[Any]:
    """``read(path, list_name)``'s items (``list_columns.iter_columns``: a few objects per
    10,000 rows), read by a child process: each item is one message on the pipe."""
    for payload in _from_child(path, partial(_each, read, path, list_name)):
        yield from payload


def _from_child(path: Path, batches: Callable[[], Iterator[list[Any]]]) -> Iterator[Any]:
    """The lists ``batches()`` yields in a forked child, as they come; its ``InputError``
    raised here, after the rows before it. Read in this process when the fork fails."""
    ours, theirs = multiprocessing.get_context("fork").Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(
        target=_child, args=(ours, theirs, batches), daemon=True)
    with warnings.catch_warnings():  # Python 3.12+ warns at any fork beside a thread; the
        # threads can_fork lets by (util/forksafe.py) hold no lock the child takes
        warnings.filterwarnings("ignore", r"This process .* is multi-threaded",
                                DeprecationWarning)
        try:
            child.start()
            forked = True
        except OSError:  # no process to be had (a process or memory limit): read it here
            forked = False
    theirs.close()
    if not forked:  # outside ``catch_warnings``: its filter must not span the caller's code
        ours.close()
        yield from batches()
        return
    try:
        while True:
            try:
                kind, payload = ours.recv()
            except EOFError:
                raise reader_lost(path, child) from None
            if kind == _ROWS:
                yield payload
            elif kind == _END:
                return
            elif kind == _INPUT:
                raise InputError(payload)
            else:
                raise RuntimeError(f"reading {path} failed:\n{payload}")
    finally:
        ours.close()
        if child.is_alive():
            child.terminate()
        child.join()


def reader_lost(path: Path, child: Any) -> DeliveryError:
    """The child ended without its last message: killed (the OOM killer's SIGKILL, most
    likely) or exited. Why exit 3 and not a bug report: that is the machine's state, not
    ours, and a rerun reads the list again. The exit code is read after ``join``: before it,
    a child that just died still shows none."""
    child.join(timeout=5)
    code = child.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        cause = f"was killed by {name}"
        if -code == signal.SIGKILL:
            cause += " (out of memory?)"
    elif code is None:
        cause = "stopped answering"
    else:
        cause = f"exited with code {code}"
    return DeliveryError(Problem(display_path(path), None,
                                 f"the list reader {cause}; nothing was sent", "rerun"))


def _row_batches(path: Path, list_name: str, reader: Reader, subscriber: type[Any],
                 subject: Callable[[str], str] | None) -> Iterator[list[Any]]:
    """The rows as compact tuples (a ``Subscriber`` without the list name and path, which
    are the same for every row), ``_BATCH`` a list; the rows before an ``InputError`` are
    given before it is raised."""
    batch: list[Any] = []
    try:
        for row in reader(path, list_name):
            if type(row) is subscriber:
                if subject is None:
                    batch.append((row.email, row.name, row.lang, row.fields, row.line,
                                  None, None))
                else:
                    batch.append((row.email, row.name, row.lang, row.fields, row.line,
                                  subject(row.email), fields_json(row.fields)))
            else:
                batch.append(row)
            if len(batch) >= _BATCH:
                yield batch
                batch = []
    except InputError:
        yield batch
        raise
    yield batch


def _each(read: Callable[[Path, str], Iterator[Any]], path: Path,
          list_name: str) -> Iterator[list[Any]]:
    for item in read(path, list_name):
        yield [item]


def _child(parents: Connection, out: Connection,
           batches: Callable[[], Iterator[list[Any]]]) -> None:
    """Read, check and send; never returns (``os._exit``: nothing inherited is cleaned up)."""
    code = 0
    try:
        parents.close()  # the fork's copy of the reading end: with it open, a write to a
        # parent that died would block for ever instead of failing
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the send's handler: a SIGTERM
        # (the parent's terminate, or one sent to the group) simply ends this reader
        gc.freeze()  # what the fork inherited is never garbage here: no collection walks it
        gc.set_threshold(BULK_THRESHOLD)  # rows die by reference count (util/gcquiet.py)
        try:
            for batch in batches():
                out.send((_ROWS, batch))
        except InputError as exc:
            out.send((_INPUT, exc.problems))
        else:
            out.send((_END, None))
    except (BrokenPipeError, ConnectionResetError):
        code = 1  # the parent is gone or stopped reading
    except BaseException:  # reported to the parent, which raises it
        code = 1
        with contextlib.suppress(BaseException):  # else nobody is left to tell
            out.send((_FAILED, traceback.format_exc()))
    finally:
        os._exit(code)
