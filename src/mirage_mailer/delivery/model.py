"""The values that cross the delivery boundary: what to send, what happened, how it went.

They are plain frozen data so the caller (the tracking store, the CLI) can keep, compare and
print them without knowing anything about SMTP or Maildir.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from mirage_mailer.util.errors import DeliveryError, Problem


@dataclass(frozen=True)
class Envelope:
    """One message for one recipient, ready to transmit."""

    key: int  # the caller's id (a tracking-store row id)
    sender: str  # envelope MAIL FROM (return path)
    recipient: str  # RCPT TO
    data: bytes  # complete RFC 5322 message, LF line endings (or wire format: ``wired``)
    # ``data`` is already as SMTP writes it after DATA (``wire.wire_format`` of the message:
    # CRLF, dot-stuffed, the final ``.`` line), so the wire does not convert 14 KB again
    wired: bool = False
    # an earlier run left it pending after a 5xx (held back as a possible refusal of the
    # message): its refusals do not count toward stopping this run (``delivery/refusals.py``)
    refused_before: bool = False


Claim = Callable[["Envelope"], Awaitable[bool]]
"""Called right before an envelope is transmitted: the caller marks it in flight (durably).
False withdraws it (say, unsubscribed since it was queued): it is not sent and gets no Result.
Async so a caller can commit the claims of several connections together."""


async def unclaimed(_envelope: Envelope) -> bool:
    """The ``Claim`` of a caller that keeps no state per message (test copies, one-off mail)."""
    return True


class Outcome(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the end of DATA was written, then no reply: maybe delivered


@dataclass(frozen=True)
class Result:
    """The outcome of one attempt (or the closing word on a message whose retry was cancelled).

    ``final`` is False only for a DEFERRED that this run will retry; the last Result of every
    envelope handed out has ``final=True``. UNKNOWN is always final: the server may hold the
    message, so retrying it automatically could deliver it twice (RFC 5321 section 6.1).
    """

    envelope: Envelope
    outcome: Outcome
    code: int | None
    response: str
    final: bool
    relay: str = ""  # the relay that carried the attempt, by its URL without a login


@dataclass(frozen=True)
class DeliveryStats:
    """What a run did, for the closing summary line and the benchmark."""

    sent: int = 0
    failed: int = 0
    deferred_final: int = 0  # left pending by this run
    unknown: int = 0  # end of DATA written, no reply: maybe delivered, never retried
    attempts: int = 0  # transmissions started (on_attempt calls)
    connections: int = 0  # connections opened (0 for Maildir)
    throttled: int = 0  # answers taken as "slow down" (rate words, or a burst of 4xx)
    rate_cuts: int = 0  # times the pacer lowered its pace
    elapsed: float = 0.0  # seconds, whole run
    stopped: bool = False  # the stop event ended the run early
    paced_rate: float | None = None  # msg/s the pacer settled on (None: never limited)
    reoffered: int = 0  # offered again on a fresh link, uncounted, after the relay hung up

    @property
    def rate(self) -> float:
        """Effective rate: accepted messages per second of the whole run."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


class DeliveryAborted(DeliveryError):
    """Delivery cannot proceed (unreachable, auth refused, TLS missing): exit 3, state kept.

    Every envelope handed out before the abort has had its final Result, so a rerun resumes
    cleanly. ``stats`` tells the CLI how far the run got.
    """

    def __init__(self, problem: Problem, stats: DeliveryStats | None = None) -> None:
        super().__init__(problem)
        self.stats = stats if stats is not None else DeliveryStats()
