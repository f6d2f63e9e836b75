"""Rate limits for the public endpoints that send mail (the sign-up form).

Per mailbox: the address with its case and ``+tag`` folded (``Ann+x@Example.org`` and
``ann@example.org`` are one mailbox), so tag variants cannot flood one person. Per client:
the address the request came from (behind ``--proxy-headers``, the forwarded one), an IPv6
client by its /64 (one subscriber line gets a whole /64 and can pick any address in it) and
an IPv4-mapped IPv6 address as the IPv4 address, so one visitor cannot make the site mail two
hundred strangers in a second.

Counted are sign-ups that passed the form's checks, whatever the store then does with them:
whether an address is already subscribed must not change what a visitor sees. Memory only
(a restart forgets; the store's own ten-minute rule per address still holds), and bounded:
keys whose window has passed are forgotten first. When the table is full of keys still within
their window, the client table forgets its oldest client (whoever can rotate that many
clients gains nothing from one client's count), but the mailbox table refuses the new mailbox
instead: forgetting a mailbox within its day would let a flood of other addresses reset it.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

log = logging.getLogger(__name__)

MAILBOX_LIMIT = 3  # confirmation mails per mailbox ...
MAILBOX_WINDOW = 24 * 3600.0  # ... per day
CLIENT_LIMIT = 10  # sign-ups per client ...
CLIENT_WINDOW = 3600.0  # ... per hour
MAX_KEYS = 50_000  # memory bound per table
IPV6_CLIENT_PREFIX = 64  # the smallest block an IPv6 subscriber line is given


def mailbox_key(address: str) -> str:
    """``local@domain`` lowercased, with the ``+tag`` of the local part cut off."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local.partition('+')[0].casefold()}@{domain.casefold()}"


def client_key(host: str) -> str:
    """The client a request counts against: an IPv6 address's /64 (``2001:db8:1:2::/64``),
    an IPv4-mapped one's IPv4 address, any other host as it is."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # no zone: fe80::1%eth0
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


class Admission(Enum):
    COUNTED = "counted"
    OVER_LIMIT = "over the limit"
    FULL = "a new key, and the table is full"


class Full(Enum):
    """What a table full of live keys does with a new key."""

    FORGET_OLDEST = "forget the oldest key"
    REFUSE = "refuse the new key"


@dataclass
class SlidingWindow:
    """At most ``limit`` events per key within ``window`` seconds, for at most ``max_keys``
    keys. Keys are kept in the order of their latest event, so the first one is the one whose
    window ends first."""

    limit: int
    window: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = MAX_KEYS
    when_full: Full = Full.FORGET_OLDEST
    _events: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        """How many keys are kept (at most ``max_keys``)."""
        return len(self._events)

    def _expire(self, now: float) -> None:
        """Forget the keys whose latest event is out of the window (all of theirs are)."""
        while self._events:
            first = next(iter(self._events.values()))
            if first and now - first[-1] < self.window:
                return
            self._events.popitem(last=False)

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key, deque())
        while events and now - events[0] >= self.window:
            events.popleft()
        return events

    def admit(self, key: str) -> Admission:
        """Count one event for ``key`` unless it is over the limit, or new while the table is
        full of live keys with ``Full.REFUSE`` (then nothing is counted)."""
        now = self.clock()
        self._expire(now)
        events = self._recent(key, now)
        if len(events) >= self.limit:
            return Admission.OVER_LIMIT
        if key not in self._events:
            if len(self._events) >= self.max_keys:
                if self.when_full is Full.REFUSE:
                    return Admission.FULL
                self._events.popitem(last=False)
            self._events[key] = events
        events.append(now)
        self._events.move_to_end(key)
        return Admission.COUNTED

    def allow(self, key: str) -> bool:
        """Count one event for ``key``; False (and not counted) when it may not have one."""
        return self.admit(key) is Admission.COUNTED

    def forget(self, key: str) -> None:
        """Forget every event of ``key`` (a client that proved who it is)."""
        self._events.pop(key, None)

    def retry_after(self, key: str | None = None) -> int:
        """Seconds until ``key`` may have one more event (0 when it may now); without a key,
        until the first key's window ends (the wait of a full table)."""
        now = self.clock()
        self._expire(now)
        if key is None:
            events = next(iter(self._events.values()), deque())
            if len(self._events) < self.max_keys or not events:
                return 0
            return max(1, int(events[-1] + self.window - now) + 1)
        events = self._recent(key, now)
        if len(events) < self.limit:
            return 0
        return max(1, int(events[0] + self.window - now) + 1)


class Verdict(Enum):
    """The answer of the limits to one sign-up."""

    ALLOWED = "allowed"
    CLIENT = "too many sign-ups from this client"
    MAILBOX = "this mailbox was sent its confirmations for the day"
    BUSY = "the mailbox table is full of mailboxes within their day"


@dataclass
class SignUpLimits:
    """The two limits of the sign-up form, shared by every request of one app."""

    clock: Callable[[], float] = time.monotonic
    max_keys: int = MAX_KEYS
    per_mailbox: SlidingWindow = field(init=False)
    per_client: SlidingWindow = field(init=False)
    _warned_full: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.per_mailbox = SlidingWindow(MAILBOX_LIMIT, MAILBOX_WINDOW, self.clock,
                                         self.max_keys, Full.REFUSE)
        self.per_client = SlidingWindow(CLIENT_LIMIT, CLIENT_WINDOW, self.clock,
                                        self.max_keys, Full.FORGET_OLDEST)

    def check(self, host: str, address: str) -> tuple[Verdict, int]:
        """Count one sign-up of ``address`` from ``host``; the verdict, and the seconds to
        wait for the refusals that have a wait (0 otherwise)."""
        client = client_key(host)
        if not self.per_client.allow(client):
            return Verdict.CLIENT, self.per_client.retry_after(client)
        admission = self.per_mailbox.admit(mailbox_key(address))
        if admission is Admission.COUNTED:
            self._warned_full = False
            return Verdict.ALLOWED, 0
        if admission is Admission.OVER_LIMIT:
            return Verdict.MAILBOX, 0
        if not self._warned_full:  # once per episode: a flood must not flood the log too
            self._warned_full = True
            log.warning("sign-ups refused: %d mailboxes were sent a confirmation within a "
                        "day (a flood of sign-ups?); new ones are taken again as those "
                        "days end", self.per_mailbox.max_keys)
        return Verdict.BUSY, self.per_mailbox.retry_after()
