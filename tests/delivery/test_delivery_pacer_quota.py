"""The learnt pace against quotas counted over a long window, in simulated time.

Why: a relay that takes Q messages in any W seconds (rolling) and refuses the rest drove the
pace to its 0.1 msg/s floor when W was longer than the pacer's measurement (audit: 300 per
20 s, 996 messages in 633 s instead of about 65). The relay refills only W seconds after the
burst it took at the start, so a measurement of a few seconds saw no success at all.
These runs check the long-run accepted rate, the refusals, and the time the pace spends at
its floor while the relay has room; token buckets run alongside to show no regression.
"""

from __future__ import annotations

from collections import deque

import pytest
from test_delivery_pacer import Clock, drive

from mirage_mailer.delivery.pacer import AdaptiveSettings, Pacer

FLOOR = AdaptiveSettings().floor


class RollingWindow:
    """At most ``quota`` accepted in any ``window`` seconds; the audit's relay."""

    def __init__(self, quota: int, window: float) -> None:
        self.quota = quota
        self.window = window
        self.log: deque[float] = deque()

    def room(self, now: float) -> bool:
        while self.log and self.log[0] <= now - self.window:
            self.log.popleft()
        return len(self.log) < self.quota

    def admit(self, now: float) -> bool:
        if self.room(now):
            self.log.append(now)
            return True
        return False


class TokenBucket:
    """``rate`` per second, bursts of ``burst``, full at the start."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.last = Clock().now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def room(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= 1

    def admit(self, now: float) -> bool:
        if self.room(now):
            self.tokens -= 1
            return True
        return False


class Run:
    """What a simulated send saw after its first ``settle`` seconds."""

    def __init__(self, relay: RollingWindow | TokenBucket, seconds: float,
                 settle: float) -> None:
        self.relay = relay
        self.seconds = seconds
        self.settle = settle
        self.start = Clock().now
        self.accepted = self.refused = 0  # after ``settle``
        self.floor_with_room = 0.0  # seconds the pace sat at its floor while the relay had room
        self.worst_floor = 0.0  # the longest such stretch
        self._last: tuple[float, bool] | None = None
        self._stretch = 0.0
        _, self.total_accepted, self.total_refused, self.pacer = drive(
            relay.admit, seconds, concurrency=4, hop=0.004, watch=self._watch)

    def _watch(self, now: float, ok: bool, pacer: Pacer) -> None:
        if now - self.start >= self.settle:
            self.accepted += ok
            self.refused += not ok
        if self._last is not None:
            then, stuck = self._last
            if stuck:
                self.floor_with_room += now - then
                self._stretch += now - then
                self.worst_floor = max(self.worst_floor, self._stretch)
            else:
                self._stretch = 0.0
        rate = pacer.rate
        at_floor = rate is not None and rate <= FLOOR * 1.01
        self._last = (now, at_floor and self.relay.room(now))

    @property
    def long_run(self) -> float:
        """Accepted per second after the first ``settle`` seconds."""
        return self.accepted / (self.seconds - self.settle)


QUOTAS = [(15, 1.0), (75, 5.0), (300, 20.0), (900, 60.0), (1000, 600.0)]


@pytest.mark.parametrize(("quota", "window"), QUOTAS,
                         ids=[f"{q}-per-{w:g}s" for q, w in QUOTAS])
def test_a_rolling_window_quota_is_served_near_its_long_run_rate(quota: int,
                                                                  window: float) -> None:
    """Q per W (15 msg/s, the last one 1,000 per 10 min): after two windows the relay's
    long-run rate Q / W is reached, refusals stay a small share, the pace never idles at
    its floor while the relay has room."""
    seconds = max(300.0, 6 * window)
    run = Run(RollingWindow(quota, window), seconds, settle=2 * window)
    rate = quota / window
    assert run.long_run >= 0.7 * rate, f"{run.long_run / rate:.2f} x Q/W"
    assert run.total_refused <= 0.15 * run.total_accepted + quota, run.total_refused
    assert run.worst_floor <= 5.0, f"{run.worst_floor:.0f} s at the floor with room"


@pytest.mark.parametrize(("rate", "burst"), [(15.0, 10), (15.0, 300), (2.0, 50), (200.0, 10)])
def test_a_token_bucket_is_still_served_near_its_rate(rate: float, burst: int) -> None:
    """The same measure for token buckets: a small or a large burst, a slow or a fast rate."""
    run = Run(TokenBucket(rate, burst), 300.0, settle=30.0)
    assert run.long_run >= 0.9 * rate, f"{run.long_run / rate:.2f} R"
    assert run.total_refused <= 0.1 * run.total_accepted + 2 * burst, run.total_refused
    assert run.worst_floor == 0.0


def test_a_refusal_after_a_silence_counts_as_pace_not_as_the_recipient() -> None:
    """A relay that refuses for a whole window after a burst still meters us: a throttle
    answer then costs the recipient no attempt (``accepting``), however long the window."""
    clock = Clock()
    pacer = Pacer(per_second=None, per_hour=None, clock=clock)
    for _ in range(300):  # the burst the relay takes at the start
        pacer.success()
        clock.advance(0.002)
    pacer.throttled()  # the quota is used up: refusals for the next minute
    for _ in range(60):
        clock.advance(1.0)
        pacer.throttled()
        assert pacer.accepting()
    pace = pacer.rate
    assert pace is not None and pace < 1.0  # probing the silence, sparingly
    pacer.success()  # the window refills
    assert pacer.rate is not None and pacer.rate >= 0.9 * 300 / 61


def climb(rate: float, seconds: float) -> float:
    """How much a learnt ``rate`` that paces every start rises in ``seconds``."""
    clock = Clock()
    pacer = Pacer(per_second=None, per_hour=None, clock=clock)
    assert pacer.adaptive is not None
    pacer.adaptive.rate = rate
    end = clock.now + seconds
    while clock.now < end:
        while (wait := pacer.claim()) > 0:
            clock.advance(wait)
        clock.advance(0.004)
        pacer.success()
    assert pacer.rate is not None
    return pacer.rate / rate


def test_a_slow_pace_climbs_per_second_as_a_brisk_one_does() -> None:
    """Recovery is time-based: a pace of one message every two seconds, always used, rises
    about as fast per second as one of 50 msg/s (it did not rise at all: a wait of two
    seconds did not count as "the pace limits us", and a step was one per success)."""
    slow, brisk = climb(0.5, 60), climb(50.0, 60)
    assert brisk > 2.0
    assert slow == pytest.approx(brisk, rel=0.25)
