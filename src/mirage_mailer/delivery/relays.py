"""Several relays, one run: a pool per relay, each fed from one shared to-do list by weight.

Every relay keeps its own ``SmtpRun`` (connections, pacer, throttle learner): pace is a
property of a relay, so nothing in the single-relay path changes. What they share is the work:

* New envelopes are dealt in smooth weighted round robin (weights 3:1 give A A B A, A A B A),
  on demand: a relay with a free connection deals until an envelope falls to it, and the
  ones that fall to the others wait in their short lanes (at most twice a relay's
  concurrency: memory stays flat, and an envelope dealt but not claimed is still pending in
  the store, so a crash loses nothing).
* A full lane means its relay is not keeping up with its share. While its oldest envelope
  is fresh (under ``LAG``) the relay that asked waits for room, so the weights hold while
  every relay keeps up; once it is older, that relay is behind (slow, paced, throttled, or
  stuck connecting) and leaves the rotation until it takes from its lane: it gets the
  envelopes it can send, the others send the rest at their own pace. An envelope that has
  waited ``PATIENCE`` in a lane is sent by whichever relay is free.
* Retries (a 4xx, a connection lost before the end of DATA) go to one shared heap: whichever
  relay is free takes them, so a message a dying relay could not finish goes out elsewhere.
* A relay whose run aborts (unreachable, AUTH refused, a stall) is out of rotation: it is
  dealt nothing more, the others take its lane and its retries, and ``on_out`` hears one
  line naming it and why. A message whose end of DATA it had written stays ``unknown``
  (``SmtpRun``); only when every relay is out does the run abort (exit 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from mirage_mailer.delivery.model import DeliveryAborted, DeliveryStats, Envelope, Outcome, Result
from mirage_mailer.delivery.pool import SmtpRun
from mirage_mailer.delivery.work import Job, _Due
from mirage_mailer.util.errors import Problem

PATIENCE = 2.0  # seconds dealt work may wait for its relay before another relay sends it
# seconds the oldest envelope of a full lane may wait before its relay counts as behind: a
# relay that keeps up takes one every few tens of milliseconds; one paced at 30 messages a
# second or slower with 4 connections (8 in its lane) lets them wait longer than this
LAG = 0.25


@dataclass(frozen=True)
class Lineup:
    """One relay's pool in a shared run, with its share and its name."""

    run: SmtpRun
    weight: int
    name: str  # its URL without a login


class Shared:
    """The work all lanes draw on: the caller's envelopes, the retry heap, one wake-up."""

    def __init__(self, source: Iterator[Envelope], clock: Callable[[], float],
                 patience: float, lag: float = LAG) -> None:
        self.source = source
        self.clock = clock
        self.patience = patience
        self.lag = lag
        self.retries: list[_Due] = []
        self.seq = itertools.count()
        self.wake = asyncio.Event()
        self.exhausted = False
        self.in_flight = 0
        self.lanes: list[Lane] = []

    def notify(self) -> None:
        self.wake.set()
        self.wake = asyncio.Event()

    def pull(self) -> Envelope | None:
        if self.exhausted:
            return None
        try:
            return next(self.source)
        except StopIteration:
            self.exhausted = True
            return None

    def deal(self) -> Lane | None:
        """The next relay in rotation by weight (smooth weighted round robin), among those
        still in it with room in their lane (a full one is behind: it sits this turn out)."""
        live = [lane for lane in self.lanes if not lane.stopping and not lane.full]
        if not live:
            return None
        total = sum(lane.weight for lane in live)
        for lane in live:
            lane.credit += lane.weight
        chosen = max(live, key=lambda lane: lane.credit)
        chosen.credit -= total
        return chosen

    def buffered(self) -> bool:
        return any(lane.waiting for lane in self.lanes)

    def leftovers(self) -> list[Job]:
        """Work no relay will do (every relay is out, or the run stopped)."""
        jobs = [d.job for d in sorted(self.retries)]
        self.retries.clear()
        for lane in self.lanes:
            jobs += [Job(envelope) for envelope, _ in lane.waiting]
            lane.waiting.clear()
        return jobs


