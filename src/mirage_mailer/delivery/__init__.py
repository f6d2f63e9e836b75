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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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
from mirage_mailer.delivery.pace_ledger import PaceLedger
from mirage_mailer.delivery.pace_shared import SharedState
from mirage_mailer.delivery.pacer import AdaptiveSettings, Pacer
from mirage_mailer.delivery.policy import RetryPolicy
from mirage_mailer.delivery.pool import SmtpRun
from mirage_mailer.delivery.relays import Lineup, deliver_relays
from mirage_mailer.delivery.settings import RelayTarget, TransportSettings
from mirage_mailer.delivery.tls import client_context
from mirage_mailer.util.errors import Problem
from mirage_mailer.util.urlsecrets import redact

__all__ = [
    "AdaptiveSettings",
    "Claim",
    "DeliveryAborted",
    "DeliveryStats",
    "Envelope",
    "Outcome",
    "RelayTarget",
    "Result",
    "RetryPolicy",
    "SharedState",
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
    relays: Sequence[RelayTarget] = (),
    on_relay_out: Callable[[str], None] | None = None,
    shared_pace: SharedState | None = None,
    on_notice: Callable[[str], None] | None = None,
    pace_file: Path | None = None,
) -> DeliveryStats:
    """Deliver every envelope through ``transport``; see the package docstring for the contract.

    ``credential_words``: the caller's names of the credential variables and what to say when
    the relay wants a login and they are unset (``ConnectSettings``); never their values.
    ``concurrency`` and ``rate_per_second`` override the transport's values (CLI flags).
    ``tls_context`` replaces the system trust store (a private CA, tests). ``policy`` and
    ``adaptive`` tune retry timing and the throttle learner (tests, benchmarks).

    ``relays`` (``transport.relays``) replaces ``transport``'s own relay and login: a pool
    per relay (``delivery/relays.py``), ``concurrency`` per relay, ``rate_per_second`` the
    total split by weight; ``on_relay_out`` hears one line for each relay taken out of
    rotation while the others carry on.

    ``shared_pace``: the pacer's memory that the sending processes of one send share
    (``delivery/pace_shared.py``), so ``rate_per_second``, the hourly cap and the pace learnt
    from the relay hold for their sum; one relay only.

    ``on_notice`` hears one warning line a relay's pool has for the officer before it sends
    (a relay that offers AUTH to a run without a login), or its pace ledger has (a budget
    spent by earlier runs, an unreadable file).

    ``pace_file``: the project's pace ledger (``delivery/pace_ledger.py``), so that
    ``rate_per_second`` and ``rate_per_hour`` hold per relay across issues, runs and the
    senders started beside each other; None: this run's pace only.
    """
    if transport.scheme == "maildir":
        if transport.maildir is None:
            raise DeliveryAborted(Problem("mirage.yaml", None, "the Maildir transport has no path",
                                          "write transport.url as maildir:PATH"))
        return await deliver_maildir(transport.maildir, envelopes, on_attempt=on_attempt,
                                     on_result=on_result, stop=stop)
    if transport.scheme not in ("smtp", "smtps"):
        raise DeliveryAborted(Problem("mirage.yaml", None,
                                      f"unknown transport {redact(transport.url)!r}",
                                      "use maildir:PATH, smtp://host:port or smtps://host:port"))
    hostname = local_hostname or str(await asyncio.to_thread(socket.getfqdn))
    private_ca = tls_context is None and transport.ca_file is not None
    if tls_context is None:  # the relays share the transport's TLS keys
        plain = transport.scheme == "smtp" and transport.starttls == "never" and not relays
        tls_context = None if plain else await _tls_context(transport)
    tuning = _Tuning(concurrency, rate_per_second, tls_context, hostname,
                     policy or RetryPolicy(), adaptive, on_attempt, on_result, stop,
                     private_ca, shared_pace, on_notice, pace_file)
    if relays:
        if shared_pace is not None:
            raise ValueError("a shared pace is for one relay's sending processes")
        share = sum(relay.weight for relay in relays)
        lineup = [Lineup(_smtp_run(relay.transport, relay.credentials, relay.credential_words,
                                   replace(tuning, rate_per_second=None if rate_per_second is None
                                           else rate_per_second * relay.weight / share),
                                   relay.transport.name),
                         relay.weight, relay.transport.name)
                  for relay in relays]
        return await deliver_relays(lineup, envelopes, on_result=on_result, on_out=on_relay_out)
    run = _smtp_run(transport, credentials, credential_words, tuning, transport.name)
    return await run.run(envelopes)


