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
from dataclasses import dataclass

from mirage_mailer.delivery import (
    Claim,
    DeliveryAborted,
    DeliveryStats,
    Envelope,
    Outcome,
    Result,
    TransportSettings,
    deliver_all,
    unclaimed,
)
from mirage_mailer.project.config import Settings, Transport
from mirage_mailer.util.errors import InputError, Problem, display_path


def credentials(settings: Settings) -> tuple[str, str] | None:
    """The SMTP login from the variables the config names; half of one is a mistake (exit 2,
    before the store is touched or a socket opened), none at all is an anonymous relay."""
    transport = settings.transport
    user = os.environ.get(transport.username_env or "") if transport.username_env else None
    password = os.environ.get(transport.password_env or "") if transport.password_env else None
    if user and password:
        return user, password
    names = {"username_env": transport.username_env, "password_env": transport.password_env}
    for have, lack, value in (("username_env", "password_env", user),
                              ("password_env", "username_env", password)):
        if value and names[lack]:  # half set: the officer meant to log in
            raise InputError(Problem(
                display_path(settings.path),
                settings.line_of.get(f"transport.{lack}"),
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
    if not (transport.username_env and transport.password_env):
        return "", ("transport.username_env and transport.password_env are not set: name the "
                    "environment variables that hold the user name and password, and export "
                    "them")
    names = f"{transport.username_env} and {transport.password_env}"
    unset = [n for n in (transport.username_env, transport.password_env)
             if not os.environ.get(n)]
    said = " and ".join(unset)
    verb = "is" if len(unset) == 1 else "are"
    return names, (f"{said} {verb} not set: export {'it' if len(unset) == 1 else 'them'} "
                   "(see transport.username_env/password_env)")


def transport_settings(transport: Transport) -> TransportSettings:
    """The config's transport without the variable names: what delivery needs to connect."""
    return TransportSettings(
        url=transport.url, scheme=transport.scheme, maildir=transport.maildir,
        host=transport.host, port=transport.port, starttls=transport.starttls,
        concurrency=transport.concurrency, rate_per_second=transport.rate_per_second,
        rate_per_hour=transport.rate_per_hour, timeout=transport.timeout,
        max_attempts=transport.max_attempts,
        allow_plaintext_auth=transport.allow_plaintext_auth)


async def deliver(settings: Settings, envelopes: Iterator[Envelope], *, on_attempt: Claim,
                  on_result: Callable[[Result], None], stop: asyncio.Event | None = None,
                  concurrency: int | None = None, rate: float | None = None) -> DeliveryStats:
    """Every envelope through the configured transport, logged in as ``credentials`` says.

    Raises ``InputError`` (exit 2) for half-set credentials before anything is opened, and
    ``DeliveryAborted`` (exit 3) when the run cannot go on.
    """
    login = credentials(settings)
    return await deliver_all(transport_settings(settings.transport), envelopes,
                             on_attempt=on_attempt, on_result=on_result, stop=stop,
                             credentials=login, credential_words=credential_words(settings),
                             concurrency=concurrency, rate_per_second=rate)


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
    if counts is not None:
        pending, unknown = counts.get("pending", 0), counts.get("unknown", 0)
        text += (f"; nothing was lost: {pending} recipient{'s' if pending != 1 else ''} "
                 "stay pending, run the same command again to resume")
        if unknown:
            text += f" ({unknown} unknown: check them, then add --resend-unknown)"
    where = Problem(display_path(settings.path), settings.line_of.get("transport.url"), text)
    return DeliveryAborted(where, aborted.stats)
