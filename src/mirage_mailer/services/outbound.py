"""The one outbound path: every mail the product sends (newsletters, ``send --to`` test copies,
the web's confirmation mails) leaves through ``deliver`` here.

This module alone reads the SMTP credentials from the environment variables the config names,
applies the rule for half-set ones (refused, exit 2, before anything is opened), turns the
config's transport into delivery's own settings, and puts an aborted run in the officer's
words. Delivery knows bytes, not config: it gets the variables' names as plain words, never
their values.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from mirage_mailer.delivery import (
    Claim,
    DeliveryAborted,
    DeliveryStats,
    Envelope,
    Outcome,
    RelayTarget,
    Result,
    SharedState,
    TransportSettings,
    deliver_all,
    unclaimed,
)
from mirage_mailer.project.config import Settings, Transport
from mirage_mailer.util.errors import InputError, Problem, display_path

PACE_FILE = "pace.bin"  # under .mirage/: what the relays were sent lately (pace_ledger)


def credentials(settings: Settings) -> tuple[str, str] | None:
    """The SMTP login from the variables the config names; half of one is a mistake (exit 2,
    before the store is touched or a socket opened), none at all is an anonymous relay.
    With ``transport.relays`` every relay's login is checked the same way."""
    transport = settings.transport
    for relay in transport.relays:
        _login(settings, relay.username_env, relay.password_env, relay.where)
    return _login(settings, transport.username_env, transport.password_env, "transport")


def _login(settings: Settings, username_env: str | None, password_env: str | None,
           where: str) -> tuple[str, str] | None:
    user = os.environ.get(username_env) if username_env else None
    password = os.environ.get(password_env) if password_env else None
    if user and password:
        return user, password
    names = {"username_env": username_env, "password_env": password_env}
    for have, lack, value in (("username_env", "password_env", user),
                              ("password_env", "username_env", password)):
        if value and names[lack]:  # half set: the officer meant to log in
            line = settings.line_of.get(f"{where}.{lack}")
            if line is None and where != "transport":
                line = settings.line_of.get(f"transport.{lack}")
            raise InputError(Problem(
                display_path(settings.path), line,
                f"{names[have]} is set but {names[lack]} is not",
                f"export {names[lack]}=... (or unset {names[have]})"))
    return None


def check_signing(settings: Settings) -> None:
    """Mail that ``send_one`` sends is DKIM-signed when ``dkim:`` is configured: a key that
    cannot sign is refused (exit 2) when ``serve`` starts, not logged at every sign-up."""
    if settings.dkim is not None:
        from mirage_mailer.services.dkim_keys import dkim_signer

        dkim_signer(settings)


def credential_words(settings: Settings) -> tuple[str, str]:
    """The credential variables' names, and what to say if a relay wants a login without
    them (the delivery layer has no config): names only, never values."""
    transport = settings.transport
    return _words(transport.username_env, transport.password_env, "transport")


def _words(username_env: str | None, password_env: str | None, where: str) -> tuple[str, str]:
    if not (username_env and password_env):
        return "", (f"{where}.username_env and {where}.password_env are not set: name the "
                    "environment variables that hold the user name and password, and export "
                    "them")
    names = f"{username_env} and {password_env}"
    unset = [n for n in (username_env, password_env) if not os.environ.get(n)]
    said = " and ".join(unset)
    verb = "is" if len(unset) == 1 else "are"
    return names, (f"{said} {verb} not set: export {'it' if len(unset) == 1 else 'them'} "
                   f"(see {where}.username_env/password_env)")


def insecure_tls_warning(settings: Settings) -> Problem | None:
    """The line every sending command prints while ``transport.tls_insecure`` is on: a
    setting meant for a lab must not go quietly into production."""
    transport = settings.transport
    if not transport.tls_insecure or transport.scheme not in ("smtp", "smtps"):
        return None
    return Problem(
        display_path(settings.path), settings.line_of.get("transport.tls_insecure"),
        f"transport.tls_insecure is true: the certificate of {transport.host} is not checked, "
        "so anyone on the network path can pose as the relay and read the SMTP password and "
        "every message", "remove tls_insecure from mirage.yaml; for a relay with a private CA "
        "set transport.ca_file", warning=True)


def transport_settings(transport: Transport) -> TransportSettings:
    """The config's transport without the variable names: what delivery needs to connect."""
    return TransportSettings(
        url=transport.url, scheme=transport.scheme, maildir=transport.maildir,
        host=transport.host, port=transport.port, starttls=transport.starttls,
        concurrency=transport.concurrency, rate_per_second=transport.rate_per_second,
        rate_per_hour=transport.rate_per_hour, timeout=transport.timeout,
        max_attempts=transport.max_attempts,
        allow_plaintext_auth=transport.allow_plaintext_auth,
        ca_file=transport.ca_file, tls_insecure=transport.tls_insecure)


