"""SMTP PIPELINING (RFC 2920): MAIL, RCPT and DATA in one write, their three replies after;
and the same transaction one command at a time for a relay that does not offer it.

Why: without it a message costs four round trips (MAIL, RCPT, DATA, the body), each an
event-loop wake-up, a timer and a write; with it, two. aiosmtplib cannot pipeline: its
protocol parses one reply per arrival of data and drops what arrives while a parsed reply
waits to be picked up (measured: a relay answering in separate packets slowed a send to
16 msg/s). So for the transaction the transport is handed to ``Replies``, our own reader,
which keeps every byte and parses replies from its buffer; aiosmtplib's protocol gets the
transport back afterwards, idle, as it left it.

The body still goes only after the 354, so what "the end of DATA was written" means for
crash safety does not change. A chain (RFC 2920 3.1: the message content may open a group)
writes the next message's MAIL, RCPT and DATA with the body before them, one round trip a
message instead of two; that next message is claimed only after the relay answered its
commands, right before its own body, so a link never holds two claimed messages whose
outcome is unknown. A 354 after a refused MAIL or RCPT (a server that lets a
transaction with no recipient into DATA) is answered by dropping the connection, which aborts
the transaction: nothing is delivered, and the next message opens a new link.

Every byte of the transaction goes through one reader, so it can tell when replies come that
no command asked for (a relay answering one "." with two lines): taken as the answer to the
next command they would pair every later reply with the wrong command, and a recipient would
be marked sent on its RCPT reply. The link is out of step and is dropped instead (``OutOfStep``,
or ``Done.in_step`` after the end of DATA).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NamedTuple, cast

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol
from aiosmtplib.response import SMTPResponse

MAX_REPLY = 64 * 1024  # a reply longer than this is not SMTP


class Replies(asyncio.Protocol):
    """Reads SMTP replies for one pipelined transaction; connection events go on to
    aiosmtplib's protocol, so the ``SMTP`` object knows when the link is gone."""

    def __init__(self, inner: SMTPProtocol, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self.loop = loop
        self.buffer = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.lost: aiosmtplib.SMTPServerDisconnected | None = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.lost = aiosmtplib.SMTPServerDisconnected("Unexpected EOF received")
        self._wake()
        return bool(self.inner.eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
        self._wake()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _parse(self) -> SMTPResponse | None:
        """One complete reply from the front of the buffer, or None (not all here yet)."""
        offset = 0
        first = 0
        lines: list[bytes] = []
        while (end := self.buffer.find(b"\n", offset)) != -1:
            line = bytes(self.buffer[offset:end + 1])
            offset = end + 1
            # three digits, then a space, a hyphen or the end of the line; int() alone
            # would take "25\r" or " 25" for a code
            if not (line[:3].isdigit() and line[3:4] in (b" ", b"-", b"\r", b"\n")):
                text = line[:200].decode("utf-8", "replace").strip()
                raise aiosmtplib.SMTPResponseException(
                    -1, f"Malformed SMTP response line: {text}")
            code = int(line[:3])
            if lines and code != first:  # RFC 5321 4.2.1: one code on every line
                raise aiosmtplib.SMTPResponseException(-1, mixed_codes(first, code))
            first = code
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                del self.buffer[:offset]
                return SMTPResponse(code, b"\n".join(lines).decode("utf-8", "surrogateescape"))
        if len(self.buffer) > MAX_REPLY:
            raise aiosmtplib.SMTPResponseException(-1, "Response too long")
        return None

    async def reply(self, timeout: float) -> SMTPResponse:
        """The next reply, from what already arrived or from the wire; raises aiosmtplib's
        disconnect and timeout errors as its own reader does.

        The wait is a future and one timer of the loop's, not ``asyncio.timeout_at``, whose
        task look-ups ask the kernel for the process id each time (Python 3.11), several
        times a message."""
        found = self._parse()
        if found is not None:
            return found
        loop = self.loop
        deadline = loop.time() + timeout
        while (found := self._parse()) is None:
            if self.lost is not None:
                raise self.lost
            waiter = self.waiter = loop.create_future()
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            except TimeoutError:
                raise aiosmtplib.SMTPReadTimeoutError(
                    "Timed out waiting for server response") from None
            finally:
                timer.cancel()
                self.waiter = None
        return found


def mixed_codes(first: int, then: int) -> str:
    """What to keep for a multi-line reply whose lines carry different codes: no clear
    answer ("550-rejected" then "250 ok" is neither a refusal nor an acceptance)."""
    return f"Malformed SMTP response line: a {first} reply line, then a {then} line"


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def envelope_commands(sender: bytes, recipient: bytes, options: list[str]) -> list[bytes]:
    """MAIL, RCPT and DATA, each with its CRLF, for plain (already checked) ASCII addresses."""
    mail = b"MAIL FROM:<" + sender + b">"
    for option in options:
        mail += b" " + option.encode("ascii")
    return [mail + b"\r\n", b"RCPT TO:<" + recipient + b">\r\n", b"DATA\r\n"]


class Refused(Exception):
    """A pipelined MAIL, RCPT or DATA was refused: the stage, and whether the server is now
    waiting for a body (354 after a refusal), so the link must be dropped, not reset."""

    def __init__(self, stage: str, reply: SMTPResponse, *, in_data: bool) -> None:
        super().__init__(f"{stage}: {reply.code} {reply.message}")
        self.stage = stage
        self.code = reply.code
        self.message = reply.message
        self.in_data = in_data


class OutOfStep(Exception):
    """Reply lines were waiting before the next command went out: no command asked for them,
    so the replies no longer pair with the commands. Raised before the body is written (the
    relay cannot have the message); the link must be dropped."""

    def __init__(self, stage: str, unasked: bytes) -> None:
        self.stage = stage
        self.unasked = unasked[:80].decode("utf-8", "replace").strip()
        super().__init__(f"reply lines nobody asked for came after the answer to {stage} "
                         f"({self.unasked}): the relay is out of step; connection dropped, "
                         "to be retried")


# aiosmtplib's protocol, the transport and our reader, while a chain of transactions keeps
# the reader on the link (``ahead``): the next transaction's replies may already be in its
# buffer, and aiosmtplib's protocol would drop them
Held = tuple[asyncio.BaseProtocol, asyncio.Transport, "Replies"]


class Withdrawn(Exception):
    """The caller took back a message after the relay accepted its commands (the reader
    unsubscribed meanwhile, or the run stops): nothing of its body was written, and the
    relay waits for one, so the link must be dropped."""


class Done(NamedTuple):
    """The reply to the end of DATA, and whether the link is still in step: False when more
    lines followed it, which no command asked for (the link must be dropped); ``farewell``
    when those lines are the relay's 221 or 421: it ends the session after this message.
    ``held``: the next message's MAIL, RCPT and DATA went with this body, so our reader stays
    on the link for its replies (``transaction(held=...)``)."""

    reply: SMTPResponse
    in_step: bool
    farewell: bool = False
    held: Held | None = None


def _done(reply: SMTPResponse, replies: Replies) -> Done:
    left = replies.buffer
    return Done(reply, in_step=not left, farewell=bytes(left[:3]) in (b"221", b"421"))


def _unasked(replies: Replies, stage: str) -> None:
    if replies.buffer:
        raise OutOfStep(stage, bytes(replies.buffer))


def _take(smtp: aiosmtplib.SMTP) -> tuple[asyncio.BaseProtocol, asyncio.Transport, Replies]:
    """(aiosmtplib's protocol, the transport, ``Replies``): the connection's replies read by
    ``Replies`` from now on; the caller gives the transport back to the protocol after."""
    protocol = smtp.protocol
    # asyncio's transports and uvloop's (which do not subclass asyncio.Transport)
    transport = cast(asyncio.Transport | None, protocol.transport if protocol else None)
    if protocol is None or transport is None or transport.is_closing():
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    # the loop it connected on (aiosmtplib's public ``loop``): get_running_loop asks the
    # kernel for the process id on Python 3.11, the last such call of a message
    replies = Replies(protocol, smtp.loop or asyncio.get_running_loop())
    transport.set_protocol(replies)
    return protocol, transport, replies


async def transaction(smtp: aiosmtplib.SMTP, sender: bytes, recipient: bytes,
                      options: list[str], wire: bytes, timeout: float,
                      at: Callable[[str], None], *, pipelined: bool = True,
                      held: Held | None = None,
                      claim: Callable[[], Awaitable[bool]] | None = None,
                      ahead: Callable[[], bytes] | None = None) -> Done:
    """MAIL, RCPT and DATA at once (``pipelined``) or each after the reply to the one before,
    then (on 250, 250, 354) the body in wire format; the reply to the body. ``at`` hears where
    the transaction is: "RCPT", "DATA" (the replies awaited), "ACCEPTED" (250, 250, 354: the
    relay let the message through its limits), "DOT" (the final dot has been handed to the
    transport: the server may have the message).

    A chain (RFC 2920 3.1: the message content may open a group of commands): ``ahead``
    gives the next message's MAIL, RCPT and DATA, written with this body in one write, so a
    message costs one round trip instead of two; the returned ``Done.held`` then carries our
    reader to that next transaction, called with ``held`` (its commands already written).
    ``claim`` is awaited once the relay has answered the commands, before any body leaves:
    False withdraws the message (``Withdrawn``). A link therefore holds at most one claimed
    message whose outcome is not known, as without a chain.

    Raises ``Refused`` for a refusal before the body (pipelined: after reading all three
    replies, so the link stays in step), ``OutOfStep`` when replies nobody asked for wait
    before a command or the body, ``SMTPDataError`` for a refusal after the body, and
    aiosmtplib's disconnect and timeout errors as its own commands do.
    """
    protocol, transport, replies = held if held is not None else _take(smtp)
    mail_command, rcpt_command, data_command = envelope_commands(sender, recipient, options)
    chained: Held | None = None
    try:
        if held is not None or pipelined:
            if held is None:  # else written with the body before: the replies are due
                transport.write(mail_command + rcpt_command + data_command)
            mail = await replies.reply(timeout)
            if mail.code in (221, 421):  # the session is over: the other replies may never come
                raise Refused("MAIL", mail, in_data=False)
            at("RCPT")
            rcpt = await replies.reply(timeout)
            at("DATA")
            start = await replies.reply(timeout)
        else:
            transport.write(mail_command)
            mail = await replies.reply(timeout)
            if mail.code != 250:
                raise Refused("MAIL", mail, in_data=False)
            _unasked(replies, "MAIL")
            at("RCPT")
            transport.write(rcpt_command)
            rcpt = await replies.reply(timeout)
            if rcpt.code not in (250, 251):
                raise Refused("RCPT", rcpt, in_data=False)
            _unasked(replies, "RCPT")
            at("DATA")
            transport.write(data_command)
            start = await replies.reply(timeout)
        _unasked(replies, "DATA")  # a fourth reply to three commands: no reply can be trusted
        in_data = start.code == 354
        if mail.code != 250:
            raise Refused("MAIL", mail, in_data=in_data)
        if rcpt.code not in (250, 251):
            raise Refused("RCPT", rcpt, in_data=in_data)
        if not in_data:
            raise Refused("DATA", start, in_data=False)
        if claim is not None and not await claim():
            raise Withdrawn
        at("ACCEPTED")
        if transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        following = ahead() if ahead is not None else b""
        transport.write(wire + following if following else wire)
        at("DOT")
        done = await replies.reply(timeout)
        if following:
            chained = (protocol, transport, replies)
    finally:
        if chained is None and not transport.is_closing():
            transport.set_protocol(protocol)  # back to aiosmtplib, nothing left unread
    if chained is not None:  # what follows is the next transaction's, not unasked lines;
        return Done(done, in_step=True, held=chained)  # the caller judges a refusal
    if done.code != 250:
        raise aiosmtplib.SMTPDataError(done.code, done.message)
    return _done(done, replies)


async def body(smtp: aiosmtplib.SMTP, wire: bytes, timeout: float,
               at: Callable[[str], None]) -> Done:
    """After a 354 that aiosmtplib read (addresses ``transaction`` does not take): the body
    in wire format, and the reply to it read by ``Replies``, as ``transaction`` reads it,
    so a reply that is no clear answer is told apart the same way on both paths. ``at``
    hears "DOT" once the final dot has been handed to the transport. Raises aiosmtplib's
    disconnect and timeout errors, and ``SMTPResponseException`` for a malformed reply."""
    protocol, transport, replies = _take(smtp)
    try:
        transport.write(wire)
        at("DOT")
        done = await replies.reply(timeout)
    finally:
        if not transport.is_closing():
            transport.set_protocol(protocol)
    return _done(done, replies)


def offered(smtp: aiosmtplib.SMTP) -> bool:
    return smtp.supports_extension("pipelining")
