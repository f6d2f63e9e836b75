"""One pace for several sending processes (``delivery/pace_shared.py``).

The shared memory must make the pacer decide exactly as it does alone (same simulation, same
answers), hold a configured rate for the sum of real forked processes, pass what one process
learnt to the others, and never leave its lock held by a process that was killed.
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from typing import NoReturn

import pytest
from test_delivery_pacer import Clock, simulate_bucket

from mirage_mailer.delivery.pace_shared import SharedLog, SharedState
from mirage_mailer.delivery.pace_state import DequeLog, LocalState
from mirage_mailer.delivery.pacer import AdaptiveRate, Pacer

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork and memfd")


def test_a_ring_log_answers_as_the_in_memory_log_does() -> None:
    """Appends, trims and counts at random over a ring that wraps many times; a full ring
    forgets its oldest instant."""
    rng = random.Random(13)
    capacity = 50
    ring = SharedLog(memoryview(bytearray(8 * (2 + capacity))).cast("d"), 0, 2, capacity)
    plain = DequeLog()
    now = 0.0
    for _ in range(3000):
        now += rng.expovariate(20)
        ring.append(now)
        plain.append(now)
        if len(plain) > capacity:
            plain.drop_until(plain.oldest())
        if rng.random() < 0.2:
            edge = now - rng.uniform(0, 3)
            ring.drop_until(edge)
            plain.drop_until(edge)
        start = now - rng.uniform(0, 4)
        end = start + rng.uniform(0, 4)
        assert len(ring) == len(plain)
        assert ring.count(start, end) == plain.count(start, end)
        if len(plain):
            assert ring.oldest() == plain.oldest()


@linux
@pytest.mark.parametrize("relay_rate", [5, 50, 500])
def test_the_shared_memory_paces_exactly_as_a_process_alone(relay_rate: float) -> None:
    """The token-bucket simulation, once with the pacer's own memory and once with the
    shared one: the same starts, refusals, learnt pace and cuts."""
    *alone, pacer = simulate_bucket(relay_rate, 20)
    shared = SharedState()
    try:
        *together, shared_pacer = simulate_bucket(relay_rate, 20, state=shared)
        assert together == alone
        assert shared_pacer.rate == pacer.rate and shared_pacer.cuts == pacer.cuts > 0
    finally:
        shared.close()


@linux
def test_the_hourly_cap_holds_across_the_shared_memory() -> None:
    clock = Clock()
    shared = SharedState(per_hour=3)
    try:
        first = Pacer(per_second=None, per_hour=3, clock=clock, state=shared)
        second = Pacer(per_second=None, per_hour=3, clock=clock, state=shared)
        assert [first.claim(), second.claim(), first.claim()] == [0, 0, 0]
        assert second.claim() == pytest.approx(3600)  # the others' starts count too
        clock.advance(3600)
        assert second.claim() == 0
    finally:
        shared.close()


def _fork(child: Callable[[], None]) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            child()
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return pid


def _exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _starts(state: SharedState | None, rate: float, count: int, processes: int) -> list[float]:
    """``processes`` forked processes each take ``count`` starts from a pacer at ``rate``
    (over ``state``, or each over its own memory when None); every start time, sorted."""
    read_fd, write_fd = os.pipe()

    def child() -> None:
        pacer = Pacer(per_second=rate, per_hour=None, clock=time.monotonic, state=state)
        for _ in range(count):
            while (wait := pacer.claim()) > 0:
                time.sleep(wait)
            os.write(write_fd, f"{time.monotonic()!r}\n".encode())

    pids = [_fork(child) for _ in range(processes)]
    os.close(write_fd)
    with os.fdopen(read_fd) as lines:
        starts = sorted(float(line) for line in lines)
    assert [_exit_code(pid) for pid in pids] == [0] * processes
    return starts


def _fastest(starts: list[float], rate: float, span: int) -> float:
    """The fewest intervals of 1/rate that any ``span`` consecutive gaps took."""
    return min(starts[i + span] - starts[i] for i in range(len(starts) - span)) * rate


@linux
def test_a_configured_rate_holds_for_the_sum_of_the_processes() -> None:
    """Two processes on one shared pace at 100 msg/s: any 10 consecutive gaps between starts,
    whichever process took them, last at least 9.5 intervals (a start may come half an
    interval early to keep the grid; a loaded machine only makes them later)."""
    rate = 100.0
    shared = SharedState()
    try:
        starts = _starts(shared, rate, 25, 2)
    finally:
        shared.close()
    assert len(starts) == 50
    assert _fastest(starts, rate, 10) >= 9.5


@linux
def test_processes_pacing_apart_would_double_the_rate() -> None:
    """What the test above guards against: each process on its own pace starts as often as
    the rate allows it alone, so together they start twice as often (the check fails)."""
    starts = _starts(None, 100.0, 25, 2)
    assert _fastest(starts, 100.0, 10) < 9.5


@linux
def test_what_one_process_learns_paces_the_others() -> None:
    """A throttling relay measured in one process sets the pace another process enforces."""
    shared = SharedState()
    try:
        def child() -> None:
            clock = Clock()
            adaptive = AdaptiveRate(state=shared)
            for _ in range(10):
                adaptive.success(clock())
                clock.advance(0.001)
            adaptive.throttled(clock())
            for _ in range(60):  # saturated at 50 msg/s
                clock.advance(0.01)
                adaptive.throttled(clock())
                clock.advance(0.01)
                adaptive.success(clock())

        assert _exit_code(_fork(child)) == 0
        other = AdaptiveRate(state=shared)
        assert other.cuts == 1 and other.rate == pytest.approx(0.95 * 50, rel=0.05)
        assert other.measuring is None and other.throttles == 61
    finally:
        shared.close()


def _die_holding(state: SharedState, ready: int) -> NoReturn:  # pragma: no cover - the child
    state.__enter__()
    os.write(ready, b"x")
    time.sleep(60)
    os._exit(0)


@linux
def test_a_process_killed_inside_a_step_does_not_block_the_others() -> None:
    shared = SharedState()
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover
            _die_holding(shared, write_fd)
        assert os.read(read_fd, 1) == b"x"
        with pytest.raises(OSError):  # held by the child
            fcntl.lockf(shared._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        fcntl.lockf(shared._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the kernel dropped it
        fcntl.lockf(shared._fd, fcntl.LOCK_UN)
        pacer = Pacer(per_second=10, per_hour=None, clock=Clock(), state=shared)
        assert pacer.claim() == 0
    finally:
        os.close(read_fd)
        os.close(write_fd)
        shared.close()


def test_the_local_state_is_a_free_step() -> None:
    state = LocalState()
    with state as entered:
        assert entered is state
