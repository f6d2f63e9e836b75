"""Rate limits for the public endpoints that send mail (the sign-up form).

Per mailbox: the address with its case and ``+tag`` folded (``Ann+x@Example.org`` and
``ann@example.org`` are one mailbox), so tag variants cannot flood one person. Per client:
the address the request came from (behind ``--proxy-headers``, the forwarded one), so one
visitor cannot make the site mail two hundred strangers in a second.

Counted are sign-ups that passed the form's checks, whatever the store then does with them:
whether an address is already subscribed must not change what a visitor sees. Memory only
(a restart forgets; the store's own ten-minute rule per address still holds), and bounded.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAILBOX_LIMIT = 3  # confirmation mails per mailbox ...
MAILBOX_WINDOW = 24 * 3600.0  # ... per day
CLIENT_LIMIT = 10  # sign-ups per client ...
CLIENT_WINDOW = 3600.0  # ... per hour
MAX_KEYS = 50_000  # memory bound: the least recently used keys are forgotten first


def mailbox_key(address: str) -> str:
    """``local@domain`` lowercased, with the ``+tag`` of the local part cut off."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local.partition('+')[0].casefold()}@{domain.casefold()}"


@dataclass
class SlidingWindow:
    """At most ``limit`` events per key within ``window`` seconds."""

    limit: int
    window: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = MAX_KEYS
    _events: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque()
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(key)
        while events and now - events[0] >= self.window:
            events.popleft()
        return events

    def allow(self, key: str) -> bool:
        """Count one event for ``key``; False (and not counted) when over the limit."""
        now = self.clock()
        events = self._recent(key, now)
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may have one more event (0 when it may now)."""
        now = self.clock()
        events = self._recent(key, now)
        if len(events) < self.limit:
            return 0
        return max(1, int(events[0] + self.window - now) + 1)


@dataclass
class SignUpLimits:
    """The two limits of the sign-up form, shared by every request of one app."""

    clock: Callable[[], float] = time.monotonic
    per_mailbox: SlidingWindow = field(init=False)
    per_client: SlidingWindow = field(init=False)

    def __post_init__(self) -> None:
        self.per_mailbox = SlidingWindow(MAILBOX_LIMIT, MAILBOX_WINDOW, self.clock)
        self.per_client = SlidingWindow(CLIENT_LIMIT, CLIENT_WINDOW, self.clock)
