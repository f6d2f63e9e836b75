"""Small prebuilt messages for the delivery layer's tests with several relays."""

from __future__ import annotations

from collections.abc import Iterator

from mirage_mailer.delivery import Envelope, RetryPolicy

FAST = RetryPolicy(backoff_base=0.05, backoff_max=0.5, connect_backoff=0.02)
SENDER = "news@example.org"


def envelopes(n: int) -> Iterator[Envelope]:
    """``n`` one-line messages to r0@example.net, r1@example.net, ..."""
    for i in range(n):
        to = f"r{i}@example.net"
        yield Envelope(i, SENDER, to, f"From: <{SENDER}>\nTo: <{to}>\nSubject: {i}\n\nHi\n"
                       .encode())
