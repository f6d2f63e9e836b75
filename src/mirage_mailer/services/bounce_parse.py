"""What a mail in the bounce mailbox is: a DSN (RFC 3464), an ARF complaint (RFC 5965), a
non-standard bounce (flufl.bounce's detectors: Exim, qmail, old Exchange, ...), a delay
warning, an auto-reply, or something else, with the failed addresses, status codes and the
original Message-ID it carries.

Everything here is hostile input: a mail may be huge, malformed or forged. Parsing never
raises; a mail it cannot make sense of is ``unreadable``. Out-of-office replies and delay
warnings are never bounces: counting them would suppress people who are merely away.
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.utils import parseaddr, parsedate_to_datetime

from flufl.bounce import all_failures

from mirage_mailer.util.addresses import check_address
from mirage_mailer.util.visible import visible

# A larger mail is no bounce worth reading: a DSN with our whole message attached is ~20 KB,
# and a hostile 8 MB mail took flufl.bounce's detectors ~5 s (2 MiB: about 1 s).
MAX_BYTES = 2 * 1024 * 1024
_TEXT_LIMIT = 2 * 1024 * 1024  # decoded text searched for the VERP token
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([245])\d\d\b")
_MTA_NAMES = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mdaemon")
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[ -]?(?:reply|response)|"
    r"auto:|autoreply|abwesenheit|réponse automatique|absence|fuori sede|"
    r"respuesta automática|ausente|i am away|vacation)", re.IGNORECASE)


@dataclass(frozen=True)
class Failure:
    """One failed recipient as the report or the detector states it."""

    address: str | None
    status: str | None  # e.g. 5.1.1
    hard: bool
    diagnostic: str


@dataclass
class Parsed:
    """What one mail is; ``category``: bounce, complaint, delay, auto-reply, unrecognised
    (from a mail server, but no failure could be read), other, unreadable or too-large."""

    category: str
    key: str
    reason: str = ""
    failures: list[Failure] = field(default_factory=list)
    feedback_type: str | None = None
    complained: str | None = None  # the address a complaint names (Original-Rcpt-To)
    original_message_id: str | None = None
    date: datetime | None = None
    text: str = ""  # where the VERP token is looked for
    from_mta: bool = False


def mail_key(raw: bytes, message: Message | None) -> str:
    """Message-ID when it has a sane one, else a hash of the bytes: the same mail read
    twice (or from Maildir and IMAP) gets the same key."""
    if message is not None:
        mid = _header(message, "Message-ID").strip()
        if 3 <= len(mid) <= 300 and mid.isascii() and " " not in mid:
            return "mid:" + mid
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # hostile headers: any failure means "absent"
        return ""
    # anyone can mail the bounce mailbox, and process-bounces prints what it read
    return visible(" ".join(str(value).split())) if value is not None else ""


def _date(message: Message) -> datetime | None:
    value = _header(message, "Date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _address(value: str) -> str | None:
    """``rfc822; a@b`` or ``<a@b>`` -> ``a@b``; None when it is no address."""
    value = value.partition(";")[2] if ";" in value else value
    address = parseaddr(value.strip())[1].strip()
    if "@" not in address or len(address) > 320 or not address.isprintable():
        return None
    # as the lists' addresses are kept (an xn-- domain in Unicode), so that the A-label
    # address we sent to (``ascii_address``) finds its row again
    normalised, bad = check_address(address)
    return address if bad else normalised


def _text_of(message: Message) -> str:
    """Headers of every part, and the decoded text parts, bounded: where tokens hide."""
    out: list[str] = []
    size = 0
    for part in message.walk():
        for name, value in part.items():
            out.append(f"{name}: {value}")
        if part.get_content_maintype() == "text" and not part.is_multipart():
            try:
                payload = part.get_payload(decode=True)
            except Exception:  # malformed transfer encoding
                payload = None
            if isinstance(payload, bytes):
                chunk = payload[: _TEXT_LIMIT - size].decode("utf-8", "replace")
                size += len(chunk)
                out.append(chunk)
        if size >= _TEXT_LIMIT:
            break
    return "\n".join(out)


def _sub_messages(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):  # an unparsed block: read its fields ourselves
        return [email.message_from_string(block) for block in re.split(r"\r?\n\r?\n", payload)
                if block.strip()]
    return []


def _original_id(message: Message) -> str | None:
    """The Message-ID of the original message a report or bounce carries."""
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            for inner in _sub_messages(part):
                mid = _header(inner, "Message-ID")
                if mid:
                    return mid
        elif ctype == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                headers = email.message_from_bytes(payload.split(b"\n\n", 1)[0])
                mid = _header(headers, "Message-ID")
                if mid:
                    return mid
    for name in ("In-Reply-To", "References"):  # Gmail and Microsoft 365 name it there too
        found = _header(message, name).split()
        if found and found[0].startswith("<") and found[0].endswith(">"):
            return found[0]
    return None


def _report_part(message: Message, ctype: str) -> Message | None:
    for part in message.walk():
        if part.get_content_type() == ctype:
            return part
    return None


def hard_status(code: str) -> bool:
    """A 5.x.x status that says the *address* is gone. RFC 3463 calls X.2.2 (mailbox full) a
    "persistent transient failure", and X.7.x (security or policy) mostly refuses this
    message or this sender, not the reader: both count as soft bounces, so a reader is
    suppressed only when it keeps happening (``bounces.soft_limit``)."""
    return code.startswith("5.") and not code.startswith(("5.7.", "5.2.2"))


def _dsn(message: Message, parsed: Parsed) -> Parsed:
    part = _report_part(message, "message/delivery-status")
    blocks = _sub_messages(part) if part is not None else []
    delayed = delivered = False
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        action = _header(block, "Action").lower()
        delivered |= action in ("delivered", "relayed", "expanded")
        status = _STATUS.search(_header(block, "Status"))
        code = status.group(0) if status else None
        diagnostic = _header(block, "Diagnostic-Code")[:300]
        address = (_address(_header(block, "Final-Recipient"))
                   or _address(_header(block, "Original-Recipient")))
        if action == "delayed":
            delayed = True
        elif action == "failed":
            if code is None:
                smtp = _SMTP_CODE.search(diagnostic)
                hard = smtp is None or smtp.group(1) == "5"
            else:
                hard = hard_status(code)
            parsed.failures.append(Failure(address, code, hard, diagnostic))
    if parsed.failures:
        parsed.category = "bounce"
        parsed.reason = "delivery status notification"
    elif delayed:
        parsed.category, parsed.reason = "delay", "a delay warning: the server still tries"
    elif delivered:
        parsed.category, parsed.reason = "other", "a delivery report without a failure"
    else:  # garbled: like a mangled bounce, it counts softly when it carries a genuine token
        parsed.category = "unrecognised"
        parsed.reason = "a delivery report, but no failure in it could be read"
    return parsed


def _complaint(message: Message, parsed: Parsed) -> Parsed:
    part = _report_part(message, "message/feedback-report")
    fields = _sub_messages(part) if part is not None else []
    report = fields[0] if fields else Message()
    parsed.category = "complaint"
    parsed.feedback_type = (_header(report, "Feedback-Type") or "abuse").lower()[:40]
    parsed.complained = _address(_header(report, "Original-Rcpt-To"))
    parsed.reason = f"feedback report ({parsed.feedback_type})"
    if parsed.feedback_type not in ("abuse", "fraud", "virus", "other", "not-spam"):
        parsed.reason += ", unknown feedback type"
    if parsed.feedback_type == "not-spam":
        parsed.category, parsed.reason = "other", "a not-spam feedback report"
    return parsed


def _from_mta(message: Message) -> bool:
    sender = parseaddr(_header(message, "From"))[1].lower().partition("@")[0]
    return bool(_header(message, "X-Failed-Recipients")) or sender in _MTA_NAMES


def _auto_reply(message: Message) -> bool:
    auto = _header(message, "Auto-Submitted").lower()
    return (bool(auto) and auto != "no") or any(
        _header(message, name) for name in ("X-Autoreply", "X-Autorespond",
                                            "X-Auto-Response-Suppress")) \
        or _header(message, "Precedence").lower() == "auto_reply" \
        or bool(_AUTO_SUBJECT.match(_header(message, "Subject")))


def _heuristic(message: Message, parsed: Parsed, text: str) -> Parsed:
    """flufl.bounce's detectors, for bounces that are no DSN."""
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripped over hostile input: nothing detected
        temporary, permanent = frozenset(), frozenset()
    status = _STATUS.search(text)
    code = status.group(0) if status else None
    for found, hard in ((permanent, True), (temporary, False)):
        for raw in sorted(found):
            address = _address(raw.decode("utf-8", "replace") if isinstance(raw, bytes)
                               else str(raw))
            if address:
                hard = hard and (code is None or hard_status(code))
                parsed.failures.append(Failure(address, code, hard, "non-standard bounce"))
    for value in _header(message, "X-Failed-Recipients").split(","):
        address = _address(value)
        if address and not any(f.address == address for f in parsed.failures):
            hard = code is None or hard_status(code)
            parsed.failures.append(Failure(address, code, hard, "X-Failed-Recipients"))
    if parsed.failures:
        parsed.category, parsed.reason = "bounce", "non-standard bounce"
    else:
        parsed.category = "unrecognised"
        parsed.reason = "from a mail server, but in no bounce format known"
    return parsed


