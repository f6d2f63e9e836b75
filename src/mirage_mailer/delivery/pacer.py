"""Pacing: when the next transaction may start.

Three limits combine, the strictest wins:

* ``rate_per_second``: smooth spacing (1/rate between starts), so any per-second window a
  provider measures is respected.
* ``rate_per_hour``: a rolling-hour log of starts, exact for rolling and clock-hour quotas
  alike, so a small list never waits for pacing it does not need.
* the adaptive rate: the pace the relay accepts, learnt from its throttle answers
  (421/450/451/452). Halving on every refusal (AIMD) saws between R/2 and R and averages about
  0.75 R. Instead we measure the accepted rate from recent successes, settle just under it,
  and probe upward in steps that shrink as the pace nears the one last refused, so a
  throttling relay is served close to its real limit with few refusals.

Time comes from an injected clock so the logic is tested without sleeping.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AdaptiveSettings:
    window: float = 1.0  # seconds of successes that make up the accepted-rate estimate
    min_samples: int = 8  # fewer successes than this: the estimate is not trusted
    backoff: float = 0.95  # settle at this fraction of the measured accepted rate
    probe_interval: float = 0.5  # at most one upward step per interval (s)
    approach: float = 0.3  # each step closes this fraction of the gap to the refused pace
    probe_gain: float = 0.01  # smallest step, as a fraction of the rate
    floor: float = 0.1  # never slower than this (msg/s)
    max_hold: float = 10.0  # longest time throttles are ignored after a cut (s)
    grace: float = 10.0  # "the relay is accepting": a success within this many seconds


class AdaptiveRate:
    """The relay's acceptable pace, learnt from successes and throttle answers.

    ``rate`` is None (unlimited) until the relay first throttles. After each cut, throttles are
    ignored for a hold-off period: answers to messages started at the old pace, and a relay's
    window still full of them, say nothing about the new pace. Without a trustworthy estimate
    (few successes) the rate doubles per step, like TCP slow start, until the next refusal.
    """

    def __init__(self, settings: AdaptiveSettings | None = None,
                 ceiling: float | None = None) -> None:
        self.settings = settings or AdaptiveSettings()
        self.ceiling = ceiling
        self.rate: float | None = None
        self.refused_pace: float | None = None  # the last pace the relay refused
        self.discovering = False
        self.throttles = 0
        self.cuts = 0
        self._successes: deque[float] = deque()
        self._last_success: float | None = None
        self._hold_until = -math.inf
        self._last_probe = -math.inf
        self._early_throttles = 0

    def measure(self, now: float) -> tuple[float, int]:
        """Accepted msg/s over the recent past and how many successes that rests on.

        Time before the first success counts as empty, so an opening burst is not mistaken for
        a sustainable rate. With few successes in the window, the estimate reaches back to the
        last ``min_samples`` successes instead.
        """
        s = self.settings
        recent = self._successes
        in_window = sum(1 for t in recent if t > now - s.window)
        if in_window >= s.min_samples or not recent:
            return in_window / s.window, in_window
        span = max(now - recent[0], s.window)
        return len(recent) / span, len(recent)

    def success(self, now: float) -> None:
        s = self.settings
        self._successes.append(now)
        while len(self._successes) > s.min_samples and self._successes[0] <= now - s.window:
            self._successes.popleft()
        self._last_success = now
        self._maybe_probe(now)

    def _maybe_probe(self, now: float) -> None:
        s = self.settings
        rate = self.rate
        if rate is None or now < self._hold_until or now - self._last_probe < s.probe_interval:
            return
        if self.discovering:
            rate *= 2
        else:
            measured, n = self.measure(now)
            if n >= s.min_samples and measured < 0.8 * rate:
                return  # we are not using the pace we have; raising it proves nothing
            gap = (self.refused_pace or rate) - rate
            rate += max(rate * s.probe_gain, gap * s.approach)
        self._last_probe = now
        if self.ceiling is not None and rate >= self.ceiling:
            self.rate = None  # back to the configured limit only
        else:
            self.rate = rate

    def throttled(self, now: float) -> bool:
        """Record a throttle answer; True when it lowered the rate."""
        s = self.settings
        self.throttles += 1
        if now < self._hold_until:
            return False
        measured, n = self.measure(now)
        before = self.rate if self.rate is not None else self.ceiling
        if n >= s.min_samples:
            new = s.backoff * measured
            self.discovering = False
        elif before is not None:
            new = 0.5 * before
            self.discovering = True
        else:
            # Unlimited so far and few successes: one refusal may be about that recipient
            # (greylisting), so wait for a pattern before pacing at all.
            self._early_throttles += 1
            if self._early_throttles < s.min_samples:
                return False
            new = max(s.backoff * measured, 1.0)
            self.discovering = True
        new = max(new, s.floor)
        if before is not None:
            new = min(new, before)
        self.refused_pace = before if before is not None else max(measured, new)
        self.rate = new
        self.cuts += 1
        self._hold_until = now + min(s.max_hold, max(s.window, 3.0 / new))
        self._last_probe = self._hold_until - s.probe_interval
        return True

    def accepting(self, now: float) -> bool:
        """The relay accepted one of our messages recently, so a throttle is about pace."""
        if self._last_success is None:
            return False
        grace = self.settings.grace
        if self.rate is not None:
            grace = max(grace, 3.0 / self.rate)
        return now - self._last_success <= grace


class WindowCap:
    """At most ``limit`` starts in any rolling ``window`` seconds (exact, memory ~ limit)."""

    def __init__(self, limit: float, window: float = 3600.0) -> None:
        self.limit = max(1, math.floor(limit))
        self.window = window
        self._log: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more start fits in the window."""
        log = self._log
        while log and log[0] <= now - self.window:
            log.popleft()
        return 0.0 if len(log) < self.limit else log[0] + self.window - now

    def book(self, now: float) -> None:
        self._log.append(now)


