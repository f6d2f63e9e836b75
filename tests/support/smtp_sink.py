"""Real SMTP servers for tests and benchmarks: record what arrives, inject faults, throttle.

An ``SmtpSink`` is aiosmtpd on 127.0.0.1, port 0, speaking the real protocol (STARTTLS,
implicit TLS, AUTH). ``rules`` (``support/faults.py``, re-exported here) decide, per MAIL/RCPT/DATA,
whether to answer something other than 250: a refusal, a 4xx, a slow answer, a dropped
connection, a message stored and then left without a reply (or a malformed one), greylisting,
or a throttle; a GREET rule answers a new connection instead of the 220 and hangs up.
It runs in the caller's event loop (``async with``) or in its own thread
(``with sink.running_in_thread()``), which the benchmark uses. Needs aiosmtpd, not pytest.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from support.faults import (
    Call,
    CloseAfterEach,
    Fault,
    Gate,
    Greylist,
    Reply,
    Rule,
    StoreThenFail,
    Throttle,
    TokenBucket,
    drop_at_data_command,
    drop_in_data,
    fail_times,
    picked,
    refuse,
    refuse_message,
    store_then_answer,
    store_then_drop,
    store_then_stall,
)

__all__ = [
    "Call", "CloseAfterEach", "Fault", "Gate", "Greylist", "Received", "Reply", "Rule",
    "SmtpSink", "StoreThenFail",
    "Throttle", "TokenBucket", "drop_at_data_command", "drop_in_data", "fail_times", "picked",
    "refuse", "refuse_message", "serving", "store_then_answer", "store_then_drop",
    "store_then_stall",
]

_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One message the sink accepted (250 after DATA)."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes  # as received, CRLF line endings
    connection: int
    tls: bool
    at: float  # time.monotonic()


class _Server(SMTP):
    """aiosmtpd's server plus connection numbering and reply-then-close / silent drop."""

    def __init__(self, sink: SmtpSink, **kwargs: Any) -> None:
        super().__init__(_Handler(sink), **kwargs)
        self.sink = sink
        self.connection = 0
        self.close_after_reply = False
        self.farewell: tuple[str, float] | None = None  # said after the reply, then close
        self.over_limit = False
        self.lost = False  # the client has gone

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        fresh = self._original_transport is None and self.connection == 0
        if fresh:
            limit = self.sink.max_connections
            self.over_limit = limit is not None and len(self.sink._live) >= limit
        super().connection_made(transport)
        if fresh and self.over_limit:
            self.sink.refused_connections += 1
        elif fresh:
            self.connection = self.sink._opened(self)

    async def _handle_client(self) -> None:
        if self.over_limit:  # as providers do when a client opens too many connections
            await self.push("421 4.7.0 Too many concurrent connections, try later")
            if self.transport is not None:
                self.transport.close()
            return
        greeting = self.sink._match("GREET", "", self)
        if greeting is not None:  # a relay that refuses (or garbles) the session at once
            if greeting.text:
                await self.push(greeting.text)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        self.lost = True
        self.sink._live.discard(self)
        super().connection_lost(error)

    @property
    def secure(self) -> bool:
        transport = self.transport
        return self._tls_protocol is not None or (
            transport is not None and transport.get_extra_info("sslcontext") is not None)

    async def push(self, status: AnyStr) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # dropped on purpose: say nothing
        if isinstance(status, str) and not status.isascii():  # a rule's raw bytes (\udcXX)
            status = status.encode("utf-8", "surrogateescape")  # type: ignore[assignment]
        await super().push(status)
        if self.close_after_reply:
            if self.farewell is not None:
                text, gap = self.farewell
                if gap:
                    await asyncio.sleep(gap)
                if self.transport is not None and not self.transport.is_closing():
                    await super().push(text)
            if self.transport is not None:
                self.transport.close()

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        self.sink.commands.append((self.connection, command))
        return await super()._call_handler_hook(command, *args)

    async def smtp_DATA(self, arg: str) -> None:
        """Rules at stage DATA-START answer the DATA command itself, before any content."""
        envelope = self.envelope
        first = envelope.rcpt_tos[0] if envelope is not None and envelope.rcpt_tos else ""
        reply = self.sink._match("DATA-START", first, self)
        if reply is not None:
            await self.push(await self.sink._answer(reply, self))
            return
        await super().smtp_DATA(arg)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(self, server: _Server, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.sink.pipelining:  # RFC 2920; aiosmtpd reads pipelined commands in order
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: _Server, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        answer = await self.sink._decide("MAIL", address, server)
        if answer is not None:
            return answer
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: _Server, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        answer = await self.sink._decide("RCPT", address, server)
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: _Server, session: Session, envelope: Envelope) -> str:
        first = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        reply = self.sink._match("DATA", first, server)
        if reply is not None and reply.store:
            self._store(server, envelope)
        if reply is not None:
            return await self.sink._answer(reply, server)
        self._store(server, envelope)
        return f"250 2.0.0 Ok: queued as {len(self.sink.received)}"

    def _store(self, server: _Server, envelope: Envelope) -> None:
        self.sink.received.append(Received(
            sender=envelope.mail_from or "", recipients=tuple(envelope.rcpt_tos),
            data=envelope.original_content or b"", connection=server.connection,
            tls=server.secure, at=time.monotonic()))


