"""SMTP PIPELINING (RFC 2920, ``delivery/pipelining.py``): MAIL, RCPT and DATA in one write.

A scripted server on 127.0.0.1 answers the three commands in one write, as real relays do
(the case aiosmtplib's own reader drops), and answers 354 even after refusing the recipient,
which the client must meet by dropping the link, never by sending a body. The aiosmtpd sink
of the other delivery tests offers PIPELINING, so every fault there runs this path too; the
ones here also keep the path without it tested.
"""

from __future__ import annotations

import asyncio
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from delivery_support import Deliver, make_envelopes, make_transport

from mirage_mailer.delivery import Envelope, Outcome
from mirage_mailer.delivery.classify import Verdict
from mirage_mailer.delivery.connection import Connection, ConnectSettings
from support.smtp_sink import Fault, SmtpSink, refuse

REFUSED = "r1@example.net"


@dataclass
class Script:
    """What the scripted server saw."""

    envelopes: list[bytes] = field(default_factory=list)  # each MAIL..DATA
    bodies: int = 0
    body_after_refusal: bool = False
    connections: int = 0
    # envelopes whose MAIL came in the same read as the body before it (RFC 2920 3.1)
    with_body: int = 0
    # a server that throws away what follows the end of DATA in the same read, as a broken
    # relay (or proxy) would: the client must not wait on it for every message
    drops_after_dot: bool = False


class _Handler(socketserver.StreamRequestHandler):
    script: Script

    def _until(self, buffer: bytes, end: bytes) -> tuple[bytes, bool]:
        """``buffer`` read on until it holds ``end``; and whether a read was needed."""
        read = False
        while end not in buffer:
            chunk = self.request.recv(65536)
            if not chunk:
                raise ConnectionError
            buffer += chunk
            read = True
        return buffer, read

    def handle(self) -> None:
        script = self.script
        script.connections += 1
        send = self.request.sendall
        send(b"220 scripted ESMTP\r\n")
        try:
            buffer, _ = self._until(b"", b"\r\n")  # EHLO
            buffer = buffer.split(b"\r\n", 1)[1]
            send(b"250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            while True:
                if not buffer:
                    buffer = self.request.recv(65536)
                    if not buffer:
                        return
                elif script.envelopes:
                    script.with_body += 1
                if buffer.startswith(b"QUIT"):
                    send(b"221 bye\r\n")
                    return
                buffer, _ = self._until(buffer, b"DATA\r\n")
                envelope, buffer = buffer.split(b"DATA\r\n", 1)
                script.envelopes.append(envelope + b"DATA\r\n")
                if REFUSED.encode() in envelope:
                    send(b"250 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n")
                    rest = buffer or self.request.recv(65536)  # the client must hang up: b""
                    script.body_after_refusal = bool(rest)
                    return
                send(b"250 ok\r\n250 ok\r\n354 go ahead\r\n")  # together, in one write
                buffer, _ = self._until(buffer, b"\r\n.\r\n")
                buffer = buffer.split(b"\r\n.\r\n", 1)[1]
                if script.drops_after_dot:
                    buffer = b""
                script.bodies += 1
                send(b"250 2.0.0 queued\r\n")
        except (ConnectionError, OSError):
            return


@pytest.fixture
def scripted() -> Iterator[tuple[str, Script]]:
    script = Script()
    handler = type("Handler", (_Handler,), {"script": script})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"smtp://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()


def test_mail_rcpt_and_data_go_in_one_write_and_replies_in_one_are_all_read(
        deliver: Deliver, scripted: tuple[str, Script]) -> None:
    url, script = scripted
    run = deliver(make_transport(url, concurrency=1, starttls="never", timeout=2.0),
                  make_envelopes(3, start=2))
    assert run.rec.keys(Outcome.SENT) == {2, 3, 4}
    assert script.bodies == 3 and script.connections == 1
    for chunk in script.envelopes:
        assert chunk.startswith(b"MAIL FROM:<news@example.org>") and chunk.endswith(
            b"\r\nDATA\r\n") and b"\r\nRCPT TO:<" in chunk
    # the second and third messages' commands went with the body before them
    assert script.with_body == 2


def test_a_354_after_a_refused_recipient_is_answered_by_hanging_up(
        deliver: Deliver, scripted: tuple[str, Script]) -> None:
    url, script = scripted
    run = deliver(make_transport(url, concurrency=1, starttls="never", timeout=2.0),
                  make_envelopes(3))  # r0, r1 (refused), r2
    final = run.rec.final()
    assert final[1].outcome is Outcome.FAILED and final[1].code == 550
    assert not script.body_after_refusal  # no body, no RSET: nothing could be delivered
    assert run.rec.keys(Outcome.SENT) == {0, 2}
    assert script.connections == 2  # the next message came on a new link


@pytest.mark.smtp_server(pipelining=False)
@pytest.mark.smtp_fault(rules=[refuse(REFUSED)])
def test_without_pipelining_each_command_waits_for_its_reply(sink: SmtpSink,
                                                             deliver: Deliver) -> None:
    envelopes: list[Envelope] = list(make_envelopes(5))
    run = deliver(make_transport(sink.url, concurrency=1), iter(envelopes))
    assert run.rec.keys(Outcome.FAILED) == {1}
    assert run.rec.keys(Outcome.SENT) == {0, 2, 3, 4}
    assert sorted(sink.recipients()) == sorted(e.recipient for e in envelopes if e.key != 1)
    assert sink.connections == 1  # the refusal was reset (RSET), not hung up on


@pytest.mark.smtp_fault(rules=[refuse(REFUSED)])
def test_a_pipelined_refusal_resets_and_keeps_the_link(sink: SmtpSink,
                                                       deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, concurrency=1), make_envelopes(5))
    assert run.rec.keys(Outcome.FAILED) == {1}
    assert run.rec.keys(Outcome.SENT) == {0, 2, 3, 4}
    assert sink.connections == 1


