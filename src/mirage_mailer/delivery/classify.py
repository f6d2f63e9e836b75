"""What an SMTP reply means for one recipient: sent, failed for good, try again, or stop the run.

Kept apart from the connection code so the rules read as one table and test without a socket.

Two kinds of 4xx look alike and must not be confused: a relay asking us to slow down (the
pacer's business) and a temporary refusal of one recipient (greylisting, a full mailbox: that
recipient's business only). Slowing the whole pool for greylisting collapses a run, so only a
reply that says it is about pace, or a burst of 4xx across many recipients, counts as throttling.
"""

from __future__ import annotations

import re
from collections import deque
from enum import Enum

from mirage_mailer.util.addresses import ascii_address
from mirage_mailer.util.errors import shorten
from mirage_mailer.util.visible import visible

# The replies relays give when they are sent to too fast, if their text says so.
THROTTLE_CODES = frozenset({421, 450, 451, 452})
_RATE_WORDS = re.compile(
    r"\brate\b|rate[- ]?limit|too many|too fast|throttl|slow(?:ing)? down|\blimit|"
    r"try again in \d|quota|frequency", re.IGNORECASE)
# RFC 3463 X.2.Y, the status of one mailbox (full, disabled, receiving too fast), and X.3.4,
# this message too big: never the pace of the whole run, whatever words come with them.
_MAILBOX_STATUS = re.compile(r"^\s*4\.(?:2\.\d{1,3}|3\.4)\b")
# RFC 3463 enhanced status codes: class.subject.detail; 5.3.4 "message too big for system"
_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.\d{1,3}\b")
_TOO_BIG = re.compile(r"^\s*5\.3\.4\b")
# "530 5.7.0 Authentication required", "550 5.7.0 Must authenticate first": the session, not
# the recipient, needs a login (RFC 4954 section 6).
_AUTH_WORDS = re.compile(r"authenticat|\bauth(?:orization)? required|\blog ?in first",
                         re.IGNORECASE)


class Verdict(Enum):
    SENT = "sent"
    FAILED = "failed"  # permanent for this recipient
    DEFERRED = "deferred"  # transient: retry later in this run
    UNKNOWN = "unknown"  # the end of DATA went out, the reply never came: maybe delivered
    ABORT = "abort"  # the session itself is refused: every recipient would get the same


def is_auth_required(code: int | None, text: str = "") -> bool:
    """530 at any stage, or a 5.7.0 refusal whose words ask for a login."""
    if code == 530:
        return True
    return (code is not None and 500 <= code < 600 and text.lstrip().startswith("5.7.0")
            and _AUTH_WORDS.search(text) is not None)


# The positive reply each stage waits for: MAIL, RCPT, the DATA command, and DOT (the end of
# DATA, the only answer that means "accepted"). Anything else that is neither 4xx nor 5xx does
# not answer the command: the relay is out of step, or not speaking SMTP.
EXPECTED = {"MAIL": (250,), "RCPT": (250, 251), "DATA": (354,), "DOT": (250,)}


def fits(stage: str, code: int) -> bool:
    """True when ``code`` is a clear answer at ``stage``: its positive reply, or 4xx/5xx.

    A 2xx where 354 is due, a 354 where 250 is due, a code that is no SMTP code (-1 for a
    line that does not parse, 25 for a cut one) all say the replies no longer pair with the
    commands; trusting them marks a message sent that the relay never received."""
    return code in EXPECTED[stage] or 400 <= code < 600


def unfit_words(stage: str, code: int, text: str) -> str:
    """What to keep for a reply that does not ``fit`` ``stage``, and what follows from it."""
    said = shorten(visible(text.removeprefix("Malformed SMTP response line:").strip()), 80)
    if 100 <= code < 600:
        due = " or ".join(str(c) for c in EXPECTED[stage])
        heard = f"{code} {said}".strip() + f" where {due} was due"
    else:
        heard = f"not an SMTP reply ({said or code})"
    if stage == "DOT":
        return (f"the answer to the end of DATA was {heard}: the server may have the message; "
                "not retried (send --resend-unknown)")
    return (f"the answer to {stage} was {heard}: the relay is out of step; connection "
            "dropped, to be retried")


def classify(stage: str, code: int, text: str = "") -> Verdict:
    """Classify a reply ``code`` (and its ``text``) received at ``stage`` (MAIL, RCPT, DATA
    or DOT, the end of DATA).

    Only a 250 after the end of DATA is SENT. A reply that does not ``fit`` is DEFERRED
    before the end of DATA (the relay cannot have the message) and UNKNOWN after it (it may
    have it, RFC 5321 section 6.1: retrying could deliver it twice).

    A refused *sender* (any 5xx at MAIL), "authentication required" (530) or a message too
    big for the relay (552 at MAIL, 5.3.4 anywhere: every subscriber gets the same message)
    is not about the recipient: recording it as a permanent failure for every subscriber
    would make a rerun skip them all, so the run aborts instead (exit 3, resumable).
    """
    if not fits(stage, code):
        return Verdict.UNKNOWN if stage == "DOT" else Verdict.DEFERRED
    if 200 <= code < 300:
        return Verdict.SENT if stage == "DOT" else Verdict.DEFERRED
    if is_auth_required(code, text) or is_too_big(stage, code, text):
        return Verdict.ABORT
    if 500 <= code < 600:
        if stage == "MAIL":
            return Verdict.ABORT
        return Verdict.FAILED
    return Verdict.DEFERRED  # 4xx: try again later


