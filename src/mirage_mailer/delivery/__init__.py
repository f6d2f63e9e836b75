"""Delivery: hand each message to the Maildir outbox or an SMTP relay, and report every attempt.

The caller (``send``) owns state: it marks a message in flight in ``on_attempt`` and records
each ``Result``; this package owns the wire: connections, TLS, pacing and retries. It never
prints and never raises for a network fault or a refusal, only ``DeliveryAborted`` (exit 3)
when the run cannot go on.

Delivery knows bytes, not issues: it must not import ``project`` (not even the config: its
input is its own ``TransportSettings``), ``compose``, the store, services, the web or the CLI;
only ``util``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterator

from mirage_mailer.delivery.connection import ConnectSettings, plaintext_auth_refusal
from mirage_mailer.delivery.maildir import deliver_maildir
from mirage_mailer.delivery.model import (
    Claim,
    DeliveryAborted,
    DeliveryStats,
    Envelope,
    Outcome,
    Result,
    unclaimed,
)
from mirage_mailer.delivery.pacer import AdaptiveSettings, Pacer
from mirage_mailer.delivery.policy import RetryPolicy
from mirage_mailer.delivery.pool import SmtpRun
from mirage_mailer.delivery.settings import TransportSettings
from mirage_mailer.delivery.tls import client_context
from mirage_mailer.util.errors import Problem

__all__ = [
    "AdaptiveSettings",
    "Claim",
    "DeliveryAborted",
    "DeliveryStats",
    "Envelope",
    "Outcome",
    "Result",
    "RetryPolicy",
    "TransportSettings",
    "deliver_all",
    "unclaimed",
]


async def deliver_all(
    transport: TransportSettings,
    envelopes: Iterator[Envelope],
    *,
    on_attempt: Claim,
    on_result: Callable[[Result], None],
    stop: asyncio.Event | None = None,
    credentials: tuple[str, str] | None = None,
    credential_words: tuple[str, str] = ("", ""),
    concurrency: int | None = None,
    rate_per_second: float | None = None,
    tls_context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
    policy: RetryPolicy | None = None,
    adaptive: AdaptiveSettings | None = None,
) -> DeliveryStats:
    """Deliver every envelope through ``transport``; see the package docstring for the contract.

    ``credential_words``: the caller's names of the credential variables and what to say when
    the relay wants a login and they are unset (``ConnectSettings``); never their values.
    ``concurrency`` and ``rate_per_second`` override the transport's values (CLI flags).
    ``tls_context`` replaces the system trust store (a private CA, tests). ``policy`` and
    ``adaptive`` tune retry timing and the throttle learner (tests, benchmarks).
    """
    if transport.scheme == "maildir":
        if transport.maildir is None:
            raise DeliveryAborted(Problem("mirage.yaml", None, "the Maildir transport has no path",
                                          "write transport.url as maildir:PATH"))
        return await deliver_maildir(transport.maildir, envelopes, on_attempt=on_attempt,
                                     on_result=on_result, stop=stop)
    if transport.scheme not in ("smtp", "smtps"):
        raise DeliveryAborted(Problem("mirage.yaml", None,
                                      f"unknown transport {transport.url!r}",
                                      "use maildir:PATH, smtp://host:port or smtps://host:port"))
    settings = ConnectSettings(
        host=transport.host,
        port=transport.port,
        implicit_tls=transport.scheme == "smtps",
        starttls=transport.starttls,
        credentials=credentials,
        allow_plaintext_auth=transport.allow_plaintext_auth,
        timeout=transport.timeout,
        tls_context=tls_context or await _tls_context(transport),
        local_hostname=local_hostname or await asyncio.to_thread(socket.getfqdn),
        credential_names=credential_words[0],
        missing_credentials=credential_words[1],
        private_ca=tls_context is None and transport.ca_file is not None,
    )
    if (credentials is not None and transport.scheme == "smtp"
            and transport.starttls == "never" and not transport.allow_plaintext_auth):
        refusal = plaintext_auth_refusal()  # known before any socket is opened
        raise DeliveryAborted(Problem(settings.where, None, refusal.message, refusal.hint))
    loop = asyncio.get_running_loop()
    per_second = rate_per_second if rate_per_second is not None else transport.rate_per_second
    pacer = Pacer(per_second=per_second, per_hour=transport.rate_per_hour, clock=loop.time,
                  settings=adaptive)
    run = SmtpRun(
        settings,
        concurrency=concurrency if concurrency is not None else transport.concurrency,
        max_attempts=transport.max_attempts,
        pacer=pacer,
        policy=policy or RetryPolicy(),
        on_attempt=on_attempt,
        on_result=on_result,
        stop=stop,
    )
    return await run.run(envelopes)


async def _tls_context(transport: TransportSettings) -> ssl.SSLContext | None:
    """The transport's verified context (``delivery.tls``), built once for every connection
    of the run (loading the system's CAs costs ~50 ms: aiosmtplib would do it per
    connection), off the event loop; None when no TLS is spoken. A CA file that went missing
    since the config was checked stops the run before any connection."""
    if transport.scheme == "smtp" and transport.starttls == "never":
        return None
    try:
        return await asyncio.to_thread(client_context, ca_file=transport.ca_file,
                                       insecure=transport.tls_insecure)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryAborted(Problem(
            str(transport.ca_file), None, f"the CA file cannot be loaded ({exc})",
            "check transport.ca_file: a PEM file of the relay's CA")) from None
