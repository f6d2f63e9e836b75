"""Recording a send: the claim journal first, the tracking store in batches.

Crash safety needs two things per message: a durable mark that it is in flight before it
leaves, and a durable outcome once the server has answered. Both are a line in the claim
journal (``services/journal.py``): one ``write()``, which survives the process being killed.
The store is brought up to date every ``BATCH`` outcomes or ``EVERY`` seconds, in one commit
that also marks the messages then on the wire ``sending``; the journal then starts over.

Before a claim, the store says whether the row is still pending (``claimable``: a look at
SQLite's WAL index, and a read only once something has committed): a reader who unsubscribed
since the row was queued is not sent, exactly as when each claim was a commit.

Measured (py-spy, 30,000 recipients to Postfix's smtp-sink): a commit per claim and per
outcome was 18 % of the send's samples; see docs/design.md, "Claim journal".

The journal must not be the only record of what may have gone out: lost or damaged after a
crash, it would leave every row claimed since the last batch ``pending``, to be mailed again
and recorded ``sent`` (audit 15i). So the run is registered with the store before its
journal exists (``open``), and rows are reserved in the store a chunk at a time before any
of them is handed out (``reserved``): one commit per ``RESERVE`` messages. Without a
readable journal, the next run makes the reserved rows still ``pending`` ``unknown``
(``store/journal_runs.py``).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TypeVar

from mirage_mailer.services.journal import Carried, Claimed, Journal, Outcome
from mirage_mailer.store import RecorderStore
from mirage_mailer.util.errors import MirageError
from mirage_mailer.util.statefault import StateWriteError

T = TypeVar("T")


class SendRecorder:
    BATCH = 2000  # outcomes per store commit
    EVERY = 0.5  # seconds an outcome may wait for its commit (what other readers see)
    RESERVE = 250  # rows reserved in the store per commit, before they are handed out

    @classmethod
    def open(cls, store: RecorderStore, path: Path, issue: str) -> SendRecorder:
        """A run's recorder: registered with the store first, then its journal made, so a
        crash at any point after leaves a run the next start ends (``settle``)."""
        run = secrets.token_hex(8)
        store.register_journal(issue, run)
        return cls(store, Journal(path, issue, run))

    def __init__(self, store: RecorderStore, journal: Journal) -> None:
        self.store = store
        self.journal = journal
        self.held: list[Outcome] = []
        self.inflight: dict[int, Claimed] = {}
        self.relays: list[Carried] = []  # (row, who, attempt, relay) with transport.relays
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.failure: Exception | None = None  # a batch the store refused, in a timer

    def reserved(self, items: Iterable[T], key: Callable[[T], int]) -> Iterator[T]:
        """``items`` (rows to hand out, ``key`` their id) in chunks, each reserved in the store
        in one commit before the first of it is handed out; a row no longer pending (an
        unsubscription since it was read) is left out. A journal of an older kind (no run)
        reserves nothing."""
        run = self.journal.run
        source = iter(items)
        while chunk := list(islice(source, self.RESERVE)):
            if run is None:
                yield from chunk
                continue
            kept = self.store.reserve(run, [key(item) for item in chunk])
            yield from (item for item in chunk if key(item) in kept)

    def claim(self, key: int, who: str, attempt: int, message_id: str) -> bool:
        """Journal the row as in flight before its message leaves; False when it is no
        longer pending (unsubscribed meanwhile), so it must not be sent."""
        if self.failure is not None:
            raise self.failure
        if not self.store.claimable(key):
            return False
        at = self.store.stamp()
        try:
            self.journal.claim(key, who, attempt, message_id, at)
        except StateWriteError as full:  # the journal cannot grow: empty it into the store
            try:
                self.flush(force=True)
            except MirageError:  # the store refuses too: this one is not sent; run stops
                self.failure = full
                raise full from None
            self.journal.claim(key, who, attempt, message_id, at)
        self.inflight[key] = (key, who, attempt, message_id, at)
        return True

    def hold(self, key: int, who: str, attempt: int, message_id: str, kind: str,
             code: int | None, response: str, relay: str = "") -> None:
        """Journal an attempt's outcome now; the store gets it with the next batch. (The
        closing word on a retry that will not happen has no claim before it.) ``relay``
        (several relays) is in the outcome's line too, so a replay after a crash records
        who carried the message."""
        self.inflight.pop(key, None)
        if relay:
            self.relays.append((key, who, attempt, relay))
        at = self.store.stamp()
        self.held.append((key, who, attempt, kind, code, response, message_id, at))
        try:
            self.journal.outcome(key, who, attempt, kind, code, response, message_id, at,
                                 relay)
        except StateWriteError as exc:  # the journal cannot grow: the store takes it now
            self._flush_or_stop(exc)
            return
        if len(self.held) >= self.BATCH:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.EVERY, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        try:
            self.flush()
        except Exception as exc:  # the store refused: the next claim stops the run
            self.failure = exc

    def _flush_or_stop(self, journal_full: StateWriteError) -> None:
        """An outcome the journal had no room for is held in memory only: commit it now.
        If the store refuses too, no new recipient is claimed (the next claim raises); the
        outcome stays held for ``close``'s last try, and failing that, its claim in the
        journal leaves the row ``unknown``: never sent again unasked, never lost."""
        try:
            self.flush()
        except MirageError:  # the store refused as well: the next claim stops the run
            self.failure = journal_full

    def flush(self, *, force: bool = False) -> None:
        """Commit the held outcomes and the claims on the wire, then restart the journal.

        If the commit fails, everything stays held and in the journal (a later flush, or the
        next run's replay, brings it in): the journal restarts only after a commit.
        ``force``: restart it even with nothing held (it is full of what the store has).
        """
        if not self.held and not self.inflight and not self.relays and not force:
            return
        # the claims still on the wire become 'sending' in the store: the new journal then
        # only needs their outcomes
        self.store.record_batch(self.held, list(self.inflight.values()), self.relays)
        self.store.note_sent(self.journal.issue)  # the ledger: how far this issue got
        self.held = []
        self.relays = []
        self.journal.restart()

    def close(self) -> None:
        """The run is over: commit everything and remove the journal. A claim still open
        (the run was stopped with it on the wire) is left ``sending`` in the store, which
        makes it ``unknown``."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.closed:
            return
        self.flush()
        self.inflight.clear()
        if self.journal.run is not None:  # the store holds it all: its reservations are moot
            self.store.end_journal_run(self.journal.run)
        self.journal.remove()
        self.closed = True