_TOO_MANY_RECIPIENTS = re.compile(r"^\s*4\.5\.3\b")  # RFC 3463 X.5.3


def ends_session(code: int, text: str = "") -> bool:
    """True for a reply after which this connection takes no more messages: 421 ("closing
    transmission channel", RFC 5321 3.8), or 452 with status 4.5.3, too many recipients,
    which for one recipient a message can only be the session's limit. A relay may say
    either and keep the connection open; the next message must go on a new one."""
    return code == 421 or (code == 452 and _TOO_MANY_RECIPIENTS.match(text) is not None)


def is_too_big(stage: str, code: int | None, text: str = "") -> bool:
    """A 5xx that says the message exceeds the relay's size limit: 552 at MAIL (RFC 1870,
    the SIZE= we declared), or the status 5.3.4 at any stage (RFC 3463)."""
    if code is None or not 500 <= code < 600:
        return False
    return (stage == "MAIL" and code == 552) or _TOO_BIG.match(text) is not None


# Words of a reply about the recipient rather than the message: "550 Requested action not
# taken: mailbox unavailable", "550 5.7.1 Recipient address rejected", "554 No such user".
_RECIPIENT_WORDS = re.compile(r"\b(?:recipients?|mailbox(?:es)?|users?|addresses|address|"
                              r"addressee)\b", re.IGNORECASE)
# What may surround a local part in a reply ("<bad1@x>", "bad1:", "'bad1'"): none of the
# characters local parts are commonly made of
_NOT_LOCAL = r"[^\w.%+=-]"


def names_recipient(text: str, recipient: str) -> bool:
    """True when ``text`` speaks of the recipient: its address, its local part (three
    characters or more, as a whole word: "a" or "jo" would match ordinary words), or words
    such as "mailbox", "user", "recipient", "address"."""
    if _RECIPIENT_WORDS.search(text):
        return True
    local, _, _domain = recipient.rpartition("@")
    if recipient and recipient.casefold() in text.casefold():
        return True
    if len(local) < 3:
        return False
    pattern = f"(?:^|{_NOT_LOCAL}){re.escape(local)}(?:$|{_NOT_LOCAL})"
    return re.search(pattern, text, re.IGNORECASE) is not None


def message_refusal(stage: str, code: int | None, text: str = "",
                    recipient: str = "") -> str | None:
    """The whole reply (``"554 5.6.0 content rejected"``, whitespace made single) when a
    5xx to the end of DATA (DOT) may be about the message rather than ``recipient`` (a
    content filter), else None.

    Only DOT: before the content has gone out (the DATA command itself, "554 No valid
    recipients") a relay cannot be refusing the content. A status about the address or the
    mailbox (X.1.Y, X.2.Y), or text that names the recipient or speaks of a mailbox, user,
    recipient or address, is about that recipient alone. Replies count as the same only when
    all of them is: a relay without enhanced codes says "550" for every bad mailbox, and
    reducing replies to their codes made three bad addresses look like one refused message.
    Whether it is about the message is for the run to tell: the same reply to several
    recipients in a row (``delivery/refusals.py``)."""
    if stage != "DOT" or code is None or not 500 <= code < 600:
        return None
    return _same_reply(code, text, recipient)


def session_reply(stage: str, code: int | None, text: str = "",
                  recipient: str = "") -> str | None:
    """As ``message_refusal``, for a 5xx to RCPT TO that may be about the session or the
    sender (a relay that turns this client away) rather than ``recipient``; else None.

    The recipient's own address is masked first (Postfix writes "554 5.7.1
    <reader7@example.org>: Relay access denied"), so one refusal of the session reads the
    same for everyone, while "550 5.1.1 User unknown" or "Recipient address rejected: User
    unknown in virtual mailbox table" stay the recipient's."""
    if stage != "RCPT" or code is None or not 500 <= code < 600:
        return None
    reply = _same_reply(code, mask_recipient(text, recipient), recipient)
    return None if reply is None else f"RCPT {reply}"


