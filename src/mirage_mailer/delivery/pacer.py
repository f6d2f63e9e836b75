"""Pacing: when the next transaction may start.

Three limits combine, the strictest wins:

* ``rate_per_second``: smooth spacing (1/rate between starts), so any per-second window a
  provider measures is respected.
* ``rate_per_hour``: a rolling-hour log of starts, exact for rolling and clock-hour quotas
  alike, so a small list never waits for pacing it does not need. Both rates are the
  project's budget per relay: with a ``ledger`` (``delivery/pace_ledger.py``) what earlier
  issues, runs and senders on the host took counts too (its hour in whole minutes).
* the adaptive rate: the pace the relay accepts, learnt from its throttle answers.

How the adaptive rate learns. Halving on every refusal (AIMD) saws between R/2 and R, and a
cut computed from a fixed window right after the first refusal mistakes a relay's small burst
(a token bucket that starts full) for its rate: 0.24 R at 50 msg/s with a burst of 10. So a
refusal does not cut at once: it opens a *measurement*. While the relay keeps refusing, it is
saturated, and what it accepts per second is its rate, whatever its algorithm (token bucket,
rolling window). After one window (longer at slow rates, to rest on enough successes) the pace
is set to the larger of two counts: the successes in the window before the first refusal
(exact for a one-second rolling window, which refills all at once) and in the window after
it (exact for a token bucket, whose burst is spent by then), times 0.95, or up to 0.99 when
only a few messages were refused (a pace just past the limit, or a pipeline that can hardly
reach it).
Nothing is lost meanwhile: a saturated relay accepts all it can, and refused messages are
retried. During the measurement the offered pace is held to about twice what is being
accepted, so the refusals stay few. After a cut the pace creeps upward (``probe_gain`` per
``probe_interval`` of time, however slow the pace: a pace that rose per success took minutes
to climb from a low one) to find a relay that allows more; crossing the limit opens the next
measurement.

A measurement that sees no success at all measured nothing. A rolling window longer than the
measurement does that: a quota of Q per W seconds taken at once at the start, the relay
refuses everything until the oldest of them is W seconds old (audit: 300 per 20 s drove the
pace to its 0.1 msg/s floor, 996 messages took 633 s instead of about 65). So the
measurement stays open, offering a probe now and then (``quiet_probes`` / seconds of
silence msg/s: few refusals, and a refill is seen soon), and ends at the first success: the
pace is then what the relay accepted from ``memory`` seconds before the silence until now,
which for that relay is Q / W. It is not cut while silent, and the relay still counts as
accepting (a refused recipient is not charged an attempt), since it was accepting until it
started refusing us.

Time comes from an injected clock so the logic is tested without sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from mirage_mailer.delivery.pace_ledger import PaceLedger
from mirage_mailer.delivery.pace_state import DequeLog, LocalState, PaceState, TimeLog


@dataclass(frozen=True)
class AdaptiveSettings:
    window: float = 1.0  # seconds over which accepted messages are counted
    min_samples: int = 8  # a measurement lasts until it rests on about this many successes
    max_measure: float = 10.0  # ... but never longer than this (s)
    backoff: float = 0.95  # settle at this fraction of the measured accepted rate ...
    gentlest: float = 0.99  # ... or up to this when only a few messages were refused
    probe_interval: float = 1.0  # at most one upward step per interval (s)
    probe_gain: float = 0.02  # each step raises the pace by this fraction
    floor: float = 0.1  # never slower than this (msg/s)
    min_hold: float = 0.25  # after a cut, answers to the old pace are ignored this long (s)
    max_hold: float = 10.0
    grace: float = 10.0  # "the relay is accepting": a success within this many seconds
    quiet_probes: float = 8.0  # while the relay accepts nothing: ~this / seconds of silence
    memory: float = 60.0  # successes kept this long (s): a silence's rate is read over them


@dataclass(frozen=True)
class _Measurement:
    """An open measurement, as read from the state: the relay started refusing at ``start``."""

    start: float
    before: float  # msg/s accepted in the window before the first refusal
    length: float  # seconds to measure
    last_refusal: float
    successes: int  # accepted since ``start``
    refusals: int  # refused since ``start``, the first included


class AdaptiveRate:
    """The relay's acceptable pace, learnt from successes and throttle answers.

    ``rate`` is None (unlimited) until the relay has refused long enough to be measured.
    ``pace(now)`` is what the pacer enforces: ``rate``, or during a measurement a limit that
    keeps the relay saturated without hammering it. What it remembers lives in ``state``
    (``delivery/pace_state.py``): its own, or the one the sending processes share.
    """

    def __init__(self, settings: AdaptiveSettings | None = None,
                 ceiling: float | None = None, state: PaceState | None = None) -> None:
        self.settings = settings or AdaptiveSettings()
        self.ceiling = ceiling
        self.state: PaceState = state if state is not None else LocalState()

    @property
    def rate(self) -> float | None:
        return self.state.rate

    @rate.setter
    def rate(self, value: float | None) -> None:
        self.state.rate = value

    @property
    def throttles(self) -> int:
        return self.state.throttles

    @property
    def cuts(self) -> int:
        return self.state.cuts

    @property
    def measuring(self) -> _Measurement | None:
        st = self.state
        if st.m_start is None:
            return None
        return _Measurement(st.m_start, st.m_before, st.m_length, st.m_last_refusal,
                            st.m_successes, st.m_refusals)

    def accepted(self, start: float, end: float) -> int:
        """Successes in (start, end]."""
        return self.state.successes.count(start, end)

    def pace(self, now: float) -> float | None:
        """The per-second limit in force now (None: unlimited)."""
        st = self.state
        if st.m_start is None:
            return st.rate
        elapsed = now - st.m_start
        if elapsed <= 0:
            return st.rate
        if st.m_successes == 0 and elapsed >= st.m_length:  # silent: probe, sparser and sparser
            quiet = max(self.settings.quiet_probes / elapsed, self.settings.floor)
            return quiet if st.rate is None else min(st.rate, quiet)
        optimistic = (st.m_successes + 1) / elapsed  # as if the next success came right now
        limit = max(2.0 * optimistic, st.m_before, self.settings.floor)
        return limit if st.rate is None else min(st.rate, limit)

    def success(self, now: float, *, bound: bool = True) -> None:
        """Record an accepted message; ``bound``: the pace made connections wait lately,
        so it is worth probing higher (a pace nobody waits on proves nothing)."""
        s, st = self.settings, self.state
        st.successes.append(now)
        start = st.m_start
        if start is not None and st.m_successes == 0 and now - start >= st.m_length:
            self._resume(now)  # before the log is trimmed: the silence is read over it
        st.successes.drop_until(now - max(s.window + s.max_measure, s.memory))
        st.last_success = now
        if st.m_start is not None:
            st.m_successes += 1
            self._settle(now)
        elif bound:
            self._maybe_probe(now)

    def _maybe_probe(self, now: float) -> None:
        s, st = self.settings, self.state
        rate = st.rate
        since = now - st.last_probe
        if rate is None or now < st.hold_until or since < s.probe_interval:
            return
        st.last_probe = now
        # per second, not per success: a slow pace climbs as fast as a brisk one; a gap with
        # no success proves nothing, so it counts for two of the pace's intervals at most
        rate *= (1 + s.probe_gain) ** (min(since, max(s.probe_interval, 2.0 / rate))
                                       / s.probe_interval)
        st.rate = None if self.ceiling is not None and rate >= self.ceiling else rate

    def throttled(self, now: float) -> bool:
        """Record a throttle answer; True when it lowered the rate."""
        s, st = self.settings, self.state
        st.throttles += 1
        if now < st.hold_until:
            return False  # an answer to a message started at the old pace
        if st.m_start is None:
            before = self.accepted(now - s.window, now) / s.window
            st.m_before = before
            st.m_length = min(s.max_measure,
                              max(s.window, s.min_samples / max(before, s.floor)))
            st.m_last_refusal = now
            st.m_successes, st.m_refusals = 0, 1
            st.m_start = now  # last: a half-written measurement is no measurement
            return False
        st.m_last_refusal = now
        st.m_refusals += 1
        return self._settle(now)

    def _settle(self, now: float) -> bool:
        """End a measurement that has run its length: cut to what the relay accepted, or
        drop it when the refusals stopped early (a blip, not a limit)."""
        s, st = self.settings, self.state
        start = st.m_start
        if start is None or now - start < st.m_length:
            return False
        if st.m_successes == 0:
            return False  # nothing accepted yet, so nothing measured: wait for a success
        st.m_start = None
        length = st.m_length
        if now - st.m_last_refusal > length / 2:
            return False  # the relay stopped refusing: it was not saturated
        after = self.accepted(now - length, now) / length
        # hammered (many refusals per success): 0.95 of it; barely over (a pace probed just
        # past the limit, or a pipeline that can hardly reach it): shave only the excess
        excess = st.m_refusals / max(1, st.m_successes)
        factor = min(s.gentlest, max(s.backoff, 1.0 - excess))
        self._cut(now, factor * max(st.m_before, after))
        return True

    def _resume(self, now: float) -> None:
        """End a silence: the relay refused everything for a whole measurement and now
        accepts again, as a rolling window does once its oldest messages age out. Its
        long-run rate is what it accepted over the span the log remembers (nothing was
        trimmed during the silence) until now: Q per W seconds taken at once, then W seconds
        refused, is Q / W."""
        st = self.state
        assert st.m_start is not None
        log = st.successes
        span = now - min(log.oldest(), st.m_start)  # at least the silence: never zero
        st.m_start = None
        self._cut(now, self.settings.backoff * len(log) / span)
        st.next_start = min(st.next_start, now)  # a slot booked at the silence's pace

    def _cut(self, now: float, rate: float) -> None:
        s, st = self.settings, self.state
        new = max(s.floor, rate)
        current = st.rate if st.rate is not None else self.ceiling
        if current is not None:
            new = min(new, current)
        st.rate = new
        st.cuts += 1
        st.hold_until = now + min(s.max_hold, max(s.min_hold, 2.0 / new))
        st.last_probe = st.hold_until

    def accepting(self, now: float) -> bool:
        """The relay accepted one of our messages recently, so a throttle is about pace."""
        st = self.state
        if st.last_success is None:
            return False
        grace = self.settings.grace
        if st.rate is not None:
            grace = max(grace, 3.0 / st.rate)
        if st.m_start is not None and st.m_start - st.last_success <= grace:
            return True  # it accepted until it began refusing us: a quota, however long
        return now - st.last_success <= grace


class WindowCap:
    """At most ``limit`` starts in any rolling ``window`` seconds (exact, memory ~ limit)."""

    def __init__(self, limit: float, window: float = 3600.0,
                 log: TimeLog | None = None) -> None:
        self.limit = max(1, math.floor(limit))
        self.window = window
        self._log: TimeLog = log if log is not None else DequeLog()

    def wait(self, now: float) -> float:
        """Seconds until one more start fits in the window."""
        log = self._log
        log.drop_until(now - self.window)
        return 0.0 if len(log) < self.limit else log.oldest() + self.window - now

    def book(self, now: float) -> None:
        self._log.append(now)


class Pacer:
    """Hands out start times for transactions, shared by every connection of a run (and, with
    a ``state`` from ``delivery/pace_shared.py``, by every sending process of a send).

    ``claim`` never books ahead: a worker that must wait sleeps and asks again, so a pace
    raised meanwhile takes effect at once. Start times stay on a 1/rate grid (a wake-up up to
    half an interval late does not push later starts back), so timer latency does not erode
    the rate, while idle time never adds up to a burst. A learnt pace close to what the
    pipeline itself can do loses many slots that way (no connection free at the instant), so
    there starts may catch up with the grid by up to ``CATCH_UP`` intervals: a burst of four
    that any relay metering us with a burst allowance accepts. A configured rate stays strict.

    Each public method is one step over the state (``with self.state``): shared, the step
    holds the processes' lock, and reads the clock inside it, so instants are in order.

    ``ledger`` (``delivery/pace_ledger.py``): the project's memory of the relay's budget, so
    the configured rates also hold across issues, runs and senders side by side; a claim
    goes only when both this run's pace and the ledger allow it.
    """

    CATCH_UP = 4

    def __init__(
        self,
        *,
        per_second: float | None,
        per_hour: float | None,
        clock: Callable[[], float],
        adaptive: bool = True,
        settings: AdaptiveSettings | None = None,
        state: PaceState | None = None,
        ledger: PaceLedger | None = None,
    ) -> None:
        self.per_second = per_second
        self.ledger = ledger
        self.clock = clock
        self.state: PaceState = state if state is not None else LocalState()
        self.hourly = WindowCap(per_hour, log=self.state.starts) if per_hour else None
        self.adaptive = (AdaptiveRate(settings, ceiling=per_second, state=self.state)
                         if adaptive else None)
        self._limited = per_second is not None or self.hourly is not None

    def _rate(self, now: float) -> float | None:
        learnt = self.adaptive.pace(now) if self.adaptive is not None else None
        if learnt is None:
            return self.per_second
        return learnt if self.per_second is None else min(self.per_second, learnt)

    @property
    def rate(self) -> float | None:
        """The current per-second pace (None: not limited per second)."""
        with self.state:
            return self._rate(self.clock())

    @property
    def cuts(self) -> int:
        """How many times the relay's refusals lowered the pace."""
        with self.state:
            return self.adaptive.cuts if self.adaptive is not None else 0

    def claim(self) -> float:
        """Take a start now and return 0, or return how long to wait before asking again.

        Nothing set and nothing learnt: go, without taking the processes' lock (a pace
        learnt meanwhile by another process applies from the next claim, as it would have
        a moment later)."""
        if self.free():
            return 0.0
        st = self.state
        with st:
            now = self.clock()
            rate = self._rate(now)
            if rate is not None and now < st.next_start:
                st.waited = now
                return st.next_start - now
            # the ledger's hour is this run's and more (its minutes round outward): this
            # run's own cap decides only where there is no ledger to keep
            if self.hourly is not None and (self.ledger is None or self.ledger.broken):
                wait = self.hourly.wait(now)
                if wait > 0:
                    return wait
            if self.ledger is not None:  # what earlier issues, runs and senders took
                wait = self.ledger.claim()
                if wait > 0:
                    return wait
            if self.hourly is not None:
                self.hourly.book(now)
            if rate is not None:
                interval = 1.0 / rate
                strict = self.per_second is not None and rate >= self.per_second
                slack = interval / 2 if strict else interval * self.CATCH_UP
                grid = st.next_start
                st.next_start = (grid if now - grid <= slack else now) + interval
            return 0.0

    def free(self) -> bool:
        """Nothing set and nothing learnt: every ``claim`` says go at once, so a start may be
        taken ahead of the moment it is used (``SmtpRun``'s chained messages)."""
        st = self.state
        return not self._limited and st.rate is None and st.m_start is None

    def unclaim(self) -> None:
        """The start just taken carried no message: give it back to the project's hourly
        budget (this run's own cap keeps it: it ends soon, and the run holds it only)."""
        if self.ledger is not None:
            with self.state:
                self.ledger.unclaim()

    def success(self) -> None:
        if self.adaptive is not None:
            st = self.state
            with st:
                now = self.clock()  # "bound": the pace, not the pipeline, limits us right now
                rate = self._rate(now)
                lately = 1.0 if rate is None else max(1.0, 2.0 / rate)  # a slow pace waits long
                self.adaptive.success(now, bound=now - st.waited <= lately)

    def throttled(self) -> bool:
        """Record a throttle answer; True when the pace was lowered."""
        if self.adaptive is None:
            return False
        with self.state:
            return self.adaptive.throttled(self.clock())

    def accepting(self) -> bool:
        """The relay accepts messages at some pace (so a throttle is not about the recipient)."""
        if self.adaptive is None:
            return False
        with self.state:
            return self.adaptive.accepting(self.clock())
