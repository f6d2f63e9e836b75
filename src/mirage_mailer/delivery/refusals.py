"""A relay that refuses the message or the session, not the recipient: the same 5xx to all.

Why: a content filter that answers "554 5.6.0 content rejected" (or a size limit it never
advertised) to every message would make every subscriber ``failed``, one after another, and a
rerun after fixing the issue would skip them all. DESIGN.md says the same of a refused sender,
where the run aborts instead. A single 5xx after DATA cannot tell the two cases apart; the same
reply for several different recipients with nothing accepted between can.

The same holds at RCPT TO for a relay that turns the session away: Postfix answers every
recipient "554 5.7.1 <addr>: Relay access denied" when the cron job lacks the SMTP login.
Words that say so (relay denied, log in first, sender rejected) stop the run at once; any
other reply stops it when it comes, the recipient's address masked, for several recipients.
"""

from __future__ import annotations

from enum import Enum

from mirage_mailer.delivery.classify import message_refusal, session_refusal, session_reply

# The same 5xx after DATA (or to RCPT TO) for this many different recipients, with nothing
# accepted between: the relay refuses the message (or this client), not them; the run stops
# and they stay pending
MESSAGE_REFUSALS = 3


class Judgement(Enum):
    FAILED = "failed"  # the recipient's own refusal: failed for good, as before
    HOLD = "hold"  # maybe the message's: defer it, try it once more later
    KEEP = "keep"  # refused again, the relay accepting nothing meanwhile: stays pending
    STOP = "stop"  # the message's: stop the run, everyone stays pending
    REFUSED = "refused"  # the session's or the sender's, in so many words: stop at once


class MessageRefusals:
    """Counts the recipients that got the same possibly-message-level reply (after DATA), or
    possibly-session-level one (to RCPT TO, their address masked), since the relay last
    accepted a message. A recipient is held back once only: refused again after the
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
        """What a 5xx (``code`` ``text`` at ``stage``) for envelope ``key`` means.

        A refusal of the session in so many words (``session_refusal``) stops the run at
        once, except for a recipient an earlier stop left pending: held back, not counted,
        like the others (a relay that says "log in first" of one mailing group alone must
        not stop every rerun at that address)."""
        said = session_refusal(stage, code, text)
        reply = said or (message_refusal(stage, code, text, recipient)
                         or session_reply(stage, code, text, recipient))
        if reply is None:
            return Judgement.FAILED
        if key in self.held:
            return Judgement.FAILED if self.accepts > self.held[key] else Judgement.KEEP
        self.held[key] = self.accepts
        if refused_before:
            return Judgement.HOLD
        if said is not None:
            return Judgement.REFUSED
        if reply != self.reply:
            self.reply, self.recipients = reply, set()
        self.recipients.add(recipient)
        return Judgement.STOP if len(self.recipients) >= self.least else Judgement.HOLD
