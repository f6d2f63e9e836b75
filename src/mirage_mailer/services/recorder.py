"""Recording a send in the tracking store with as few commits as crash safety allows.

Crash safety needs two things per message: its row is durably ``sending`` before the message
leaves, and durably ``sent`` (or failed, or pending again) once the server has answered. So:

* an outcome waits (at most ``HOLD`` seconds) to share the commit of its connection's next
  claim; while held, the row is still ``sending`` on disk, but that connection then has no
  other row in flight, so a crash still leaves at most ``concurrency`` rows ``unknown``;
* claims wait for the end of the event loop's current pass, so connections that become ready
  together (their replies arrived in the same poll) share one commit.

A commit costs about twice the statements it carries. Against a fast local relay about 1.2
claims share each commit, so one commit per message is the real floor; sharing saves more
when replies bunch up. (A writer thread with group commit reached 1.8 claims per commit but
was measured slower: the GIL hand-offs cost more than the commits saved.)
"""

from __future__ import annotations

import asyncio

from mirage_mailer.store import RecorderStore

_Outcome = tuple[int, str, int | None, str]  # row id, sent|deferred|failed|unknown, code, response


class SendRecorder:
    HOLD = 0.02  # seconds an outcome may wait for a claim to share its commit

    def __init__(self, store: RecorderStore) -> None:
        self.store = store
        self.held: list[_Outcome] = []
        self.claims: list[tuple[int, str, asyncio.Future[bool]]] = []
        self.timer: asyncio.TimerHandle | None = None

    def hold(self, key: int, kind: str, code: int | None, response: str) -> None:
        """Record an attempt's outcome with the next commit (within ``HOLD`` seconds).

        One timer at a time serves every held outcome: a commit does not cancel it (that
        would mean a new timer per message), it just finds nothing held when it fires.
        """
        self.held.append((key, kind, code, response))
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.HOLD, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.flush()

    async def claim(self, key: int, message_id: str) -> bool:
        """Mark the row ``sending``, committed, before its message leaves; False when it is
        no longer pending (unsubscribed meanwhile), so it must not be sent."""
        loop = asyncio.get_running_loop()
        claimed: asyncio.Future[bool] = loop.create_future()
        if not self.claims:
            loop.call_soon(self.flush)
        self.claims.append((key, message_id, claimed))
        return await claimed

    def close(self) -> None:
        """The run is over: commit what is held, and stop the timer."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.flush()

    def flush(self) -> None:
        """Commit everything waiting now: held outcomes first, then the claims."""
        held, self.held = self.held, []
        claims, self.claims = self.claims, []
        if not held and not claims:
            return
        try:
            claimed = self.store.record(held, [(key, mid) for key, mid, _ in claims])
        except Exception as exc:  # the claimers re-raise it: the run stops
            if not claims:
                raise
            for _, _, future in claims:
                if not future.done():
                    future.set_exception(exc)
            return
        for key, _, future in claims:
            if not future.done():  # a cancelled claimer: its row stays sending -> unknown
                future.set_result(key in claimed)
