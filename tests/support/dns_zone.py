"""A real DNS server for tests: serves one zone, given as a dict, over UDP and TCP on 127.0.0.1.

``doctor`` asks it what a provider's resolver would ask the world (SPF, DKIM, DMARC, MX, A),
through dnspython, over the wire: nothing in the code under test is patched. The zone maps a
name to its records by type::

    {"example.org": {"TXT": ["v=spf1 -all"], "MX": [(10, "mx.example.org")],
                     "A": ["192.0.2.1"], "AAAA": ["2001:db8::1"]}}

A name not in the zone is NXDOMAIN; a name in it without the asked type answers NOERROR with
no records, as real servers do. A type given as a string instead of records is the rcode
that name and type answer with, as a broken delegation does: ``{"TXT": "SERVFAIL"}``,
``{"A": "REFUSED"}``; ``"TIMEOUT"`` is no answer at all. Long TXT values are split into
255-byte strings, and an answer over 512 bytes is truncated over UDP, so the client asks
again over TCP. Every query
is kept in ``queries`` as ``(name, type)``, so a test can bound how many were made.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from dnslib import AAAA, MX, QTYPE, RCODE, RR, TXT, A, DNSError, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

Zone = Mapping[str, Mapping[str, Sequence[Any]]]
_HOST = "127.0.0.1"
UDP_LIMIT = 512  # bytes of a classic UDP answer (RFC 1035 4.2.1)


def _name(text: str) -> str:
    return text.rstrip(".").lower()


def _rdata(kind: str, value: Any) -> Any:
    if kind == "TXT":
        raw = str(value).encode("utf-8")
        return TXT([raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""])
    if kind == "MX":
        preference, host = value
        return MX(host, preference)
    if kind == "A":
        return A(value)
    if kind == "AAAA":
        return AAAA(value)
    raise ValueError(f"record type {kind} is not served by this test zone")


class _Handler(DNSHandler):  # type: ignore[misc]
    """Classic DNS over UDP: an answer over 512 bytes comes back truncated (TC), so the
    client must ask again over TCP, as a real server makes it do past its UDP size."""

    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        packed: bytes = self.server.resolver.resolve(request, self).pack()
        if self.protocol == "udp" and len(packed) > UDP_LIMIT:
            short = request.reply()  # the question kept (dnslib's truncate() drops it)
            short.header.tc = 1
            packed = short.pack()
        return packed


class _ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, zone: Zone) -> None:
        self.zone = {_name(name): dict(records) for name, records in zone.items()}
        self.queries: list[tuple[str, str]] = []
        self.over_tcp = 0  # queries that came over TCP
        self.lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = _name(str(request.q.qname))
        kind = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((name, kind))
            self.over_tcp += handler.protocol == "tcp"
        records = self.zone.get(name)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        answer = records.get(kind, ())
        if answer == "TIMEOUT":  # the handler sends nothing back
            raise DNSError(f"{name} {kind}: dropped, as the test zone says")
        if isinstance(answer, str):  # this name and type fail with that rcode
            reply.header.rcode = getattr(RCODE, answer)
            return reply
        for value in answer:
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=_rdata(kind, value),
                                ttl=60))
        return reply


class DnsZoneServer:
    """UDP and TCP on one free port of 127.0.0.1; ``address`` is ``127.0.0.1:PORT``."""

    def __init__(self, zone: Zone) -> None:
        self.resolver = _ZoneResolver(zone)
        self.port = 0
        self._servers: list[DNSServer] = []

    @property
    def address(self) -> str:
        return f"{_HOST}:{self.port}"

    @property
    def queries(self) -> list[tuple[str, str]]:
        return self.resolver.queries

    def start(self) -> None:
        quiet = DNSLogger(logf=lambda _text: None)
        for _ in range(20):  # the UDP port may be taken for TCP: try another
            udp = DNSServer(self.resolver, address=_HOST, port=0, logger=quiet,
                            handler=_Handler)
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(self.resolver, address=_HOST, port=port, tcp=True,
                                logger=quiet, handler=_Handler)
            except OSError:
                udp.server.server_close()
                continue
            self.port = port
            self._servers = [udp, tcp]
            for server in self._servers:  # a short poll: stop() returns at once
                server.thread = threading.Thread(target=server.server.serve_forever,
                                                 kwargs={"poll_interval": 0.02}, daemon=True)
                server.thread.start()
            return
        raise OSError("no free port for both UDP and TCP")

    def stop(self) -> None:
        for server in self._servers:
            base: socketserver.BaseServer = server.server
            base.shutdown()
            base.server_close()
            server.thread.join(5)
        self._servers = []


@contextmanager
def serving_zone(zone: Zone) -> Iterator[DnsZoneServer]:
    """``with serving_zone({...}) as dns:`` a DNS server at ``dns.address``, stopped after."""
    server = DnsZoneServer(zone)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def dead_nameserver() -> str:
    """``127.0.0.1:PORT`` of a UDP port nobody answers on (refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((_HOST, 0))
        port = probe.getsockname()[1]
    return f"{_HOST}:{port}"
