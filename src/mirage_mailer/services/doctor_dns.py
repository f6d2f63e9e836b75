"""DNS for ``doctor``: the few look-ups it makes, through dnspython, and what one check said.

Answers are outside input: a TXT record is decoded leniently and cut to a sane length, a
name that does not parse is "no record", never an exception. One look-up that fails (SERVFAIL,
REFUSED, a timeout once the resolver has answered something) is ``LookupFailed``: the check
that needed it fails with those words, and every other check still runs. A resolver that
answers nothing at all is ``DnsUnreachable`` (exit 3): without DNS no check can say anything
true.
``--nameserver HOST[:PORT]`` replaces the system resolver (split-horizon set-ups, tests).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Literal

import dns.exception
import dns.name
import dns.resolver

from mirage_mailer.util.errors import DeliveryError, InputError, Problem

Status = Literal["ok", "warn", "fail"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_TXT = 4096  # characters kept of one TXT record: a DKIM key of 4096 bits fits
TIMEOUT = 5.0  # seconds for one look-up, retries included


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: what was checked, how it came out, what to do."""

    status: Status
    topic: str  # "SPF example.org", "DKIM sel._domainkey.example.org", ...
    message: str
    fix: str = ""


class DnsUnreachable(DeliveryError):
    """No DNS server answered: exit 3, nothing can be checked."""


class LookupFailed(Exception):
    """One name's look-up got no usable answer; receivers asking the same name likely get
    the same (a temporary error for SPF, DKIM and DMARC), so the check that needed it fails."""

    def __init__(self, name: str, rdtype: str, why: str, where: str) -> None:
        self.name, self.rdtype, self.why, self.where = name, rdtype, why, where
        super().__init__(f"{why} for {name} {rdtype} via {where}")

    def check(self, topic: str) -> Check:
        """The failed line for ``topic``, with what to do about this kind of failure."""
        if "SERVFAIL" in self.why:
            fix = ("receivers get the same failure: check the delegation of that name, "
                   "such as a CNAME to your email service provider, and that its DNS host "
                   "answers; then run doctor again")
        elif "REFUSED" in self.why:
            fix = (f"{self.where} will not answer for {self.name}: ask a resolver that "
                   "does, with --nameserver HOST[:PORT]")
        else:
            fix = (f"run doctor again; if it stays, check the name servers for {self.name} "
                   "or give another resolver with --nameserver HOST[:PORT]")
        return Check("fail", topic, str(self), fix)


def _why(exc: dns.resolver.NoNameservers) -> str:
    """Words for what the servers said: the rcode where one answered (SERVFAIL, REFUSED),
    else the network error."""
    errors = exc.kwargs.get("errors") or []
    said = [error[3] for error in errors if len(error) > 3]
    codes = [s for s in said if isinstance(s, str)]
    if "SERVFAIL" in codes:
        return "DNS server failure (SERVFAIL)"
    if "REFUSED" in codes:
        return "the DNS server refused to answer (REFUSED)"
    if codes:
        return f"the DNS server answered {codes[0]}"
    if any(isinstance(s, dns.exception.Timeout) for s in said):
        return "DNS timed out"
    return "no DNS server could be reached"


def parse_nameserver(value: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for an IPv6 address with a port) -> (IP, port)."""
    host, port_text = value.strip(), ""
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    if not host:
        raise _bad_nameserver(value, "no host")
    port = 53
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise _bad_nameserver(value, "the port must be a number from 1 to 65535")
        port = int(port_text)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        raise _bad_nameserver(value, "no such host") from None
    return str(found[0][4][0]), port


def _bad_nameserver(value: str, why: str) -> InputError:
    return InputError(Problem("--nameserver", None, f"{value!r}: {why}",
                              "give HOST or HOST:PORT, e.g. 192.0.2.53 or 127.0.0.1:5353"))


class Dns:
    """Cached look-ups against the system resolver or one given nameserver."""

    def __init__(self, nameserver: str | None = None, *, timeout: float = TIMEOUT) -> None:
        self.where = nameserver or "the system resolver"
        if nameserver is None:
            try:
                resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise DnsUnreachable(Problem(
                    "doctor", None, "this machine has no DNS resolver configured",
                    "give one with --nameserver HOST[:PORT]")) from None
        else:
            address, port = parse_nameserver(nameserver)
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [address]
            resolver.port = port
        resolver.lifetime = timeout
        resolver.timeout = timeout / 2
        resolver.cache = dns.resolver.Cache()
        self.resolver = resolver
        self.queries = 0
        self.answered = 0  # look-ups the server answered (records, NXDOMAIN or none)
        self.failed: dict[tuple[str, str], LookupFailed] = {}  # asked once, not again

    def _answer(self, name: str, rdtype: str) -> list[object]:
        """The records, [] for none; ``LookupFailed`` when this name got no usable answer;
        ``DnsUnreachable`` when the very first answers time out (a dead resolver: waiting
        ``TIMEOUT`` for each further look-up would tell nothing more)."""
        known = self.failed.get((name, rdtype))
        if known is not None:
            raise known
        self.queries += 1
        try:
            found = list(self.resolver.resolve(name, rdtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN):
            found = []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            why = (_why(exc) if isinstance(exc, dns.resolver.NoNameservers)
                   else "DNS timed out")
            failure = LookupFailed(name, rdtype, why, self.where)
            if why == "DNS timed out" and not self.answered:
                raise self.unreachable(failure) from None
            self.failed[(name, rdtype)] = failure
            raise failure from None
        except (dns.name.NameTooLong, dns.name.EmptyLabel, dns.name.LabelTooLong,
                dns.exception.SyntaxError, UnicodeError, ValueError):
            return []  # a name built from a hostile record: nothing is there
        self.answered += 1
        return found

    def unreachable(self, failure: LookupFailed) -> DnsUnreachable:
        """Exit 3: no look-up was answered, so nothing could be checked."""
        return DnsUnreachable(Problem(
            "doctor", None, f"DNS did not answer any look-up ({failure})",
            "check the network, or give a resolver with --nameserver HOST[:PORT]"))

    def nothing_answered(self) -> DnsUnreachable | None:
        """``DnsUnreachable`` when every look-up made failed, else None."""
        if self.answered or not self.failed:
            return None
        return self.unreachable(next(iter(self.failed.values())))

    def txt(self, name: str) -> list[str]:
        """Every TXT record at ``name``, its strings joined (RFC 7208 3.3)."""
        found = []
        for record in self._answer(name, "TXT"):
            strings = getattr(record, "strings", ())
            text = b"".join(strings).decode("utf-8", "replace")
            found.append(text[:MAX_TXT])
        return found

    def addresses(self, name: str) -> list[IPAddress]:
        """A and AAAA records of ``name``."""
        found: list[IPAddress] = []
        for rdtype in ("A", "AAAA"):
            for record in self._answer(name, rdtype):
                try:
                    found.append(ipaddress.ip_address(getattr(record, "address", "")))
                except ValueError:
                    continue
        return found

    def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, host) of each MX record, best first; host "" is a null MX."""
        found = []
        for record in self._answer(name, "MX"):
            exchange = str(getattr(record, "exchange", "")).rstrip(".").lower()
            found.append((int(getattr(record, "preference", 0)), exchange))
        return sorted(found)


def is_internal(address: IPAddress) -> bool:
    """Loopback, link-local or private-network addresses: the world never sees mail from
    them, so SPF says nothing about them (documentation ranges count as public here)."""
    if address.is_loopback or address.is_link_local:
        return True
    private = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
    return any(address in ipaddress.ip_network(net) for net in private
               if ipaddress.ip_network(net).version == address.version)