class Lane:
    """One relay's view of the shared work (``delivery.work.Queue``)."""

    reroutes = True  # another relay may still send what this one gives up on

    def __init__(self, shared: Shared, weight: int, cap: int) -> None:
        self.shared = shared
        self.clock = shared.clock
        self.weight = weight
        self.cap = cap  # envelopes dealt to this relay that may wait for it
        self.credit = 0
        self.waiting: deque[tuple[Envelope, float]] = deque()  # (envelope, dealt at)
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def exhausted(self) -> bool:
        return self.shared.exhausted and not self.shared.buffered()

    @property
    def full(self) -> bool:
        return not self._stopping and len(self.waiting) >= self.cap

    def busy(self, now: float) -> bool:
        """Full, but moving: its oldest envelope has waited less than ``LAG``, so a relay
        that asks waits for room and the weights hold."""
        return self.full and now - self.waiting[0][1] < self.shared.lag

    def stop(self) -> None:
        self._stopping = True
        self.shared.notify()

    def _stale(self, now: float) -> bool:
        """Dealt work this relay cannot get to: it is out, or it has let it wait too long."""
        return bool(self.waiting) and (
            self._stopping or now - self.waiting[0][1] >= self.shared.patience)

    def take(self) -> Job | None:
        if self._stopping:
            return None
        shared = self.shared
        now = shared.clock()
        envelope: Envelope | None = None
        if shared.retries and shared.retries[0].due <= now:
            job = heapq.heappop(shared.retries).job
            shared.in_flight += 1
            return job
        others = [lane for lane in shared.lanes if lane is not self]
        stale = [lane for lane in others if lane._stale(now)]
        if self.waiting:
            envelope = self.waiting.popleft()[0]
            shared.notify()  # room in this lane: a relay waiting to deal may go on
        elif stale:
            envelope = stale[0].waiting.popleft()[0]
        elif not shared.exhausted:
            envelope = self._dealt(others, now)
        if envelope is None and shared.exhausted:  # nothing new: help with the longest lane
            lanes = [lane for lane in others if lane.waiting]
            if lanes:
                envelope = max(lanes, key=lambda lane: len(lane.waiting)).waiting.popleft()[0]
        if envelope is None:
            return None
        shared.in_flight += 1
        return Job(envelope)

    def _dealt(self, others: list[Lane], now: float) -> Envelope | None:
        """Deal new envelopes until one falls to this relay; None while another relay's lane
        is full but moving (this one waits: the weights hold while every relay keeps up). A
        lane full for longer is skipped (``Shared.deal``): its relay is behind."""
        shared = self.shared
        while not any(lane.busy(now) for lane in others):
            envelope = shared.pull()
            if envelope is None:
                return None
            lane = shared.deal()
            if lane is None or lane is self:
                return envelope
            lane.waiting.append((envelope, now))
            shared.notify()
        return None

    def _ready_in(self) -> float | None:
        """Seconds until this lane may find work (0: now), None when the run is done."""
        shared = self.shared
        now = shared.clock()
        if self.waiting or (shared.retries and shared.retries[0].due <= now):
            return 0.0
        others = [lane for lane in shared.lanes if lane is not self and lane.waiting]
        if any(lane._stale(now) for lane in others):
            return 0.0
        if shared.exhausted and others:
            return 0.0
        wait = shared.retries[0].due - now if shared.retries else math.inf
        for lane in others:
            wait = min(wait, lane.waiting[0][1] + shared.patience - now)
        if not shared.exhausted:
            busy = [lane for lane in others if lane.busy(now)]
            if not busy:
                return 0.0
            return min([wait] + [lane.waiting[0][1] + shared.lag - now for lane in busy])
        if shared.retries or shared.in_flight:
            return wait  # a message in flight may come back as a retry
        return None

    def retry(self, job: Job, delay: float) -> None:
        shared = self.shared
        heapq.heappush(shared.retries, _Due(shared.clock() + delay, next(shared.seq), job))
        shared.in_flight -= 1
        shared.notify()

    def put_back(self, job: Job) -> None:
        self.retry(job, 0.0)

    def done(self, job: Job) -> None:
        self.shared.in_flight -= 1
        self.shared.notify()

    def leftovers(self) -> list[Job]:
        return []  # shared: closed once every relay has finished (``deliver_relays``)

    async def sleep(self, seconds: float) -> bool:
        if seconds > 0 and not self._stopping:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            while not self._stopping and (left := deadline - loop.time()) > 0:
                try:
                    await asyncio.wait_for(self.shared.wake.wait(), left)
                except TimeoutError:
                    break
        return not self._stopping

    async def wait_ready(self) -> bool:
        while not self._stopping:
            wait = self._ready_in()
            if wait is None:
                return False
            if wait <= 0:
                return True
            wake = self.shared.wake.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake, None if math.isinf(wait) else wait)
        return False


