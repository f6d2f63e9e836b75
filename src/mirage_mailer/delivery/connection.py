"""One long-lived SMTP connection: open it safely, carry one message at a time, close politely.

Opening enforces the security settings before any secret leaves the process: STARTTLS per
``starttls``, and AUTH only over TLS unless ``allow_plaintext_auth``. Sending never raises for
network faults or server refusals: every outcome comes back as an ``Attempt``.

The connection knows exactly whether the final ``.`` of DATA has been written: a fault before
it is transient (the server cannot have the message), a fault after it and before the reply is
``UNKNOWN`` (the server may have queued it; RFC 5321 section 6.1), never retried automatically.
So is a reply to the end of DATA that is no clear answer (not SMTP, lines of mixed codes, or
not 250/4xx/5xx). A reply that does not fit its command (250 where 354 is due), or lines that
no command asked for, mean the link is out of step: it is dropped, and only a 250 to the end of
DATA ever counts as sent. After 421 (or 452 4.5.3) the link is dropped too: the relay has
ended the session, whether or not it hung up. Relay text is made ``visible`` (one line,
control characters escaped) and cut to ``KEPT_REPLY`` characters before anyone keeps it.

A relay may take one message a connection (or a few) and hang up after the 250, with or
without a 221/421 first; the next MAIL, written before the hang-up arrives, finds the link
gone. That attempt is marked ``hung_up``: the relay had ended the link before it took
anything of this message (no reply to MAIL, or 221/421 for one), so the pool offers it again
on a fresh link instead of counting it. ``hung_up`` here tells the pool the relay hung up
after ``carried`` messages, so it can learn the relay's limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosmtplib

from mirage_mailer.delivery import pipelining
from mirage_mailer.delivery.classify import (
    Verdict,
    classify,
    ends_session,
    fits,
    unfit_words,
)
from mirage_mailer.delivery.tls import certificate_problem
from mirage_mailer.delivery.wire import wire_format
from mirage_mailer.util.addresses import ascii_address, is_plain_address
from mirage_mailer.util.errors import shorten
from mirage_mailer.util.visible import visible


@dataclass(frozen=True)
class ConnectSettings:
    host: str
    port: int
    implicit_tls: bool  # smtps://
    starttls: str  # always | auto | never (smtp:// only)
    credentials: tuple[str, str] | None
    allow_plaintext_auth: bool
    timeout: float
    tls_context: ssl.SSLContext | None
    local_hostname: str | None
    # Words from the caller, who knows the config (this package knows bytes): the variables
    # that hold the credentials ("MIRAGE_SMTP_USER and MIRAGE_SMTP_PASSWORD"), and what to
    # say when the relay wants AUTH and none are set. Names only, never values.
    credential_names: str = ""
    missing_credentials: str = ""
    private_ca: bool = False  # tls_context trusts transport.ca_file only (for the words)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


class ConnectFailure(Exception):
    """The connection could not be opened. ``fatal``: retrying cannot help (config, auth)."""

    def __init__(self, message: str, *, fatal: bool, hint: str = "") -> None:
        message, hint = visible(message), visible(hint)  # a greeting's words reach a terminal
        super().__init__(message)
        self.message = message
        self.fatal = fatal
        self.hint = hint


# Characters of a relay's reply an attempt keeps: RFC 5321 allows 512 octets a reply line,
# and a refusal worth reading fits in two.
KEPT_REPLY = 1000


@dataclass(frozen=True)
class Attempt:
    """What one transmission came to."""

    verdict: Verdict
    code: int | None
    response: str
    stage: str = ""  # where a refusal came: MAIL, RCPT, DATA; SIZE: over the relay's limit
    # the relay had ended this reused link before it answered MAIL (hung up, or said 221 or
    # 421): nothing of the message reached it, so this was no attempt of the recipient's
    hung_up: bool = False

    def __post_init__(self) -> None:
        # aiosmtplib keeps a reply's bytes that are not UTF-8 as lone surrogates, which no
        # store, journal or terminal can encode: U+FFFD for each, once, where they come in
        if not self.response.isascii():
            object.__setattr__(self, "response", self.response.encode(
                "utf-8", "surrogateescape").decode("utf-8", "replace"))
        # the relay's words are stored and printed: one line, no terminal escapes, and no
        # longer than a few reply lines (a relay's 60 KB would go into every row and event)
        object.__setattr__(self, "response", shorten(visible(self.response), KEPT_REPLY))


def plaintext_auth_refusal() -> ConnectFailure:
    return ConnectFailure(
        "refusing to send the SMTP password without encryption",
        fatal=True,
        hint="use smtps://, or starttls: always with a server that offers it; set "
        "allow_plaintext_auth: true only for a trusted local relay",
    )


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}".strip()


def _why(exc: BaseException) -> str:
    """A network error in a few words ("connection refused"), not aiosmtplib's sentence."""
    cause = exc.__cause__ or exc
    if isinstance(cause, socket.gaierror):
        return f"unknown host: {(cause.strerror or 'not found').lower()}"  # inside (...)
    if isinstance(cause, OSError) and cause.errno is not None and cause.errno > 0:
        text = os.strerror(cause.errno)
        return text[:1].lower() + text[1:]
    if isinstance(exc, TimeoutError):
        return "timed out"
    # aiosmtplib quotes a malformed line with its CRLF
    return (exc.message if isinstance(exc, aiosmtplib.SMTPException) else str(exc)).strip()


