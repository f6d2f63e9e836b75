"""The run's to-do list: retries that are due first, then the next envelope from the caller.

Envelopes are pulled from the caller's iterator only when a connection is ready to transmit,
so memory stays flat for any list size. Retries wait in a small heap ordered by due time.
One wake-up signal serves every waiter: a retry added, a message finished, or the run stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from mirage_mailer.delivery.model import Envelope, Result


@dataclass
class Job:
    """One envelope and its history in this run."""

    envelope: Envelope
    attempts: int = 0  # transmissions started
    strikes: int = 0  # failures counted toward max_attempts
    free_retries: int = 0  # throttle answers forgiven while the pacer adapts
    last: Result | None = None


@dataclass(order=True)
class _Due:
    due: float
    seq: int
    job: Job = field(compare=False)


class Queue(Protocol):
    """What a pool's workers use: a ``WorkQueue`` of their own, or one relay's lane of a
    queue that several relays share (``delivery/relays.py``)."""

    clock: Callable[[], float]

    @property
    def stopping(self) -> bool: ...

    @property
    def exhausted(self) -> bool: ...

    @property
    def reroutes(self) -> bool:
        """True when a job this pool gives up on may still go out through another relay."""
        ...

    def stop(self) -> None: ...
    def take(self) -> Job | None: ...
    def retry(self, job: Job, delay: float) -> None: ...
    def put_back(self, job: Job) -> None: ...
    def done(self, job: Job) -> None: ...
    def leftovers(self) -> list[Job]: ...
    async def sleep(self, seconds: float) -> bool: ...
    async def wait_ready(self) -> bool: ...


class WorkQueue:
    reroutes = False  # one relay: a job given up on stays pending for the next run

    def __init__(self, source: Iterator[Envelope], clock: Callable[[], float]) -> None:
        self._source = source
        self.clock = clock
        self._retries: list[_Due] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self.exhausted = False  # the caller's iterator has no more envelopes
        self.stopping = False  # stop or abort: hand out nothing more
        self.in_flight = 0
        self.pulled = 0

    def notify(self) -> None:
        """Wake every waiter so it re-checks its condition."""
        self._wake.set()
        self._wake = asyncio.Event()

    def stop(self) -> None:
        self.stopping = True
        self.notify()

    def take(self) -> Job | None:
        """A due retry, else the next envelope; None when nothing is ready right now."""
        if self.stopping:
            return None
        if self._retries and self._retries[0].due <= self.clock():
            job = heapq.heappop(self._retries).job
        elif not self.exhausted:
            try:
                envelope = next(self._source)
            except StopIteration:
                self.exhausted = True
                return None
            self.pulled += 1
            job = Job(envelope)
        else:
            return None
        self.in_flight += 1
        return job

    def retry(self, job: Job, delay: float) -> None:
        heapq.heappush(self._retries, _Due(self.clock() + delay, next(self._seq), job))
        self.in_flight -= 1
        self.notify()

    def put_back(self, job: Job) -> None:
        """Return a job that was taken but never attempted (its connection failed)."""
        self.retry(job, 0.0)

    def done(self, job: Job) -> None:
        self.in_flight -= 1
        self.notify()

    def leftovers(self) -> list[Job]:
        """Retries that will not happen (the run is ending); the caller closes them."""
        jobs = [d.job for d in sorted(self._retries)]
        self._retries.clear()
        return jobs

    async def sleep(self, seconds: float) -> bool:
        """Sleep, but wake early when the run stops; False when it did."""
        if seconds > 0 and not self.stopping:
            wake = self._wake
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            while not self.stopping and (left := deadline - loop.time()) > 0:
                try:
                    await asyncio.wait_for(wake.wait(), left)
                except TimeoutError:
                    break
                wake = self._wake
        return not self.stopping

    async def wait_ready(self) -> bool:
        """Wait until work may be taken; False when the run has nothing left (or stops)."""
        while not self.stopping:
            if not self.exhausted:
                return True
            if self._retries:
                left = self._retries[0].due - self.clock()
                if left <= 0:
                    return True
                wake = self._wake
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), left)
            elif self.in_flight:
                await self._wake.wait()  # a message in flight may come back as a retry
            else:
                return False
        return False