def parse(raw: bytes) -> Parsed:
    """Classify one mail; never raises."""
    if len(raw) > MAX_BYTES:
        return Parsed("too-large", mail_key(raw, None),
                      f"{len(raw):,} bytes, over the {MAX_BYTES // (1024 * 1024)} MiB a "
                      "bounce may have")
    try:
        message = email.message_from_bytes(raw)
    except Exception:  # the stdlib parser still raises on some hostile input
        return Parsed("unreadable", mail_key(raw, None), "not a readable mail")
    parsed = Parsed("other", mail_key(raw, message), "not a bounce",
                    date=_date(message), from_mta=_from_mta(message))
    try:
        parsed.text = _text_of(message)
        parsed.original_message_id = _original_id(message)
        ctype = message.get_content_type()
        report = (message.get_param("report-type") or "") if ctype == "multipart/report" else ""
        report = str(report).lower()
        if report == "feedback-report" or _report_part(message, "message/feedback-report"):
            return _complaint(message, parsed)
        if report == "delivery-status" or _report_part(message, "message/delivery-status"):
            return _dsn(message, parsed)
        null_sender = _header(message, "Return-Path").strip() in ("<>", "")
        if not parsed.from_mta and _auto_reply(message):
            parsed.category, parsed.reason = "auto-reply", "an automatic reply, not a bounce"
            return parsed
        if parsed.from_mta or (null_sender and "Return-Path" in message):
            return _heuristic(message, parsed, parsed.text)
        return parsed
    except Exception as exc:  # hostile structure deep inside; one line, never a traceback
        return Parsed("unreadable", parsed.key, f"malformed mail ({type(exc).__name__})")
