"""``doctor``: the sending domain checked as a receiving provider checks it, one line per check.

SPF of the return-path (envelope) domain and of the From domain, and whether it lets the
relay's addresses send (each relay's, with ``transport.relays``); the DKIM key in DNS
against the project's private key; DMARC and its alignment; MX for the bounce domain; and
the one-click unsubscribe set-up (RFC 8058).
Every answer is looked up live, through ``--nameserver`` when one is given. Nothing is sent.
A look-up that fails (SERVFAIL, REFUSED, a timeout) fails the check that needed it; the
others still run, and exit 3 is kept for a resolver that answered nothing at all.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mirage_mailer.project.config import DkimConfig, Settings, find_config, load_settings
from mirage_mailer.project.config_checks import redact
from mirage_mailer.services.dkim_keys import MAX_KEY_BYTES
from mirage_mailer.services.doctor_dkim import dkim_check
from mirage_mailer.services.doctor_dmarc import dmarc_checks, mx_check
from mirage_mailer.services.doctor_dns import Check, Dns, IPAddress, LookupFailed, is_internal
from mirage_mailer.services.doctor_spf import Spf, relay_check, spf_checks
from mirage_mailer.services.signing import check_signing_secret
from mirage_mailer.util.addresses import ascii_domain
from mirage_mailer.util.errors import ExitCode, InputError, display_path


@dataclass(frozen=True)
class Diagnosis:
    checks: list[Check]
    queries: int  # DNS look-ups made

    def count(self, status: str) -> int:
        return sum(1 for check in self.checks if check.status == status)

    @property
    def exit_code(self) -> ExitCode:
        failed = self.count("fail")
        return ExitCode.PERMANENT_FAILURES if failed else ExitCode.OK


def diagnose(config: Path | None, nameserver: str | None) -> Diagnosis:
    """Load the project's config (exit 2 when it is bad), then check its domains in DNS;
    ``DnsUnreachable`` (exit 3) when no look-up was answered."""
    settings = load_settings(find_config(config))
    dns = Dns(nameserver)
    checks = domain_checks(settings, dns)
    gone = dns.nothing_answered()
    if gone is not None:
        raise gone
    return Diagnosis(checks, dns.queries)


def _or_failed(topic: str, run: Callable[[], list[Check]]) -> list[Check]:
    """``run``'s lines, or one ``fail`` line for ``topic`` when a look-up it needed failed:
    one broken name must not hide what every other check found."""
    try:
        return run()
    except LookupFailed as exc:
        return [exc.check(topic)]


def domain_checks(settings: Settings, dns: Dns) -> list[Check]:
    sender = settings.sender
    from_domain = ascii_domain(sender.domain)  # DNS names, and compared: A-labels
    bounces = settings.bounces  # with VERP, MAIL FROM is the bounce address, per recipient
    envelope = bounces.address if bounces is not None and bounces.verp else sender.return_path
    bounce_domain = ascii_domain(envelope.rpartition("@")[2])
    spf = Spf(dns)
    checks: list[Check] = []
    same = from_domain == bounce_domain
    role = "return path and From" if same else "return path"
    try:
        lines, usable = spf_checks(spf, bounce_domain, role)
    except LookupFailed as exc:
        lines, usable = [exc.check(f"SPF {bounce_domain} ({role})")], False
    checks += lines
    if usable:
        checks += _relays(settings, spf, dns, bounce_domain)
    if not same:
        checks += _or_failed(f"SPF {from_domain} (From)",
                             lambda: spf_checks(spf, from_domain, "From")[0])
    dkim = settings.dkim
    if dkim is None:
        checks.append(Check("warn", "DKIM", "no DKIM signing configured: Gmail and Yahoo "
                            "expect bulk mail to be signed for the From domain",
                            "add a dkim: section with domain, selector and key_env or key_file"))
    else:
        pem, source = private_key(settings, dkim)
        checks += _or_failed(f"DKIM {dkim.selector}._domainkey.{dkim.domain}",
                             lambda: [dkim_check(dns, dkim.domain, dkim.selector, pem,
                                                 source)])
    checks += _or_failed(f"DMARC {from_domain}", lambda: dmarc_checks(
        dns, from_domain, dkim.domain if dkim is not None else None, bounce_domain))
    checks += _or_failed(f"MX {bounce_domain} (bounces)",
                         lambda: [mx_check(dns, bounce_domain)])
    checks += unsubscribe_checks(settings, dns)
    return checks


def _relays(settings: Settings, spf: Spf, dns: Dns, domain: str) -> list[Check]:
    """One line per relay host: ``transport.url``'s, or each of ``transport.relays`` (a
    send spreads its mail over all of them, so each one's addresses must be covered)."""
    transport = settings.transport
    if transport.relays:
        hosts = list(dict.fromkeys(relay.host.lower() for relay in transport.relays))
    elif transport.scheme in ("smtp", "smtps"):
        hosts = [transport.host]
    else:
        return [Check("warn", f"SPF {domain} and the relay", f"transport.url is "
                      f"{redact(transport.url)}: no relay to check", "run doctor again once "
                      "transport.url names your SMTP relay")]
    lines: list[Check] = []
    for host in hosts:
        try:
            lines.append(relay_check(spf, domain, host, _addresses(dns, host)))
        except LookupFailed as exc:
            lines.append(exc.check(f"SPF {domain} and the relay {host}"))
    return lines


