"""Recording a leased send: the shared store is the journal (a file on one host cannot be
read from another).

Right before a message goes on the wire its row becomes ``sending`` in one commit, together
with the outcomes held since the previous commit (``LeaseStore.mark``) and the claims of other
connections ready in the same turn of the event loop; an outcome waits at most until the next
claim or ``EVERY`` seconds. So after a SIGKILL at most ``concurrency``
rows of the killed sender are ``sending`` (``unknown`` once reaped), and everything else is as
the relay answered. A heartbeat extends the sender's lease every third of it; when it finds
the sender gone (reaped as dead after a stall longer than the lease), nothing more goes on
the wire and the run stops (``lost``). docs/design.md ("Several senders") has the reasons.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mirage_mailer.store import LeaseStore
from mirage_mailer.store.leases import LeaseOutcome


class LeaseRecorder:
    EVERY = 0.5  # seconds an outcome may wait for the next claim's commit

    def __init__(self, store: LeaseStore, owner: str, lease_seconds: float, *,
                 on_lost: Callable[[], None] = lambda: None, issue: str = "") -> None:
        self.store = store
        self.issue = issue  # for the folder's ledger (``store/ledger.py``)
        self._noted_at = 0.0  # when the ledger last got this send's mark
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.on_lost = on_lost
        self.held: list[LeaseOutcome] = []
        self.lost = False  # reaped as dead: nothing more may go on the wire
        self.failure: Exception | None = None  # the store refused, in a timer
        self.commit_seconds = 0.0  # time spent in claim/outcome commits (the bench's figure)
        self.commits = 0
        self._timer: asyncio.TimerHandle | None = None
        self._beat: asyncio.TimerHandle | None = None
        self._claims: list[tuple[tuple[int, str, str], asyncio.Future[bool]]] = []

    # -- heartbeat ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the heartbeat on the running event loop (every third of the lease)."""
        self._schedule_beat()

    def _schedule_beat(self) -> None:
        loop = asyncio.get_running_loop()
        self._beat = loop.call_later(self.lease_seconds / 3, self._on_beat)

    def _on_beat(self) -> None:
        self._beat = None
        try:
            alive = self.store.heartbeat(self.owner, self.lease_seconds)
        except Exception as exc:  # the store is gone: the next claim stops the run
            self.failure = exc
            self.on_lost()
            return
        if not alive:
            self.lose()
            return
        self._schedule_beat()

    def lose(self) -> None:
        """This sender was reaped: stop taking recipients, let nothing new on the wire."""
        if not self.lost:
            self.lost = True
            self.on_lost()

    # -- per message ---------------------------------------------------------------------------

    async def claim(self, key: int, message_id: str) -> bool:
        """Mark the row ``sending`` (with the held outcomes) right before its message leaves;
        False: it must not be sent (no longer pending, or no longer this sender's).

        Claims made in the same turn of the event loop (connections ready together) share
        one commit: the first schedules it, every one awaits it."""
        if self.failure is not None:
            raise self.failure
        if self.lost:
            return False
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._claims.append(((key, message_id, self.store.stamp()), waiter))
        if len(self._claims) == 1:
            loop.call_soon(self._commit_claims)
        return await waiter

    def _commit_claims(self) -> None:
        batch = [(claim, waiter) for claim, waiter in self._claims if not waiter.cancelled()]
        self._claims = []
        try:
            made = set() if self.lost else self._commit([claim for claim, _w in batch])
        except Exception as exc:  # the store refused: every waiting claim stops the run
            self.failure = exc
            for _claim, waiter in batch:
                waiter.set_exception(exc)
            return
        for claim, waiter in batch:
            waiter.set_result(claim[0] in made)

    def hold(self, key: int, kind: str, code: int | None, response: str, message_id: str,
             *, claimed: bool, relay: str = "") -> None:
        """An attempt's outcome; it goes with the next claim's commit, or within ``EVERY``.
        ``relay``: who carried it, with ``transport.relays`` ('' for the single relay)."""
        self.held.append((key, kind, code, response, message_id, self.store.stamp(), claimed,
                          relay or None))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.EVERY, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.flush()
        except Exception as exc:  # the store refused: the next claim stops the run
            self.failure = exc

    def flush(self) -> None:
        """Commit the held outcomes now."""
        if self.held:
            self._commit([])

    def _commit(self, claims: list[tuple[int, str, str]]) -> set[int]:
        began = time.perf_counter()
        made = self.store.mark(self.owner, self.held, claims)
        if self.held and began - self._noted_at >= self.EVERY:  # a round trip: not per claim
            self.store.note_sent(self.issue)
            self._noted_at = began
        self.held = []
        self.commit_seconds += time.perf_counter() - began
        self.commits += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return made

    def close(self) -> None:
        """Stop the timers and commit what is held (on the loop, before it closes)."""
        for handle in (self._timer, self._beat):
            if handle is not None:
                handle.cancel()
        self._timer = self._beat = None
        self.flush()
        self.store.note_sent(self.issue)  # the run's last mark, whatever the pace above
