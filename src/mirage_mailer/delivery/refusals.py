"""A relay that refuses the message, not the recipient: the same 5xx after DATA to everyone.

Why: a content filter that answers "554 5.6.0 content rejected" (or a size limit it never
advertised) to every message would make every subscriber ``failed``, one after another, and a
rerun after fixing the issue would skip them all. DESIGN.md says the same of a refused sender,
where the run aborts instead. A single 5xx after DATA cannot tell the two cases apart; the same
reply for several different recipients with nothing accepted between can.
"""

from __future__ import annotations

from enum import Enum

from mirage_mailer.delivery.classify import message_refusal

# The same 5xx after DATA for this many different recipients, with nothing accepted between:
# the relay refuses the message, not them; the run stops and they stay pending
MESSAGE_REFUSALS = 3


class Judgement(Enum):
    FAILED = "failed"  # the recipient's own refusal: failed for good, as before
    HOLD = "hold"  # maybe the message's: defer it, try it once more later
    KEEP = "keep"  # refused again, the relay accepting nothing meanwhile: stays pending
    STOP = "stop"  # the message's: stop the run, everyone stays pending


class MessageRefusals:
    """Counts the recipients that got the same possibly-message-level reply since the relay
    last accepted a message. A recipient is held back once only: refused again after the
    relay has accepted others, the refusal is its own (failed); refused again with nothing
    accepted meanwhile, nothing tells whose it is, so it stays pending.

    A recipient an earlier run left pending after such a refusal (``Envelope.refused_before``)
    is held back again but never counted: otherwise three addresses at the top of the list
    that each refuse the same words would stop every rerun before anyone else is tried, and
    the issue could never be delivered. A real content filter still stops the rerun, on the
    next three recipients."""

    def __init__(self, least: int = MESSAGE_REFUSALS) -> None:
        self.least = least
        self.reply: str | None = None
        self.recipients: set[str] = set()
        self.accepts = 0  # messages the relay accepted in this run
        self.held: dict[int, int] = {}  # envelope key held back once -> accepts by then

    def accepted(self) -> None:
        """The relay accepted a message: it does not refuse the message as such. (Once a
        message: nothing is allocated unless a refusal was counted.)"""
        self.accepts += 1
        if self.reply is not None:
            self.reply = None
            self.recipients = set()

    def judge(self, key: int, recipient: str, stage: str, code: int | None,
              text: str, *, refused_before: bool = False) -> Judgement:
        """What a 5xx (``code`` ``text`` at ``stage``) for envelope ``key`` means."""
        reply = message_refusal(stage, code, text, recipient)
        if reply is None:
            return Judgement.FAILED
        if key in self.held:
            return Judgement.FAILED if self.accepts > self.held[key] else Judgement.KEEP
        self.held[key] = self.accepts
        if refused_before:
            return Judgement.HOLD
        if reply != self.reply:
            self.reply, self.recipients = reply, set()
        self.recipients.add(recipient)
        return Judgement.STOP if len(self.recipients) >= self.least else Judgement.HOLD