async def deliver_relays(lineup: list[Lineup], envelopes: Iterator[Envelope], *,
                         on_result: Callable[[Result], None],
                         on_out: Callable[[str], None] | None = None,
                         patience: float = PATIENCE) -> DeliveryStats:
    """Run every relay's pool over ``envelopes``; raises ``DeliveryAborted`` only when every
    relay is out of rotation (each named, with why, in its one line)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    shared = Shared(envelopes, loop.time, patience)
    shared.lanes = [Lane(shared, entry.weight, 2 * entry.run.concurrency) for entry in lineup]
    out: list[str] = []

    async def one(entry: Lineup, lane: Lane) -> DeliveryStats:
        try:
            return await entry.run.run(iter(()), lane=lane)
        except DeliveryAborted as aborted:
            problem = aborted.problems[0]
            why = problem.message + (f" ({problem.hint})" if problem.hint else "")
            out.append(f"{entry.name}: {why}")
            if on_out is not None and len(out) < len(lineup):  # the others carry on
                on_out(f"relay {entry.name} is out of rotation: {why}")
            lane.stop()
            return aborted.stats
        except BaseException:  # the caller's envelopes or callbacks failed: stop everyone
            for each in shared.lanes:
                each.stop()
            raise
        finally:
            lane.stop()  # done or out: deal it nothing more, let the others take its lane

    tasks = [loop.create_task(one(entry, lane)) for entry, lane in zip(lineup, shared.lanes,
                                                                         strict=True)]
    try:
        done = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
    for part in done:
        if isinstance(part, BaseException):
            raise part
    parts = [part for part in done if isinstance(part, DeliveryStats)]
    stopped = any(part.stopped for part in parts)
    closed = _close(shared, "run stopped" if stopped or len(out) < len(lineup)
                    else "every relay is out of rotation", on_result)
    stats = _total(parts, loop.time() - started, closed)
    if len(out) == len(lineup):
        raise DeliveryAborted(Problem("transport.relays", None,
                                      "every relay is out of rotation: " + "; ".join(out)),
                              stats)
    return stats


def _close(shared: Shared, reason: str, on_result: Callable[[Result], None]) -> int:
    """Give the work no relay did its final word, as ``SmtpRun`` does for its own."""
    count = 0
    for job in shared.leftovers():
        last = job.last
        if last is None:
            code, text, relay = None, f"not attempted: {reason}", ""
        else:
            code, text, relay = last.code, f"{last.response} (not retried: {reason})", last.relay
        on_result(Result(job.envelope, Outcome.DEFERRED, code, text, True, relay))
        count += 1
    return count


def _total(parts: list[DeliveryStats], elapsed: float, closed: int) -> DeliveryStats:
    total = DeliveryStats()
    for part in parts:
        total = replace(
            total, sent=total.sent + part.sent, failed=total.failed + part.failed,
            deferred_final=total.deferred_final + part.deferred_final,
            unknown=total.unknown + part.unknown, attempts=total.attempts + part.attempts,
            connections=total.connections + part.connections,
            throttled=total.throttled + part.throttled,
            rate_cuts=total.rate_cuts + part.rate_cuts, stopped=total.stopped or part.stopped,
            reoffered=total.reoffered + part.reoffered)
    rates = [p.paced_rate for p in parts if p.paced_rate is not None]
    return replace(total, deferred_final=total.deferred_final + closed, elapsed=elapsed,
                   paced_rate=sum(rates) if rates else None)