def relay_targets(settings: Settings) -> list[RelayTarget]:
    """``transport.relays`` as delivery takes them (none: the single ``transport.url``).
    Only these are named, so only a send through several relays records who carried what."""
    base = transport_settings(settings.transport)
    return [RelayTarget(
        transport=replace(base, url=relay.url, scheme=relay.scheme, host=relay.host,
                          port=relay.port, starttls=relay.starttls,
                          concurrency=relay.concurrency, rate_per_second=relay.rate_per_second,
                          rate_per_hour=relay.rate_per_hour, name=relay.name),
        credentials=_login(settings, relay.username_env, relay.password_env, relay.where),
        credential_words=_words(relay.username_env, relay.password_env, relay.where),
        weight=relay.weight) for relay in settings.transport.relays]


async def deliver(settings: Settings, envelopes: Iterator[Envelope], *, on_attempt: Claim,
                  on_result: Callable[[Result], None], stop: asyncio.Event | None = None,
                  concurrency: int | None = None, rate: float | None = None,
                  on_relay_out: Callable[[str], None] | None = None,
                  shared_pace: SharedState | None = None,
                  on_notice: Callable[[str], None] | None = None) -> DeliveryStats:
    """Every envelope through the configured transport, logged in as ``credentials`` says;
    ``shared_pace``: one pace for the sending processes of a send, ``on_notice``: a warning
    line before sending (``deliver_all``).

    Raises ``InputError`` (exit 2) for half-set credentials before anything is opened, and
    ``DeliveryAborted`` (exit 3) when the run cannot go on.
    """
    login = credentials(settings)
    return await deliver_all(transport_settings(settings.transport), envelopes,
                             on_attempt=on_attempt, on_result=on_result, stop=stop,
                             credentials=login, credential_words=credential_words(settings),
                             concurrency=concurrency, rate_per_second=rate,
                             relays=relay_targets(settings), on_relay_out=on_relay_out,
                             shared_pace=shared_pace, on_notice=on_notice,
                             pace_file=settings.state_dir / PACE_FILE)


@dataclass(frozen=True)
class Single:
    """What became of one message sent on its own (a confirmation mail)."""

    accepted: bool
    outcome: str  # sent | failed | deferred | unknown
    detail: str  # the relay's last word, "<code> <response>", or "no answer"


async def send_one(settings: Settings, recipient: str, data: bytes) -> Single:
    """One message, not recorded in the tracking store, through the same path as a send.

    Raises ``InputError`` for half-set credentials or a DKIM key that cannot sign, and
    ``DeliveryAborted`` when the relay cannot be used, exactly as ``send`` would.
    """
    if settings.dkim is not None:  # signed like every newsletter (docs/guide/deliverability.md)
        from mirage_mailer.services.dkim_keys import dkim_signer

        signer = dkim_signer(settings)
        data = signer.sign(data) if signer is not None else data
    envelope = Envelope(0, settings.sender.return_path, recipient, data)
    results: list[Result] = []
    stats = await deliver(settings, iter([envelope]), on_attempt=unclaimed,
                          on_result=results.append)
    final = [r for r in results if r.final]
    detail = f"{final[-1].code} {final[-1].response}" if final else "no answer"
    outcome = final[-1].outcome if final else Outcome.DEFERRED
    return Single(stats.sent == 1, outcome.value, detail)


def resumable(settings: Settings, aborted: DeliveryAborted,
              counts: dict[str, int] | None = None) -> DeliveryAborted:
    """An aborted run in the officer's words: at the config line of the relay, and (for a
    recorded send) that nothing was lost and how many a rerun picks up."""
    problem = aborted.problems[0]
    text = problem.message + (f": {problem.hint}" if problem.hint else "")
    if problem.path not in text and problem.path not in ("mirage.yaml",
                                                         display_path(settings.path)):
        text = f"{problem.path}: {text}"  # which relay (host:port) or file: several may be set
    if counts is not None:
        pending, unknown = counts.get("pending", 0), counts.get("unknown", 0)
        text += (f"; nothing was lost: {pending} recipient{'s' if pending != 1 else ''} "
                 "stay pending, run the same command again to resume")
        if unknown:
            text += f" ({unknown} unknown: check them, then add --resend-unknown)"
    key = "transport.relays" if settings.transport.relays else "transport.url"
    where = Problem(display_path(settings.path), settings.line_of.get(key), text)
    return DeliveryAborted(where, aborted.stats)