def test_pipelining_on_uvloop(scripted: tuple[str, Script]) -> None:
    """uvloop's transports are not ``asyncio.Transport`` subclasses; the reader swap must
    work on them too (``transport.event_loop: uvloop``)."""
    uvloop = pytest.importorskip("uvloop")
    url, script = scripted
    port = int(url.rsplit(":", 1)[1])
    settings = ConnectSettings(host="127.0.0.1", port=port, implicit_tls=False,
                               starttls="never", credentials=None, allow_plaintext_auth=False,
                               timeout=2.0, tls_context=None, local_hostname="client.test")

    async def main() -> list[Verdict]:
        conn = Connection(settings)
        await conn.open()
        try:
            return [(await conn.send(e.sender, e.recipient, e.data)).verdict
                    for e in make_envelopes(3, start=2)]
        finally:
            await conn.close(1)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == [Verdict.SENT] * 3
    assert script.bodies == 3 and all(chunk.endswith(b"DATA\r\n") for chunk in script.envelopes)


@pytest.mark.smtp_server(pipelining=False)
@pytest.mark.smtp_fault(rules=[Fault("MAIL", "250 2.1.0 Ok\r\n250 2.0.0 stale", times=1)])
def test_a_reply_line_nobody_asked_for_drops_the_link_before_the_next_command(
        sink: SmtpSink, deliver: Deliver) -> None:
    """Two lines to one MAIL: the second, taken as the RCPT reply, would shift every later
    reply by one. The link is out of step: dropped before RCPT, the message retried."""
    envelopes: list[Envelope] = list(make_envelopes(3))
    run = deliver(make_transport(sink.url, concurrency=1), iter(envelopes))
    assert run.rec.keys(Outcome.SENT) == {0, 1, 2}
    first = run.rec.of(0)[0]
    assert first.outcome is Outcome.DEFERRED and first.code is None
    assert first.response == (
        "reply lines nobody asked for came after the answer to MAIL (250 2.0.0 stale): the "
        "relay is out of step; connection dropped, to be retried")
    assert sorted(sink.recipients()) == sorted(e.recipient for e in envelopes)
    assert sink.connections == 2 and sink.count("RCPT") == 3  # no RCPT on the shifted link


def test_a_relay_that_drops_what_follows_the_end_of_data_costs_one_timeout(
        deliver: Deliver, scripted: tuple[str, Script]) -> None:
    """A relay (or a proxy before it) that throws away the commands written with a body:
    the first such message waits out the timeout and goes again, uncounted, on a new link;
    after that the run writes each message's commands on their own."""
    url, script = scripted
    script.drops_after_dot = True
    run = deliver(make_transport(url, concurrency=1, starttls="never", timeout=1.0),
                  make_envelopes(5, start=2))  # r1 is the one this server refuses
    assert run.rec.keys(Outcome.SENT) == set(range(2, 7))
    assert len(run.rec.attempts) == 5 and len(run.rec.results) == 5  # nothing counted twice
    assert script.bodies == 5
    assert script.connections == 2  # one timeout, then no chain: not one timeout a message