def _addresses(dns: Dns, host: str) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        return dns.addresses(host)


def private_key(settings: Settings, dkim: DkimConfig) -> tuple[bytes | None, str]:
    """The PEM private key the dkim: section names (None where it cannot be read here), and
    words for where it is; never the key itself."""
    if dkim.key_env:
        value = os.environ.get(dkim.key_env)
        source = f"the variable {dkim.key_env}"  # a one-line PEM with literal \n, as send reads
        return (value.replace("\\n", "\n").encode("utf-8", "replace") if value else None,
                source)
    if dkim.key_file is None:
        return None, "the dkim: section"
    path = dkim.key_file if dkim.key_file.is_absolute() else settings.root / dkim.key_file
    source = f"the file {display_path(path)}"
    try:
        return path.read_bytes()[:MAX_KEY_BYTES], source
    except OSError:
        return None, source


def unsubscribe_checks(settings: Settings, dns: Dns) -> list[Check]:
    """One-Click unsubscribe (RFC 8058) needs an https link that resolves, and a secret to
    sign it: without them messages carry only the mailto."""
    topic = "List-Unsubscribe"
    base = settings.tracking.base_url
    if not base:
        return [Check("fail", topic, "tracking.base_url is not set: messages offer only a "
                      "mailto unsubscribe, not One-Click, which Gmail and Yahoo require of "
                      "bulk senders", "set tracking.base_url to the public https address of "
                      "'mirage-mailer serve'")]
    parts = urlsplit(base)
    host = parts.hostname or ""
    checks = []
    try:
        check_signing_secret(settings)
    except InputError as exc:
        problem = exc.problems[0]
        checks.append(Check("fail", topic, f"the signing secret: {problem.message}",
                            problem.hint))
    if parts.scheme != "https":
        checks.append(Check("warn", topic, f"{redact(base)} is plain http: for local tests only; "
                            "providers post One-Click only to https",
                            "set tracking.base_url to an https address"))
        return checks
    try:
        addresses = _addresses(dns, host)
    except LookupFailed as exc:
        return [*checks, exc.check(topic)]
    if not addresses:
        checks.append(Check("fail", topic, f"{host} has no address in DNS: the One-Click link "
                            f"in every message leads nowhere", f"publish an A record for "
                            f"{host}, pointing at the server that runs 'mirage-mailer serve'"))
    elif all(is_internal(a) for a in addresses):
        checks.append(Check("warn", topic, f"{host} resolves only to internal addresses: "
                            "readers outside cannot reach the link",
                            "publish the public address of the server"))
    else:
        checks.append(Check("ok", topic, f"One-Click offered: {redact(base)} ({host} resolves)"))
    return checks