def _same_reply(code: int, text: str, recipient: str) -> str | None:
    status = _STATUS.match(text)
    if status is not None and status.group(2) in ("1", "2"):
        return None
    if names_recipient(text, recipient):
        return None
    status_text = status.group(0).strip() if status is not None else ""
    words = text[len(status.group(0)):] if status is not None else text
    # a filter's queue id or score differs in every reply ("id 4Xy2Zq", "score 7.3"): a
    # word holding a digit is masked, so one refusal of the message reads the same each time
    said = " ".join(_NUMBERED.sub("#", word) for word in words.split())
    return " ".join(f"{code} {status_text} {said}".split())


_NUMBERED = re.compile(r"^\S*\d\S*$")  # a word holding a digit (queue ids, scores, times)


def mask_recipient(text: str, recipient: str) -> str:
    """``text`` without ``recipient``'s address (as given, or in its ASCII wire form)."""
    for address in {recipient, ascii_address(recipient)}:
        if address:
            text = re.sub(re.escape(address), "", text, flags=re.IGNORECASE)
    return text


# Refusals at RCPT TO (or the DATA command) that are about this client, not the recipient:
# the relay will not relay for an unauthenticated or unknown client (Postfix "Relay access
# denied", Exim "relay not permitted", Exchange "5.7.54 Unable to relay", Sendmail
# "Relaying denied", qmail "not in my list of allowed rcpthosts") ...
_RELAY_DENIED = re.compile(
    r"\brelay(?:ing)?\s+(?:access\s+)?(?:is\s+)?(?:denied|not\s+(?:permitted|allowed)|"
    r"prohibited|refused)|\bunable\s+to\s+relay\b|\b(?:do|does|will)\s+not\s+relay\b|"
    r"\brcpthosts\b", re.IGNORECASE)
# ... it wants a login first (a 530 or 5.7.0 says so already: ``is_auth_required``) ...
_LOGIN_WORDS = re.compile(
    r"\bauthentication\s+(?:is\s+)?required|\bmust\s+(?:first\s+)?authenticate|"
    r"\bauthenticate\s+first|\bplease\s+authenticate|\bnot\s+logged\s+in\b|"
    r"\blog\s?in\s+first", re.IGNORECASE)
# ... or it refuses our MAIL FROM, said at RCPT (Postfix with smtpd_delay_reject, as for
# reject_sender_login_mismatch: "553 5.7.1 <news@...>: Sender address rejected: not owned
# by user bob")
_SENDER_REFUSED = re.compile(r"\bsender\s+address\s+rejected|\bnot\s+owned\s+by\s+user\b",
                             re.IGNORECASE)


def session_refusal(stage: str, code: int | None, text: str = "") -> str | None:
    """What a 5xx to RCPT TO (or to the DATA command) refuses when its words are about the
    session or the sender rather than the recipient: "relay" (this client may not relay),
    "login" (log in first) or "sender" (the MAIL FROM address); else None.

    Every recipient would get the same answer: failing each would burn the whole list, so
    the run stops (``delivery/refusals.py``)."""
    if stage not in ("RCPT", "DATA") or code is None or not 500 <= code < 600:
        return None
    if _RELAY_DENIED.search(text):
        return "relay"
    if _LOGIN_WORDS.search(text):
        return "login"
    if _SENDER_REFUSED.search(text):
        return "sender"
    return None


def is_throttle(code: int | None, text: str = "") -> bool:
    """True for a reply whose words say "slow down" (421/450/451/452), not "not this one".

    "451 4.7.1 Greylisted, try again later" and "452 4.2.2 Mailbox full" are about one
    recipient; "451 4.7.1 Rate limit exceeded" and "421 Too many messages" are about pace.
    """
    if code not in THROTTLE_CODES or _MAILBOX_STATUS.match(text):
        return False
    return _RATE_WORDS.search(text) is not None


class BurstDetector:
    """Spots a relay that throttles without saying so: 4xx from many distinct recipients
    in a short window, making up most of the answers it gives.

    Greylisting a tenth of a list gives a tenth of 4xx answers; a relay refusing our pace
    refuses most of what we offer. ``share`` sits between the two, ``least`` keeps a handful
    of unlucky recipients from looking like a burst.
    """

    def __init__(self, window: float = 1.0, least: int = 8, share: float = 0.5) -> None:
        self.window = window
        self.least = least
        self.share = share
        self._refusals: deque[tuple[float, str]] = deque()
        self._successes: deque[float] = deque()

    def _trim(self, now: float) -> None:
        edge = now - self.window
        while self._refusals and self._refusals[0][0] <= edge:
            self._refusals.popleft()
        while self._successes and self._successes[0] <= edge:
            self._successes.popleft()

    def success(self, now: float) -> None:
        self._successes.append(now)
        self._trim(now)

    def refusal(self, now: float, recipient: str) -> bool:
        """Record a plain 4xx for ``recipient``; True when the recent ones make a burst."""
        self._refusals.append((now, recipient))
        self._trim(now)
        distinct = len({r for _, r in self._refusals})
        answers = len(self._refusals) + len(self._successes)
        return distinct >= self.least and len(self._refusals) >= self.share * answers
