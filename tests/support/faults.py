"""Fault rules for the test relay (``SmtpSink``): what it answers instead of 250, and when.

A rule sees each MAIL, RCPT and DATA (and DATA-START: the DATA command, before any content;
GREET: a new connection, before the 220) as a ``Call`` and returns a ``Reply``, or None to
answer normally. They model what real relays do: refuse one address, fail a few times, drop or
stall after queueing a message, or answer it with a line that is no clear reply, greylist a
share of recipients, meter a sender with a token bucket or a rolling window.

A reply's text goes out as it is: it may be no SMTP reply at all ("OK queued"), hold two
reply lines ("250 Ok\r\n250 queued": more answers than commands), or carry control
characters, as broken or hostile relays send.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    """What a rule sees: a command about to be answered."""

    stage: str  # GREET | MAIL | RCPT | DATA-START | DATA
    address: str  # MAIL FROM at MAIL, RCPT TO at RCPT, the first recipient at DATA
    connection: int
    at: float


@dataclass(frozen=True)
class Reply:
    """A rule's answer. ``text=None`` answers nothing; ``close`` drops the connection after.

    ``store`` (at DATA): keep the message as received first, as a relay that queues it and
    then fails to say so; with ``text=None`` and a long ``delay`` it stalls (until the client
    hangs up), with ``delay=0`` it drops the connection at once.

    ``until``: hold the reply until the event is set (``delay`` is then the longest wait),
    without blocking the server's other connections.

    ``farewell`` (with ``close``): a line said after the reply, ``gap`` seconds later, before
    the close ("221 Bye", "421 closing"), as a relay with one message a connection does.
    """

    text: str | None
    close: bool = False
    delay: float = 0.0
    store: bool = False
    until: threading.Event | None = None
    farewell: str | None = None
    gap: float = 0.0


Rule = Callable[[Call], "Reply | None"]


@dataclass
class Fault:
    """Answer ``reply`` at ``stage`` (for ``address``, or anyone), ``times`` times or forever.

    ``reply=None, close=True`` drops the connection without answering. An object rather than
    a closure, so it reads well in a test report and can be passed to a pytest marker.
    """

    stage: str
    reply: str | None
    address: str | None = None
    times: int | None = None  # None: every time
    close: bool = False
    delay: float = 0.0

    def __call__(self, call: Call) -> Reply | None:
        if call.stage != self.stage or (self.address is not None and call.address != self.address):
            return None
        if self.times is not None:
            if self.times <= 0:
                return None
            self.times -= 1
        return Reply(self.reply, close=self.close, delay=self.delay)


def refuse(address: str, reply: str = "550 5.1.1 No such user here", *,
           stage: str = "RCPT") -> Fault:
    """Always answer ``reply`` for ``address`` at ``stage``."""
    return Fault(stage, reply, address)


def refuse_message(reply: str = "554 5.6.0 Content rejected", *,
                   stage: str = "DATA") -> Fault:
    """Answer ``reply`` at ``stage`` for every message, whoever it is for: a content filter
    (5xx after the body), or a relay whose size limit the message exceeds (552 at MAIL)."""
    return Fault(stage, reply)


def fail_times(times: int, reply: str | None, *, stage: str = "RCPT",
               address: str | None = None, close: bool = False, delay: float = 0.0) -> Fault:
    """Answer ``reply`` the first ``times`` matching times, then behave normally."""
    return Fault(stage, reply, address, times, close, delay)


def drop_in_data(times: int = 1, *, address: str | None = None) -> Fault:
    """Receive the whole message, then drop the connection instead of answering 250."""
    return Fault("DATA", None, address, times, close=True)


class StoreThenFail:
    """At DATA, once for each of a stable ``fraction`` of the recipients (by hash): queue the
    message, then drop the connection without a reply, or (``stall``) never reply until the
    client hangs up, or answer ``reply`` (a line that is no SMTP reply, two replies at once).
    The client cannot tell the first two from a message lost on the way: the duplicate case
    of RFC 5321 section 6.1. ``hit`` holds the addresses it did it to."""

    def __init__(self, fraction: float = 1.0, *, stall: bool = False,
                 seconds: float = 60.0, reply: str | None = None) -> None:
        self.fraction = fraction
        self.stall = stall
        self.seconds = seconds
        self.reply = reply
        self.hit: set[str] = set()

    def __call__(self, call: Call) -> Reply | None:
        if call.stage != "DATA" or call.address in self.hit:
            return None
        if not picked(call.address, self.fraction, "store"):
            return None
        self.hit.add(call.address)
        if self.reply is not None:
            return Reply(self.reply, store=True)
        if self.stall:
            return Reply(None, delay=self.seconds, store=True)
        return Reply(None, close=True, store=True)


def store_then_drop(fraction: float = 1.0) -> StoreThenFail:
    """Queue the message, then drop the connection without answering (see StoreThenFail)."""
    return StoreThenFail(fraction)


def store_then_stall(fraction: float = 1.0, *, seconds: float = 60.0) -> StoreThenFail:
    """Queue the message, then never answer (see StoreThenFail)."""
    return StoreThenFail(fraction, stall=True, seconds=seconds)


def store_then_answer(reply: str, fraction: float = 1.0) -> StoreThenFail:
    """Queue the message, then answer ``reply`` instead of a plain 250 (see StoreThenFail)."""
    return StoreThenFail(fraction, reply=reply)


class CloseAfterEach:
    """A relay that takes one message a connection (``per_link`` of them): it answers 250 to
    the end of DATA and hangs up, silently or after a ``farewell`` line (``gap`` seconds after
    the 250). With ``drop``, a stable share of the recipients (by hash) get no 250: their
    message is queued and the connection dropped, once each (the duplicate case of RFC 5321
    section 6.1). ``dropped`` holds the addresses it did that to."""

    def __init__(self, farewell: str | None = None, *, gap: float = 0.0,
                 drop: float = 0.0, per_link: int = 1) -> None:
        self.farewell = farewell
        self.gap = gap
        self.drop = drop
        self.per_link = per_link
        self.dropped: set[str] = set()
        self._carried: dict[int, int] = {}  # connection: messages it took

    def __call__(self, call: Call) -> Reply | None:
        if call.stage != "DATA":
            return None
        if (self.drop and call.address not in self.dropped
                and picked(call.address, self.drop, "close")):
            self.dropped.add(call.address)
            return Reply(None, close=True, store=True)
        carried = self._carried[call.connection] = self._carried.get(call.connection, 0) + 1
        if carried < self.per_link:
            return Reply("250 2.0.0 Ok: queued", store=True)
        return Reply("250 2.0.0 Ok: queued, closing", close=True, store=True,
                     farewell=self.farewell, gap=self.gap)

    def __repr__(self) -> str:
        return (f"CloseAfterEach(farewell={self.farewell!r}, gap={self.gap}, drop={self.drop}, "
                f"per_link={self.per_link})")


def drop_at_data_command(times: int = 1, *, address: str | None = None) -> Fault:
    """Drop the connection when DATA is sent, before any of the message: safe to retry."""
    return Fault("DATA-START", None, address, times, close=True)


class Gate:
    """Accepts the first ``after`` messages at once, then keeps each later one waiting for
    its 250 (received and stored, not yet answered) until the test calls ``open()``.

    For a test that acts while a send runs (unsubscribes, runs a second command, signals
    it): a relay that is merely slow races the test's own commands, and on a loaded machine
    (parallel test workers) the send can finish first. The gate holds the send at a point
    the test chooses, for as long as the test needs, up to ``timeout`` seconds (keep it below
    the transport's command timeout, or the held messages turn ``unknown``).
    """

    def __init__(self, after: int, *, timeout: float = 20.0) -> None:
        self.after = after
        self.timeout = timeout
        self.opened = threading.Event()
        self.accepted = 0

    def __call__(self, call: Call) -> Reply | None:
        if call.stage != "DATA" or self.opened.is_set():
            return None
        self.accepted += 1
        if self.accepted <= self.after:
            return None
        return Reply("250 2.0.0 Ok: queued after the gate", store=True, delay=self.timeout,
                     until=self.opened)

    def open(self) -> None:
        self.opened.set()

    def __deepcopy__(self, memo: dict[int, object]) -> Gate:
        """A fresh, closed gate (an Event cannot be copied): the ``sink`` fixture copies a
        marker's rules for every test."""
        return Gate(self.after, timeout=self.timeout)

    def __repr__(self) -> str:
        return f"Gate(after={self.after})"


def picked(address: str, fraction: float, salt: str = "") -> bool:
    """A stable choice of about ``fraction`` of all addresses (CRC-32 of the address)."""
    return zlib.crc32((salt + address.lower()).encode()) % 10_000 < fraction * 10_000


class Greylist:
    """Answer ``reply`` at RCPT, once, to a stable ``fraction`` of the recipients (by hash),
    as a greylisting or full-mailbox relay does; accept them when they come back."""

    def __init__(self, fraction: float,
                 reply: str = "451 4.7.1 Greylisted, please try again later") -> None:
        self.fraction = fraction
        self.reply = reply
        self.deferred: set[str] = set()

    def __call__(self, call: Call) -> Reply | None:
        if call.stage != "RCPT" or call.address in self.deferred:
            return None
        if not picked(call.address, self.fraction):
            return None
        self.deferred.add(call.address)
        return Reply(self.reply)


class TokenBucket:
    """A relay that allows ``rate`` messages per second with bursts of ``burst`` (a token
    bucket, full at the start, as providers meter senders); above it ``reply`` at RCPT."""

    def __init__(self, rate: float, *, burst: int = 10,
                 reply: str = "451 4.7.1 Rate limit exceeded, try again later",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.reply = reply
        self.clock = clock
        self.tokens = float(burst)
        self.last: float | None = None
        self.accepted = 0
        self.refused = 0
        self.disconnects = 0  # for the benchmark's report; this relay never drops

    def take(self, now: float) -> bool:
        """One message at ``now``: True (a token was there) or False (refuse it)."""
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.accepted += 1
            return True
        self.refused += 1
        return False

    def __call__(self, call: Call) -> Reply | None:
        if call.stage != "RCPT" or self.take(self.clock()):
            return None
        return Reply(self.reply)


class Throttle:
    """A relay that accepts at most ``rate`` messages per ``window`` seconds (rolling).

    Above that it answers ``reply`` (``451 4.7.1``) at ``stage`` (RCPT), and every
    ``disconnect_every``-th refusal ``421 4.7.0`` and a dropped connection instead, as
    providers do.
    """

    def __init__(self, rate: float, *, window: float = 1.0, disconnect_every: int = 5,
                 stage: str = "RCPT",
                 reply: str = "451 4.7.1 Rate limit exceeded, try again later",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = max(1, round(rate * window))
        self.window = window
        self.disconnect_every = disconnect_every
        self.stage = stage
        self.reply = reply
        self.clock = clock
        self.accepted: deque[float] = deque()
        self.refused = 0
        self.disconnects = 0

    def __call__(self, call: Call) -> Reply | None:
        if call.stage != self.stage:
            return None
        now = self.clock()
        while self.accepted and self.accepted[0] <= now - self.window:
            self.accepted.popleft()
        if len(self.accepted) < self.limit:
            self.accepted.append(now)
            return None
        self.refused += 1
        if self.disconnect_every and self.refused % self.disconnect_every == 0:
            self.disconnects += 1
            return Reply("421 4.7.0 Too many messages, slow down; closing", close=True)
        return Reply(self.reply)
