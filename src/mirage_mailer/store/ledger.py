"""``.mirage/ledger``: what this folder has done that its tracking store must know.

A backup of the store is a picture of one moment. Put back after the project sent on, it
knows neither who got the issues since nor who unsubscribed or was erased since, and the
next run mails them all again. The ledger lives beside the store but outside the backup set
(docs/operations.md#backups), so a restore leaves it as it was: it still says how far this
folder got, and every suppression it recorded.

How far is a *mark*: the id and time of the store's newest event right after one of this
folder's commits (events are append-only, and their ids only grow). A store that still holds
the event with that id and that time is at least as new as the commit; a store put back from
an older picture does not (a lower id, or the id taken again later by another event, with
another time). Each record carries the mark of its commit:

* ``sent``: a send's batch of outcomes and claims reached the store, per issue;
* ``unsub`` / ``forget`` / ``lift``: a suppression recorded or lifted (a forgotten person
  only as the hash the store keeps, never the address);
* ``behind``: an issue found sent further than the store knows, until ``accept`` (``send
  --accept-restore``) or ``new-store`` (``send --new-store``) closes it.

One line of JSON per record, appended with one ``write()`` (``O_APPEND``): a send adds one
small line per batch commit (a few thousand messages), never one per message. A line cut by a
crash is skipped, as the claim journal's are. The record is written after the store's commit,
so a crash in between leaves the store ahead of the ledger: never a false refusal.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirage_mailer.store.core import hashed_key
from mirage_mailer.util.statedir import FILE_MODE, create_once, private_dir, replace_atomically
from mirage_mailer.util.statefault import state_write_error

LEDGER = "ledger"
_HEADER = b'{"k": "mirage-mailer ledger", "v": 1}\n'

Mark = tuple[int, str]  # (event id, its time): the store's newest event after a commit
Record = dict[str, Any]


@dataclass
class LedgerState:
    """The ledger read back: per issue its newest mark, the open ``behind`` issues, and the
    suppressions as they now stand (the last word per address wins)."""

    issues: dict[str, Mark] = field(default_factory=dict)
    behind: set[str] = field(default_factory=set)
    unsubscribed: dict[str, str] = field(default_factory=dict)  # address key -> source
    forgotten: set[str] = field(default_factory=set)  # hashed keys
    last: Mark | None = None  # the newest mark of any record


class Ledger:
    """The ledger file of one project folder (``state_dir``)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LEDGER

    def append(self, records: list[Record], *, sync: bool = False) -> None:
        """Add ``records`` in one ``write()``. ``sync`` (a suppression: rare, and a promise
        to a person) puts them on disk before returning; a send's marks are not synced (a
        machine crash may lose the last one: the ledger then says less, never more)."""
        if not records:
            return
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        try:
            with self._locked(fcntl.LOCK_SH) as fd:
                os.write(fd, data)
                if sync:
                    os.fsync(fd)
        except OSError as exc:
            raise state_write_error(exc, self.path) from None

    @contextmanager
    def _locked(self, how: int) -> Iterator[int]:
        """The file open for appending under ``flock``: appenders share, ``erase`` (which
        replaces the file) excludes them; one that waited for it opens the new file."""
        while True:
            if not self.path.exists():
                private_dir(self.path.parent)
                create_once(self.path, _HEADER)  # whole or absent, whoever races us
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, FILE_MODE)
            try:
                fcntl.flock(fd, how)
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    yield fd
                    return
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)

    def erase(self, hashed: str) -> None:
        """``forget``: drop every line that names the address behind ``hashed`` (its
        unsubscribes), so this file keeps no more of the person than the store: the hash."""
        try:
            with self._locked(fcntl.LOCK_EX):
                kept = [line for line in self.path.read_bytes().split(b"\n")
                        if line and not _names(line, hashed)]
                replace_atomically(self.path, b"\n".join(kept) + b"\n")
        except OSError as exc:
            raise state_write_error(exc, self.path) from None

    def read(self) -> LedgerState:
        """Parse the ledger; a missing file is a folder that recorded nothing yet."""
        state = LedgerState()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return state
        except OSError as exc:
            raise state_write_error(exc, self.path) from None
        for line in data.split(b"\n"):
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line a crash cut, or the empty end
            if isinstance(record, dict):
                _apply(state, record)
        if state.forgotten:  # an erasure whose rewrite of this file did not happen
            state.unsubscribed = {key: source for key, source in state.unsubscribed.items()
                                  if hashed_key(key) not in state.forgotten}
        return state


def _names(line: bytes, hashed: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    if not isinstance(record, dict):
        return False
    named = record.get("e")
    keys = named if isinstance(named, list) else [named]
    return any(isinstance(k, str) and (k == hashed or hashed_key(k) == hashed) for k in keys)


def _mark(value: object) -> Mark | None:
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
            and isinstance(value[1], str)):
        return value[0], value[1]
    return None


def _apply(state: LedgerState, record: Record) -> None:
    kind = record.get("k")
    mark = _mark(record.get("m"))
    if mark is not None:
        state.last = mark
    issue = record.get("i")
    if kind == "sent" and isinstance(issue, str) and mark is not None:
        state.issues[issue] = mark
    elif kind == "behind" and isinstance(issue, str):
        state.behind.add(issue)
    elif kind == "accept" and isinstance(issue, str):
        state.behind.discard(issue)
        if mark is not None:
            state.issues[issue] = mark
        else:
            state.issues.pop(issue, None)
    elif kind == "new-store":  # a store started over knows no send; its suppressions are
        state.issues.clear()   # written back (a mark no store holds: compared next time)
        state.behind.clear()
        state.last = (0, "")
    elif kind == "unsub" and isinstance(record.get("e"), str):
        state.unsubscribed[record["e"]] = str(record.get("s") or "unsubscribe")
    elif kind == "forget" and isinstance(record.get("h"), str):
        state.forgotten.add(record["h"])
    elif kind == "lift":
        for key in record.get("e") or ():
            state.unsubscribed.pop(key, None)
            state.forgotten.discard(key)
