"""Mailed unsubscribe requests (the RFC 2369 ``mailto:``): read a Maildir or an IMAP folder,
find the signed token, and suppress the person it names.

Only headers are read: the token is in the Subject (``unsubscribe <token>``, as our mailto
link sets it) or in a plus-address (``contact+unsubscribe-<token>@...``). A message without a
genuine token is left exactly as it was, so a person can still read it; a handled one is
marked seen, which is also what keeps the next run from handling it twice.
"""

from __future__ import annotations

import imaplib
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

from mirage_mailer.delivery.tls import client_context
from mirage_mailer.project.config_checks import has_query_or_fragment, redact
from mirage_mailer.store import Unsubscriber
from mirage_mailer.util.errors import DeliveryError, InputError, Problem, display_path, shorten
from mirage_mailer.util.maildirfile import NotRegularFile, entry_ref, open_regular
from mirage_mailer.util.tokens import Signer

_TOKEN = r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"
# Reply and forward prefixes as mail clients write them (Re, Fwd, Fw, AW, WG, SV, TR, ...).
_PREFIX = r"(?:[A-Za-z]{1,4}\s*(?:\[\d+\]|\(\d+\))?\s*:\s*)*"
_SUBJECT = re.compile(rf"^\s*{_PREFIX}unsubscribe(?:\s+|%20)({_TOKEN})\s*$", re.IGNORECASE)
_PLUS = re.compile(rf"\+unsubscribe-({_TOKEN})@", re.IGNORECASE)
# Where the plus-address can show up: the visible To/Cc, or what the delivering server noted.
_ADDRESS_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")
_HEADER_LIMIT = 1 << 20  # a header block larger than this is not a reply to our mailto


def parse_headers(raw: bytes) -> Message:
    return BytesHeaderParser(policy=policy.default).parsebytes(raw)


def _header(headers: Message, name: str) -> list[str]:
    """Decoded values; a header the parser cannot make sense of counts as absent.

    The stdlib's header parser still raises on some hostile input: one bad message must not
    stop the run, so any error here just means "no usable value".
    """
    try:
        return [str(value) for value in headers.get_all(name, [])]
    except Exception:  # see the docstring
        return []


def find_token(headers: Message) -> str | None:
    """The unsubscribe token of a request: Subject first, then a plus-address."""
    for subject in _header(headers, "Subject"):
        found = _SUBJECT.match(" ".join(subject.split()))
        if found:
            return found.group(1)
    for name in _ADDRESS_HEADERS:
        for value in _header(headers, name):
            found = _PLUS.search(value)
            if found:
                return found.group(1)
    return None


def message_date(headers: Message) -> datetime | None:
    """When the person sent the request, from its Date header (None when absent or bad)."""
    for value in _header(headers, "Date"):
        try:
            return parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return None


@dataclass(frozen=True)
class Mail:
    """One message as a mailbox gives it: where it is, and its headers (None: unreadable)."""

    ref: str
    key: str
    headers: Message | None
    problem: str | None = None


class Mailbox(Protocol):
    def messages(self) -> Iterator[Mail]: ...

    def mark_done(self, mail: Mail) -> str | None:
        """Mark ``mail`` handled; a note when that was not possible."""
        ...


def _read_header(path: Path) -> bytes:
    """The header block only: an attachment of 20 MB is never read for a Subject."""
    out = bytearray()
    with open_regular(path) as (handle, _):
        for line in handle:
            if line in (b"\n", b"\r\n") or len(out) > _HEADER_LIMIT:
                break
            out += line
    return bytes(out)


def _split_info(name: str) -> tuple[str, str]:
    """(unique name, flags) of a Maildir file name ``unique:2,FLAGS``."""
    base, _, info = name.partition(":")
    return base, info[2:] if info.startswith("2,") else ""


