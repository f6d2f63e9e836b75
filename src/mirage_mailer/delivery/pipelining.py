"""SMTP PIPELINING (RFC 2920): MAIL, RCPT and DATA in one write, their three replies after.

Why: without it a message costs four round trips (MAIL, RCPT, DATA, the body), each an
event-loop wake-up, a timer and a write; with it, two. aiosmtplib cannot pipeline: its
protocol parses one reply per arrival of data and drops what comes while a parsed reply waits
to be picked up. ``next_reply`` reads replies that arrived together from the protocol's buffer
first, and only then waits for the wire; between the two there is no ``await``, so no data can
arrive unseen.

The body still goes only after the 354 to DATA, so what "the end of DATA was written" means
for crash safety does not change. A 354 after a refused MAIL or RCPT (a server that lets a
transaction with no recipient into DATA) is answered by dropping the connection, which aborts
the transaction: nothing is delivered, and the next message opens a new link.
"""

from __future__ import annotations

from collections.abc import Callable

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol
from aiosmtplib.response import SMTPResponse


async def next_reply(protocol: SMTPProtocol, timeout: float) -> SMTPResponse:
    """The next reply: one already buffered (it came with an earlier one), or from the wire.

    Uses aiosmtplib's protocol internals (``_read_response_from_buffer``,
    ``_response_pending``); tests run every fault of the test relay through this path.
    """
    protocol._response_pending = True  # a reply arriving now is kept, not dropped
    buffered = protocol._read_response_from_buffer()
    if buffered is not None:
        protocol._response_pending = False
        return buffered
    return await protocol.read_response(timeout=timeout)


def envelope_commands(sender: bytes, recipient: bytes, options: list[str]) -> bytes:
    """MAIL, RCPT and DATA as one write, for plain (already checked) ASCII addresses."""
    mail = b"MAIL FROM:<" + sender + b">"
    for option in options:
        mail += b" " + option.encode("ascii")
    return mail + b"\r\nRCPT TO:<" + recipient + b">\r\nDATA\r\n"


class Refused(Exception):
    """A pipelined MAIL, RCPT or DATA was refused: the stage, and whether the server is now
    waiting for a body (354 after a refusal), so the link must be dropped, not reset."""

    def __init__(self, stage: str, reply: SMTPResponse, *, in_data: bool) -> None:
        super().__init__(f"{stage}: {reply.code} {reply.message}")
        self.stage = stage
        self.code = reply.code
        self.message = reply.message
        self.in_data = in_data


async def pipelined_envelope(protocol: SMTPProtocol, sender: bytes, recipient: bytes,
                             options: list[str], timeout: float,
                             at: Callable[[str], None]) -> None:
    """Send MAIL, RCPT and DATA at once and read their replies; returns on 250, 250, 354.

    ``at`` hears which reply is awaited ("MAIL", "RCPT", "DATA"), for the words on a lost
    link. Raises ``Refused`` for a refusal (after reading all three replies, so the link
    stays in step), or aiosmtplib's disconnect and timeout errors as ``execute_command`` does.
    """
    protocol.write(envelope_commands(sender, recipient, options))
    mail = await next_reply(protocol, timeout)
    at("RCPT")
    rcpt = await next_reply(protocol, timeout)
    at("DATA")
    start = await next_reply(protocol, timeout)
    in_data = start.code == 354
    if mail.code != 250:
        raise Refused("MAIL", mail, in_data=in_data)
    if rcpt.code not in (250, 251):
        raise Refused("RCPT", rcpt, in_data=in_data)
    if not in_data:
        raise Refused("DATA", start, in_data=False)


def offered(smtp: aiosmtplib.SMTP) -> bool:
    return smtp.supports_extension("pipelining")
