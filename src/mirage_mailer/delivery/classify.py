"""What an SMTP reply means for one recipient: sent, failed for good, try again, or stop the run.

Kept apart from the connection code so the rules read as one table and test without a socket.
"""

from __future__ import annotations

from enum import Enum

# Replies relays give when they are sent to too fast; the pacer slows down on these.
THROTTLE_CODES = frozenset({421, 450, 451, 452})


class Verdict(Enum):
    SENT = "sent"
    FAILED = "failed"  # permanent for this recipient
    DEFERRED = "deferred"  # transient: retry later in this run
    ABORT = "abort"  # the session itself is refused: every recipient would get the same


def classify(stage: str, code: int) -> Verdict:
    """Classify a reply ``code`` received at ``stage`` (MAIL, RCPT or DATA).

    A refused *sender* (5xx at MAIL, except 552 "message too big") or "authentication
    required" (530) is not about the recipient: recording it as a permanent failure for every
    subscriber would make a rerun skip them all, so the run aborts instead (exit 3, resumable).
    """
    if 200 <= code < 300:
        return Verdict.SENT
    if code == 530:
        return Verdict.ABORT
    if 500 <= code < 600:
        if stage == "MAIL" and code != 552:
            return Verdict.ABORT
        return Verdict.FAILED
    return Verdict.DEFERRED  # 4xx, and anything malformed: never lose a recipient on it


def is_throttle(code: int | None) -> bool:
    """True for the replies that mean "slow down" rather than "not this one"."""
    return code in THROTTLE_CODES