class MaildirBox:
    """A Maildir (new/, cur/, tmp/) as mail servers and clients share it."""

    def __init__(self, root: Path, *, include_seen: bool = False) -> None:
        if not (root / "new").is_dir() or not (root / "cur").is_dir():
            raise InputError(Problem(display_path(root), None, "not a Maildir (no new/ and cur/ "
                                     "folders)", "give the folder that holds new/ and cur/"))
        self.root = root
        self.include_seen = include_seen

    def messages(self) -> Iterator[Mail]:
        # Both folders are listed up front: a message handled now moves from new/ to cur/
        # and must not come round a second time in the same run.
        paths = [path for sub in ("new", "cur") for path in sorted((self.root / sub).iterdir())
                 if self._wanted(path)]
        for path in paths:
            try:
                headers = parse_headers(_read_header(path))
            except NotRegularFile as exc:  # never followed: a link could point anywhere
                yield Mail(entry_ref(path), str(path), None, exc.line)
                continue
            except OSError as exc:
                yield Mail(entry_ref(path), str(path), None, f"cannot read: {exc.strerror}")
                continue
            yield Mail(entry_ref(path), str(path), headers)

    def _wanted(self, path: Path) -> bool:
        if path.name.startswith(".") or (path.is_dir() and not path.is_symlink()):
            return False
        seen = "S" in _split_info(path.name)[1]
        return path.parent.name == "new" or not seen or self.include_seen

    def mark_done(self, mail: Mail) -> str | None:
        """Move to cur/ with the S (seen) flag, keeping other flags in ASCII order (Maildir)."""
        source = Path(mail.key)
        base, flags = _split_info(source.name)
        target = self.root / "cur" / f"{base}:2,{''.join(sorted(set(flags) | {'S'}))}"
        if target == source:
            return None
        try:
            os.rename(source, target)
        except OSError as exc:
            return f"could not mark it seen: {exc.strerror}"
        return None


@dataclass(frozen=True)
class ImapTarget:
    host: str
    port: int
    user: str
    folder: str
    tls: bool  # True: imaps:// (TLS from the start); False: imap:// with STARTTLS


def parse_imap_url(url: str) -> ImapTarget:
    """``imaps://user@host[:port]/FOLDER``; a password in the URL is refused (environment)."""

    def bad(message: str) -> InputError:
        return InputError(Problem("--imap", None, message,
                                  "write imaps://user@host:993/INBOX (user may be %40-encoded)"))

    shown = shorten(redact(url))  # a mistaken password is never printed, whatever else is wrong
    try:
        parts = urlsplit(url)
    except ValueError:
        raise bad(f"{shown!r} is not an imaps:// or imap:// URL") from None
    if parts.password is not None:
        raise InputError(Problem("--imap", None, "the URL holds a password",
                                 "remove it and put it in the variable named by --password-env"))
    if has_query_or_fragment(url):
        raise InputError(Problem("--imap", None, f"{shown!r} has a query (?...) or a fragment "
                                 "(#...), which it does not use; it is not shown, as it may "
                                 "be a password", "remove everything from the '?' or '#' on; "
                                 "a password goes in the variable named by --password-env"))
    if parts.scheme not in ("imaps", "imap"):
        raise bad(f"{shown!r} is not an imaps:// or imap:// URL")
    try:
        port = parts.port
    except ValueError:
        raise bad("the port is not a number") from None
    if not parts.hostname or not parts.username:
        raise bad(f"{shown!r} needs a user and a host")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    if not folder.isascii():
        raise bad(f"folder '{folder}' is not ASCII: give its IMAP (modified UTF-7) name")
    tls = parts.scheme == "imaps"
    return ImapTarget(parts.hostname, port or (993 if tls else 143), unquote(parts.username),
                      folder, tls)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def imap_context() -> ssl.SSLContext:
    """The SMTP relay's client context (delivery/tls.py): system CAs, host name checked,
    TLS >= 1.2."""
    return client_context()


