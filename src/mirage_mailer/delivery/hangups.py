"""A relay's messages-a-connection limit, learned from its hang-ups.

Some relays and ESP gateways take one message a connection (or a few) and hang up after the
250, with or without a 221/421 first. Our next MAIL usually leaves before the hang-up arrives,
so it finds the link gone: a wasted round trip (and, before the pool re-offered such a
message for free, a counted attempt). Once the relay has hung up twice in a row after the
same number of messages, the pool ends each link itself at that number and opens the next
one before it claims a message. A hang-up is no throttle: the pacer never hears of it.
"""

from __future__ import annotations


class Hangups:
    """The limit, once two hang-ups in a row came after the same number of messages."""

    def __init__(self) -> None:
        self.limit: int | None = None  # end each link after this many messages
        self._last: int | None = None

    def after(self, carried: int) -> None:
        """The relay hung up on a link that had carried ``carried`` messages."""
        if carried == self._last:
            self.limit = carried
        self._last = carried