class Pacer:
    """Hands out start times for transactions, shared by every connection of a run.

    ``claim`` never books ahead: a worker that must wait sleeps and asks again, so a pace
    raised meanwhile takes effect at once. Start times stay on a 1/rate grid (a wake-up up to
    half an interval late does not push later starts back), so timer latency does not erode
    the rate, while idle time never adds up to a burst.
    """

    def __init__(
        self,
        *,
        per_second: float | None,
        per_hour: float | None,
        clock: Callable[[], float],
        adaptive: bool = True,
        settings: AdaptiveSettings | None = None,
    ) -> None:
        self.per_second = per_second
        self.clock = clock
        self.hourly = WindowCap(per_hour) if per_hour else None
        self.adaptive = AdaptiveRate(settings, ceiling=per_second) if adaptive else None
        self._next = -math.inf

    @property
    def rate(self) -> float | None:
        """The current per-second pace (None: not limited per second)."""
        learnt = self.adaptive.rate if self.adaptive is not None else None
        rates = [r for r in (self.per_second, learnt) if r is not None]
        return min(rates) if rates else None

    def claim(self) -> float:
        """Take a start now and return 0, or return how long to wait before asking again."""
        now = self.clock()
        rate = self.rate
        if rate is not None and now < self._next:
            return self._next - now
        if self.hourly is not None:
            wait = self.hourly.wait(now)
            if wait > 0:
                return wait
            self.hourly.book(now)
        if rate is not None:
            interval = 1.0 / rate
            on_grid = now - self._next <= interval / 2
            self._next = (self._next if on_grid else now) + interval
        return 0.0

    def success(self) -> None:
        if self.adaptive is not None:
            self.adaptive.success(self.clock())

    def throttled(self) -> bool:
        """Record a throttle answer; True when the pace was lowered."""
        if self.adaptive is None:
            return False
        return self.adaptive.throttled(self.clock())

    def accepting(self) -> bool:
        """The relay accepts messages at some pace (so a throttle is not about the recipient)."""
        return self.adaptive is not None and self.adaptive.accepting(self.clock())