async def _mail(smtp: aiosmtplib.SMTP, sender: str, options: list[str], encoding: str) -> None:
    """``smtp.mail()``, without its ``email.utils.parseaddr`` for a plain address: that parse
    costs about as much as building the message. Raises as ``smtp.mail()`` does."""
    if not is_plain_address(sender):
        await smtp.mail(sender, options=options, encoding=encoding)
        return
    reply = await smtp.execute_command(b"MAIL", b"FROM:<" + sender.encode("ascii") + b">",
                                       *(option.encode("ascii") for option in options))
    if reply.code != 250:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)


async def _rcpt(smtp: aiosmtplib.SMTP, recipient: str, encoding: str) -> None:
    """``smtp.rcpt()``, the same way as ``_mail``."""
    if not is_plain_address(recipient):
        await smtp.rcpt(recipient, encoding=encoding)
        return
    reply = await smtp.execute_command(b"RCPT", b"TO:<" + recipient.encode("ascii") + b">")
    if reply.code not in (250, 251):
        raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)


def size_limit(smtp: aiosmtplib.SMTP) -> int | None:
    """The largest message the relay said it takes (EHLO ``SIZE n``; 0 or none: no limit)."""
    value = smtp.esmtp_extensions.get("size", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


class Connection:
    def __init__(self, settings: ConnectSettings) -> None:
        self.settings = settings
        self._smtp: aiosmtplib.SMTP | None = None
        self._socket_transport: asyncio.BaseTransport | None = None
        self.last_used = 0.0
        self._dot_written = False  # this transaction's end of DATA has been handed to the socket
        self.auth_offered = False  # the relay's EHLO reply offered AUTH
        self.carried = 0  # messages this link delivered (250 to the end of DATA) since open
        self._farewell = False  # the relay said 221/421 right after a message's 250
        # the next message's MAIL, RCPT and DATA went with the last body: its replies are due
        # on our reader (``pipelining.Held``); the next ``send`` must be that message
        self._held: pipelining.Held | None = None
        self.timed_out = False  # the last ``send`` waited out the timeout for a reply

    @property
    def connected(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    @property
    def chained(self) -> bool:
        """The next message's commands are on the wire (``send(ahead=...)``): the next
        ``send`` carries that message, with ``claim``, and nothing else may use the link."""
        return self._held is not None

    def ahead_commands(self, sender: str, recipient: str, data: bytes, *,
                       wired: bool = False) -> bytes:
        """MAIL, RCPT and DATA of a message that may ride with the body being sent (RFC 2920
        3.1), or b"" when it cannot: no PIPELINING, an address that is not plain ASCII, or a
        message over the relay's SIZE (those take the usual way, and say why there)."""
        smtp = self._smtp
        if smtp is None or not pipelining.offered(smtp):
            return b""
        sender, recipient = ascii_address(sender), ascii_address(recipient)
        if not (is_plain_address(sender) and is_plain_address(recipient)
                and sender.isascii() and recipient.isascii()):
            return b""
        options = self._options(smtp, data, wired)
        if isinstance(options, Attempt):  # over SIZE: said on its own turn
            return b""
        return b"".join(pipelining.envelope_commands(
            sender.encode("ascii"), recipient.encode("ascii"), options))

    @staticmethod
    def _options(smtp: aiosmtplib.SMTP, data: bytes, wired: bool) -> list[str] | Attempt:
        """MAIL's BODY and SIZE parameters; an ``Attempt`` when the message is over SIZE."""
        options: list[str] = []
        if not data.isascii() and smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        if smtp.supports_extension("size"):
            # LF becomes CRLF on the wire; a wired message counts its few stuffed dots too
            # (RFC 1870 takes an estimate), never its final ".\r\n"
            wire_size = len(data) - 3 if wired else len(data) + data.count(b"\n")
            if (limit := size_limit(smtp)) is not None and wire_size > limit:
                return Attempt(Verdict.ABORT, None, f"the message is {wire_size:,} bytes and "
                               f"the relay takes at most {limit:,} (its SIZE)", "SIZE")
            options.append(f"SIZE={wire_size}")
        return options

    @property
    def hung_up(self) -> bool:
        """The relay ended this link after it carried a message (we did not drop it): it
        closed the connection, or said 221/421 after the 250. Asked only of a link found
        not ``connected``, so it costs nothing on a link that stays up."""
        return self.carried > 0 and (self._farewell or (
            self._smtp is not None and not self._smtp.is_connected))

    async def open(self) -> None:
        """Connect, greet, secure and authenticate; raises ``ConnectFailure``."""
        s = self.settings
        self.drop()
        self.carried = 0
        self._farewell = False
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout,
            use_tls=s.implicit_tls,
            start_tls=False,
            tls_context=s.tls_context,
            local_hostname=s.local_hostname,
        )
        self._smtp = smtp
        try:
            await self._open(smtp)
        except ConnectFailure:
            self.drop()
            raise
        except aiosmtplib.SMTPConnectResponseError as exc:
            self.drop()
            raise ConnectFailure(f"refused the connection: {_reply(exc)}",
                                 fatal=exc.code >= 500) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            self.drop()
            cause = exc.__cause__ if isinstance(exc, aiosmtplib.SMTPException) else exc
            if isinstance(cause, ssl.SSLCertVerificationError):  # does not fix itself
                message, hint = certificate_problem(cause, s.where, private_ca=s.private_ca)
                raise ConnectFailure(message, fatal=True, hint=hint) from None
            if isinstance(cause, ssl.SSLError):
                raise ConnectFailure(f"TLS failed: {cause.reason or cause}", fatal=True,
                                     hint="check the server certificate and that the port "
                                     "matches smtps:// (implicit TLS) or smtp://") from None
            if (isinstance(exc, aiosmtplib.SMTPConnectTimeoutError)
                    and isinstance(exc.__cause__, aiosmtplib.SMTPTimeoutError)):
                # the TCP connection is up, the server never said 220: not "cannot connect"
                raise ConnectFailure(f"connected to {s.where}, then timed out waiting for the "
                                     f"greeting (after {s.timeout:g} s)", fatal=False) from None
            raise ConnectFailure(f"cannot connect to {s.where} ({_why(exc)})",
                                 fatal=False) from None
        self.last_used = time.monotonic()

    async def _open(self, smtp: aiosmtplib.SMTP) -> None:
        s = self.settings
        await smtp.connect()
        self._socket_transport = smtp.transport  # the layer under STARTTLS, if it comes
        await self._greet(smtp)
        secure = s.implicit_tls
        if not s.implicit_tls and s.starttls != "never":
            if smtp.supports_extension("starttls"):
                try:
                    await smtp.starttls()
                except aiosmtplib.SMTPResponseException as exc:
                    raise ConnectFailure(f"refused STARTTLS: {_reply(exc)}",
                                         fatal=exc.code >= 500) from None
                await self._greet(smtp)
                secure = True
            elif s.starttls == "always":
                raise ConnectFailure(
                    "does not offer STARTTLS (transport.starttls is 'always')",
                    fatal=True,
                    hint="use smtps:// if the server speaks implicit TLS on another port, or "
                    "set starttls: auto/never only for a trusted local relay",
                )
        # a relay that offers AUTH to a client that has no login may relay for logged-in
        # clients only: the run says so before it sends (``SmtpRun``)
        self.auth_offered = smtp.supports_extension("auth")
        if s.credentials is None:
            return
        if not secure and not s.allow_plaintext_auth:
            raise plaintext_auth_refusal()
        if not smtp.supports_extension("auth"):
            raise ConnectFailure("does not offer AUTH, but SMTP credentials are set",
                                 fatal=True,
                                 hint="remove username_env/password_env, or check the URL")
        try:
            await smtp.login(*s.credentials)
        except aiosmtplib.SMTPAuthenticationError as exc:
            names = s.credential_names or "the environment variables"
            raise ConnectFailure(f"the relay refused the user name and password in {names} "
                                 f"({_reply(exc)})", fatal=exc.code >= 500,
                                 hint="check their values (see "
                                 "transport.username_env/password_env)") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise ConnectFailure(f"refused authentication: {_reply(exc)}",
                                 fatal=exc.code >= 500) from None

    @staticmethod
    async def _greet(smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            await smtp.helo()

    async def check_idle(self, idle_limit: float) -> None:
        """A connection idle for long may have been dropped by the server: NOOP or drop it."""
        if self._smtp is None or time.monotonic() - self.last_used < idle_limit:
            return
        try:
            await self._smtp.noop()
            self.last_used = time.monotonic()
        except (aiosmtplib.SMTPException, OSError):
            self.drop()

    async def send(self, sender: str, recipient: str, data: bytes,
                   on_rcpt_accepted: Callable[[], None] | None = None, *,
                   wired: bool = False, claim: Callable[[], Awaitable[bool]] | None = None,
                   ahead: Callable[[], bytes] | None = None) -> Attempt:
        """One transaction: MAIL, RCPT, DATA. Never raises for network faults or refusals.

        ``on_rcpt_accepted`` tells the pacer the relay let the message through its rate
        limiter (most count at RCPT), without waiting for the message body to travel.
        ``wired``: ``data`` is already in wire format (``Envelope.wired``).
        ``ahead``: the next message's commands (``ahead_commands``), written with this body
        (the link is then ``chained``). ``claim``: awaited once the relay has answered this
        message's commands, before its body; a chained message is claimed only then, so a
        link never holds two claimed messages whose outcome is unknown.
        """
        smtp = self._smtp
        held, self._held = self._held, None
        if smtp is None or not smtp.is_connected:  # gone while the message was claimed
            return Attempt(Verdict.DEFERRED, None, "not connected", hung_up=self.hung_up)
        self.last_used = time.monotonic()
        self._dot_written = False
        self.timed_out = False
        options: list[str] = []
        encoding = "ascii"
        # an international domain goes as A-labels: only a non-ASCII local part needs SMTPUTF8
        sender, recipient = ascii_address(sender), ascii_address(recipient)
        if not (sender.isascii() and recipient.isascii()):
            if not smtp.supports_extension("smtputf8"):
                return Attempt(Verdict.FAILED, None,
                               "the address's local part (before the @) is not ASCII and "
                               "the server does not offer SMTPUTF8")
            options.append("SMTPUTF8")
            encoding = "utf-8"
        sized = self._options(smtp, data, wired)
        if isinstance(sized, Attempt):
            return sized
        options += sized
        wire = data if wired else None
        stage = "MAIL"

        def at(name: str) -> None:
            nonlocal stage
            if name == "DOT":
                self._dot_written = True
                return
            if name == "ACCEPTED":  # 250, 250, 354: the relay let the message through
                if on_rcpt_accepted is not None:
                    on_rcpt_accepted()
                name = "DATA"
            stage = name

        try:
            if is_plain_address(sender) and is_plain_address(recipient):
                # one reader for every reply, pipelined or not: it sees unasked lines
                done = await pipelining.transaction(
                    smtp, sender.encode("ascii"), recipient.encode("ascii"), options,
                    wire or wire_format(data), self.settings.timeout, at,
                    pipelined=pipelining.offered(smtp), held=held, claim=claim, ahead=ahead)
                reply = done.reply
                if done.held is not None:  # the next message's replies are due on this link
                    self._held = done.held
                    if reply.code != 250:
                        return await self._refused("DOT", reply.code, reply.message)
                elif not done.in_step:  # more lines than commands: never pair them with the next
                    self._farewell = done.farewell
                    self.drop()
            else:
                await _mail(smtp, sender, options, encoding)
                stage = "RCPT"
                await _rcpt(smtp, recipient, encoding)
                if on_rcpt_accepted is not None:
                    on_rcpt_accepted()
                stage = "DATA"
                start = await smtp.execute_command(b"DATA")
                if start.code != 354:
                    raise aiosmtplib.SMTPDataError(start.code, start.message)
                reply = await self._body(smtp, wire or wire_format(data), at)
        except pipelining.Refused as refused:
            return await self._refused(refused.stage, refused.code, refused.message,
                                       waits_for_body=refused.in_data)
        except pipelining.OutOfStep as exc:
            self.drop()
            return Attempt(Verdict.DEFERRED, None, str(exc))
        except pipelining.Withdrawn:
            self.drop()  # the relay waits for a body that must not come
            return Attempt(Verdict.DEFERRED, None, "withdrawn before its body was written")
        except aiosmtplib.SMTPResponseException as exc:
            return await self._refused("DOT" if self._dot_written else stage, exc.code,
                                       exc.message)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError,
                aiosmtplib.SMTPException, OSError) as exc:
            self.drop()
            timed_out = self.timed_out = isinstance(exc, TimeoutError)
            why = "timed out" if timed_out else "connection lost"
            if self._dot_written:
                return Attempt(Verdict.UNKNOWN, None,
                               f"{why} after the end of DATA, before the reply: the server "
                               "may have the message; not retried (send --resend-unknown)")
            # no reply to MAIL yet on a link that carried a message: the relay hung up after
            # that one (a silent relay is no hang-up: a timeout counts as ever)
            return Attempt(Verdict.DEFERRED, None, f"{why} during {stage}: {exc}",
                           hung_up=stage == "MAIL" and not timed_out and self.carried > 0)
        except (ValueError, UnicodeError) as exc:
            await self._reset()
            return Attempt(Verdict.FAILED, None, f"invalid address: {exc}")
        finally:
            self.last_used = time.monotonic()
        self.carried += 1
        return Attempt(Verdict.SENT, reply.code, reply.message)

    async def _body(self, smtp: aiosmtplib.SMTP, wire: bytes,
                    at: Callable[[str], None]) -> aiosmtplib.SMTPResponse:
        """After the 354: the body in wire format (``wire_format``), and the reply read as
        a pipelined transaction reads it (``pipelining.body``); raises as ``smtp.data()``
        does. ``at("DOT")`` once the write that ends with the final dot has been accepted
        by the transport: from then on the server may have the whole message."""
        try:
            done = await pipelining.body(smtp, wire, self.settings.timeout, at)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            smtp.close()  # as smtp.data() does: a half-read reply must not pair with the next
            raise
        if done.reply.code != 250:
            raise aiosmtplib.SMTPDataError(done.reply.code, done.reply.message)
        if not done.in_step:  # more lines than commands: never pair them with the next
            self._farewell = done.farewell
            self.drop()
        return done.reply

    async def _refused(self, stage: str, code: int, text: str, *,
                       waits_for_body: bool = False) -> Attempt:
        """Any reply but the one hoped for at ``stage`` (DOT: the end of DATA). A clear
        refusal is classified and the link reset for the next message, or dropped when the
        server waits for a body or has ended the session (``ends_session``: a relay that
        says 421 and keeps the link open would refuse every later message on it); a reply
        that does not fit means the link is out of step."""
        # 221 or 421 where MAIL's answer is due, on a link that carried a message: the relay
        # said goodbye after that one (maybe before our MAIL reached it), nothing of this one
        hung_up = stage == "MAIL" and code in (221, 421) and self.carried > 0
        if not fits(stage, code):
            self.drop()
            return Attempt(classify(stage, code, text), None, unfit_words(stage, code, text),
                           stage, hung_up=hung_up)
        if waits_for_body or ends_session(code, text):  # waits for a body, or is over
            self.drop()
        else:
            await self._reset()
        return Attempt(classify(stage, code, text), code, text, stage, hung_up=hung_up)

    async def _reset(self) -> None:
        """RSET after a refusal so the next transaction starts clean (or drop the link).
        Not on a chained link: the relay's reply to the end of DATA ended that transaction
        (RFC 5321 4.1.1.4), and a RSET now would reach it inside the next one's DATA."""
        if self._held is not None:
            return
        if self._smtp is None or not self._smtp.is_connected:
            self.drop()
            return
        try:
            await self._smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            self.drop()

    def drop(self) -> None:
        """Close at once. A graceful TLS close waits for the peer's close_notify, which may
        outlive the event loop and leak the socket; after QUIT or a failure it buys nothing."""
        self._held = None
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None
        if isinstance(self._socket_transport, asyncio.Transport):
            self._socket_transport.abort()
        self._socket_transport = None

    async def close(self, quit_timeout: float) -> None:
        """QUIT politely, briefly; the run's end must not wait on a slow server."""
        smtp = self._smtp
        if smtp is not None and smtp.is_connected and self._held is None:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit(timeout=quit_timeout)
        self.drop()