class SmtpSink:
    """A recording SMTP server on 127.0.0.1 (port chosen by the OS)."""

    server_class: type[_Server] = _Server  # a subclass records more (support/tls_relay.py)

    def __init__(
        self,
        *,
        rules: Sequence[Rule] = (),
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        auth_required: bool = False,
        auth_require_tls: bool = True,
        smtputf8: bool = False,
        max_connections: int | None = None,
        idle_timeout: float = 30.0,
        pipelining: bool = True,
        size_limit: int | None = None,
    ) -> None:
        self.rules = list(rules)
        self.size_limit = size_limit  # advertised as SIZE (aiosmtpd's own: 32 MiB)
        self.pipelining = pipelining  # offer PIPELINING in the EHLO reply
        self.smtputf8 = smtputf8
        self.max_connections = max_connections  # beyond: 421 at greeting
        self.idle_timeout = idle_timeout  # the server drops a silent client after this
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.auth = auth
        self.auth_required = auth_required
        # aiosmtpd only knows about STARTTLS; under implicit TLS the link is already secure
        self.auth_require_tls = auth_require_tls and implicit_tls is None
        self.received: list[Received] = []
        self.commands: list[tuple[int, str]] = []
        self.mail_times: list[tuple[int, float]] = []  # (connection, time) of every MAIL FROM
        self.connections = 0
        self.refused_connections = 0
        self.peak_connections = 0  # most connections open at once
        self.port = 0
        self._server: asyncio.Server | None = None
        self._live: set[_Server] = set()

    @property
    def url(self) -> str:
        scheme = "smtps" if self.implicit_tls is not None else "smtp"
        return f"{scheme}://{_HOST}:{self.port}"

    def recipients(self) -> list[str]:
        """Every accepted recipient, in arrival order (duplicates show up twice)."""
        return [r for message in self.received for r in message.recipients]

    def count(self, command: str) -> int:
        return sum(1 for _, c in self.commands if c == command)

    def _opened(self, server: _Server) -> int:
        self.connections += 1
        self._live.add(server)
        self.peak_connections = max(self.peak_connections, len(self._live))
        return self.connections

    def _match(self, stage: str, address: str, server: _Server) -> Reply | None:
        """The first rule's reply for this command, or None (answer normally)."""
        call = Call(stage, address, server.connection, time.monotonic())
        if stage == "MAIL":
            self.mail_times.append((server.connection, call.at))
        for rule in self.rules:
            reply = rule(call)
            if reply is not None:
                return reply
        return None

    async def _answer(self, reply: Reply, server: _Server) -> str:
        """Wait out the reply's delay (a silent stall ends when the client hangs up), then
        the text to send, or "" after dropping the connection."""
        deadline = time.monotonic() + reply.delay
        if reply.until is not None:
            while (not reply.until.is_set() and not server.lost
                   and time.monotonic() < deadline):
                await asyncio.sleep(0.01)
        elif reply.text is None:
            while not server.lost and time.monotonic() < deadline:
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        elif reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.text is None:
            if server.transport is not None:
                server.transport.close()
            return ""
        server.close_after_reply = reply.close
        server.farewell = (reply.farewell, reply.gap) if reply.farewell is not None else None
        return reply.text

    async def _decide(self, stage: str, address: str, server: _Server) -> str | None:
        reply = self._match(stage, address, server)
        return None if reply is None else await self._answer(reply, server)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self.auth is not None
              and auth_data.login.decode() == self.auth[0]
              and auth_data.password.decode() == self.auth[1])
        return AuthResult(success=ok, handled=False)

    def _factory(self) -> _Server:
        kwargs: dict[str, Any] = {
            "hostname": "sink.test",
            "tls_context": self.starttls,
            "loop": asyncio.get_running_loop(),
            "timeout": self.idle_timeout,
            "enable_SMTPUTF8": self.smtputf8,
        }
        if self.size_limit is not None:
            kwargs["data_size_limit"] = self.size_limit
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=self.auth_required,
                          auth_require_tls=self.auth_require_tls)
        return self.server_class(self, **kwargs)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._factory, _HOST, 0,
                                                ssl=self.implicit_tls)
        self.port = self._server.sockets[0].getsockname()[1]

    def crash(self) -> None:
        """Stop listening and cut every connection, as a relay that goes down (sink's loop)."""
        if self._server is not None:
            self._server.close()
        for server in list(self._live):
            if server.transport is not None:
                server.transport.close()

    async def stop(self) -> None:
        self.crash()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0)
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        handlers = [t for t in others if "_handle_client" in repr(t.get_coro())]
        if handlers:
            await asyncio.wait(handlers, timeout=2)

    async def __aenter__(self) -> SmtpSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextmanager
    def running_in_thread(self) -> Iterator[SmtpSink]:
        """Serve from a private event loop in a daemon thread; stops on exit."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="smtp-sink", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(10)
            yield self
        finally:
            try:
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(10)
                loop.close()


@asynccontextmanager
async def serving(**kwargs: Any) -> AsyncIterator[SmtpSink]:
    """``async with serving(rules=[...]) as sink:`` in the current event loop."""
    sink = SmtpSink(**kwargs)
    async with sink:
        yield sink
