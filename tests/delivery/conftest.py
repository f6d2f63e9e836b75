"""Fixtures for delivery tests: a real SMTP sink on 127.0.0.1 port 0, TLS certificates from
trustme, and a helper that runs ``deliver_all`` and records every callback.

Faults are injected per test with markers, as aiosmtplib's own test suite does:

    @pytest.mark.smtp_fault(rules=[refuse("r1@example.net")])  # rules, in order
    @pytest.mark.smtp_server(tls="starttls", auth=("u", "p"))  # server features
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from delivery_support import FAST, Deliver, Recorder, Run

from mirage_mailer.delivery import (
    DeliveryAborted,
    DeliveryStats,
    Envelope,
    TransportSettings,
    deliver_all,
)
from support.smtp_sink import SmtpSink


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "smtp_server(tls=None|'starttls'|'implicit', auth=None, ...): "
        "features of the test SMTP sink")


@pytest.fixture
def deliver(client_tls: ssl.SSLContext) -> Deliver:
    """Run deliver_all to completion in a fresh event loop; abort is returned, not raised."""

    def run(transport: TransportSettings, envelopes: Iterator[Envelope], *,
            rec: Recorder | None = None, stop_after: float | None = None, **kwargs: Any) -> Run:
        rec = rec or Recorder()
        kwargs.setdefault("policy", FAST)
        kwargs.setdefault("local_hostname", "client.test")
        kwargs.setdefault("tls_context", client_tls)

        async def main() -> DeliveryStats:
            stop = asyncio.Event()
            if stop_after is not None:
                asyncio.get_running_loop().call_later(stop_after, stop.set)
            return await deliver_all(transport, envelopes, on_attempt=rec.on_attempt,
                                     on_result=rec.on_result, stop=stop, **kwargs)

        started = time.monotonic()
        try:
            stats = asyncio.run(asyncio.wait_for(main(), 30))
        except DeliveryAborted as exc:
            return Run(rec, None, exc, time.monotonic() - started)
        return Run(rec, stats, None, time.monotonic() - started)

    return run


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


@pytest.fixture
def sink(request: pytest.FixtureRequest, server_tls: ssl.SSLContext) -> Iterator[SmtpSink]:
    """A recording SMTP server in its own thread, configured by the test's markers."""
    fault = request.node.get_closest_marker("smtp_fault")
    server = request.node.get_closest_marker("smtp_server")
    options: dict[str, Any] = dict(server.kwargs) if server else {}
    tls = options.pop("tls", None)
    if tls == "starttls":
        options["starttls"] = server_tls
    elif tls == "implicit":
        options["implicit_tls"] = server_tls
    smtp_sink = SmtpSink(rules=fault.kwargs["rules"] if fault else [], **options)
    with smtp_sink.running_in_thread():
        yield smtp_sink