@dataclass(frozen=True)
class _Tuning:
    """What every relay's pool of one run shares: the CLI's overrides, TLS, callbacks."""

    concurrency: int | None
    rate_per_second: float | None
    tls_context: ssl.SSLContext | None
    local_hostname: str
    policy: RetryPolicy
    adaptive: AdaptiveSettings | None
    on_attempt: Claim
    on_result: Callable[[Result], None]
    stop: asyncio.Event | None
    private_ca: bool = False  # the context trusts transport.ca_file only (for the words)
    shared_pace: SharedState | None = None  # one pace for several sending processes
    on_notice: Callable[[str], None] | None = None  # a warning line, said at once
    pace_file: Path | None = None  # the project's pace ledger (``delivery/pace_ledger.py``)


def _smtp_run(transport: TransportSettings, credentials: tuple[str, str] | None,
              credential_words: tuple[str, str], tuning: _Tuning, name: str) -> SmtpRun:
    """One relay's pool; raises ``DeliveryAborted`` for a login that would go out in clear."""
    settings = ConnectSettings(
        host=transport.host,
        port=transport.port,
        implicit_tls=transport.scheme == "smtps",
        starttls=transport.starttls,
        credentials=credentials,
        allow_plaintext_auth=transport.allow_plaintext_auth,
        timeout=transport.timeout,
        tls_context=tuning.tls_context,
        local_hostname=tuning.local_hostname,
        credential_names=credential_words[0],
        missing_credentials=credential_words[1],
        private_ca=tuning.private_ca,
    )
    if (credentials is not None and transport.scheme == "smtp"
            and transport.starttls == "never" and not transport.allow_plaintext_auth):
        refusal = plaintext_auth_refusal()  # known before any socket is opened
        raise DeliveryAborted(Problem(settings.where, None, refusal.message, refusal.hint))
    per_second = (tuning.rate_per_second if tuning.rate_per_second is not None
                  else transport.rate_per_second)
    shared = tuning.shared_pace
    if shared is not None and shared.per_hour != transport.rate_per_hour:
        raise ValueError("the shared pace was made for another hourly cap")
    # a shared pace needs a clock every process reads alike (uvloop's loop time is cached)
    clock = asyncio.get_running_loop().time if shared is None else time.monotonic
    ledger = None
    if tuning.pace_file is not None and (per_second or transport.rate_per_hour):
        ledger = PaceLedger(tuning.pace_file, name or f"{transport.host}:{transport.port}",
                            per_second=per_second, per_hour=transport.rate_per_hour,
                            on_notice=tuning.on_notice)
    pacer = Pacer(per_second=per_second, per_hour=transport.rate_per_hour, clock=clock,
                  settings=tuning.adaptive, state=shared, ledger=ledger)
    return SmtpRun(
        settings,
        concurrency=tuning.concurrency if tuning.concurrency is not None
        else transport.concurrency,
        max_attempts=transport.max_attempts,
        pacer=pacer,
        policy=tuning.policy,
        on_attempt=tuning.on_attempt,
        on_result=tuning.on_result,
        stop=tuning.stop,
        name=name,
        on_notice=tuning.on_notice,
    )


async def _tls_context(transport: TransportSettings) -> ssl.SSLContext:
    """The transport's verified context (``delivery.tls``), built once for every connection
    of the run, every relay's too (loading the system's CAs costs ~50 ms: aiosmtplib would
    do it per connection), off the event loop. A CA file that went missing since the config
    was checked stops the run before any connection."""
    try:
        return await asyncio.to_thread(client_context, ca_file=transport.ca_file,
                                       insecure=transport.tls_insecure)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryAborted(Problem(
            str(transport.ca_file), None, f"the CA file cannot be loaded ({exc})",
            "check transport.ca_file: a PEM file of the relay's CA")) from None