class ImapBox:
    """One IMAP folder; a dry run opens it read-only (EXAMINE), so no flag can change."""

    def __init__(self, target: ImapTarget, password: str, *, readonly: bool,
                 include_seen: bool = False, timeout: float = 30.0) -> None:
        self.target = target
        self.readonly = readonly
        self.include_seen = include_seen
        self.where = f"{target.host}:{target.port}"
        context = self.context = imap_context()
        try:
            if target.tls:
                self.conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    target.host, target.port, ssl_context=context, timeout=timeout)
            else:
                self.conn = imaplib.IMAP4(target.host, target.port, timeout=timeout)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise DeliveryError(Problem("--imap", None, f"cannot connect to {self.where}: "
                                        f"{_text(exc)}", "check the host, the port and the "
                                        "network")) from None
        try:
            self._open(password)
        except BaseException:
            self.close()
            raise

    def _open(self, password: str) -> None:
        target = self.target
        try:
            if not target.tls:  # imap:// never sends the password in clear: STARTTLS first
                self.conn.starttls(self.context)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise DeliveryError(Problem("--imap", None, f"STARTTLS with {self.where} failed: "
                                        f"{_text(exc)}", "use imaps:// if the server offers "
                                        "TLS on port 993")) from None
        try:
            self.conn.login(_quoted(target.user), password)  # imaplib quotes only the password
        except imaplib.IMAP4.error as exc:
            raise DeliveryError(Problem("--imap", None, f"{self.where} refused the login of "
                                        f"{target.user}: {_text(exc)}",
                                        "check the user and the password variable")) from None
        typ, data = self._call("select", _quoted(target.folder), self.readonly)
        if typ != "OK":
            raise InputError(Problem("--imap", None, f"no folder '{target.folder}' on "
                                     f"{self.where}: {_text(data)}",
                                     "check the folder name in the URL"))

    def _call(self, method: str, *args: object) -> tuple[str, list[Any]]:
        """One IMAP command; a dropped connection or a protocol error ends the run (exit 3)."""
        try:
            typ, data = getattr(self.conn, method)(*args)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise DeliveryError(Problem("--imap", None, f"{self.where}: {_text(exc)}",
                                        "rerun; handled messages are marked seen")) from None
        return str(typ), list(data)

    def messages(self) -> Iterator[Mail]:
        typ, data = self._call("uid", "SEARCH", "ALL" if self.include_seen else "UNSEEN")
        _check(typ, data, "SEARCH")
        for uid in (data[0] or b"").split():
            typ, fetched = self._call("uid", "FETCH", uid.decode(), "(BODY.PEEK[HEADER])")
            _check(typ, fetched, "FETCH")
            raw = next((part[1] for part in fetched if isinstance(part, tuple)), None)
            ref = f"imap UID {uid.decode()}"
            if raw is None:
                yield Mail(ref, uid.decode(), None, "the server sent no header")
                continue
            yield Mail(ref, uid.decode(), parse_headers(raw))

    def mark_done(self, mail: Mail) -> str | None:
        typ, data = self._call("uid", "STORE", mail.key, "+FLAGS.SILENT", r"(\Seen)")
        return None if typ == "OK" else f"could not mark it seen: {_text(data)}"

    def __enter__(self) -> ImapBox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self.conn.state == "SELECTED":
                self.conn.close()
            self.conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def _text(data: object) -> str:
    """A server's words from imaplib's bytes, lists of bytes or exceptions, on one line."""
    if isinstance(data, list):
        data = b" ".join(d for d in data if isinstance(d, bytes))
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return " ".join(str(data).split())[:200]


def _check(typ: str, data: object, command: str) -> None:
    if typ != "OK":
        raise DeliveryError(Problem("--imap", None, f"{command} failed: {_text(data)}",
                                    "rerun; handled messages are marked seen"))


Status = Literal["unsubscribed", "already", "skipped"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one message: unsubscribed, already (suppressed before), or skipped."""

    ref: str
    status: Status
    detail: str
    issue: str | None = None
    note: str | None = None


def _judge(mail: Mail, signer: Signer | None, store: Unsubscriber | None, dry_run: bool) -> Outcome:
    if mail.headers is None:
        return Outcome(mail.ref, "skipped", mail.problem or "unreadable")
    token = find_token(mail.headers)
    if token is None:
        return Outcome(mail.ref, "skipped", "no unsubscribe token in the subject or the address")
    # IGNORECASE lets the Kelvin sign and the long s match [A-Za-z]; a non-ASCII token is not
    # ours (and hmac.compare_digest would raise on it).
    verified = None
    if signer is not None and token.isascii():
        verified = signer.verify("unsubscribe", token)
    if verified is None:
        return Outcome(mail.ref, "skipped",
                       "the unsubscribe token is not genuine (altered, or another secret)")
    issue, subject = verified
    address = store.resolve_subject(subject, issue) if store is not None else None
    if store is None or address is None:
        return Outcome(mail.ref, "skipped", f"the token of issue {issue} matches no recipient "
                       "(a test copy, or a person already erased)", issue)
    if dry_run:
        added = not store.is_suppressed(address)
    else:
        added = store.suppress(address, source="mailto", reason=f"issue {issue}",
                               at=message_date(mail.headers))
    return Outcome(mail.ref, "unsubscribed" if added else "already", address, issue)


def process(box: Mailbox, signer: Signer | None, store: Unsubscriber | None, *,
            dry_run: bool) -> Iterator[Outcome]:
    """Judge each message; mark handled ones seen (never skipped ones, never in a dry run)."""
    for mail in box.messages():
        outcome = _judge(mail, signer, store, dry_run)
        if outcome.status != "skipped" and not dry_run:
            note = box.mark_done(mail)
            if note:
                outcome = Outcome(outcome.ref, outcome.status, outcome.detail, outcome.issue,
                                  note)
        yield outcome
