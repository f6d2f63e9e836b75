"""DNS for ``doctor``: the few look-ups it makes, through dnspython, and what one check said.

Answers are outside input: a TXT record is decoded leniently and cut to a sane length, a
name that does not parse is "no record", never an exception. A resolver that does not answer
at all is ``DnsUnreachable`` (exit 3): without DNS no check can say anything true.
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

    def _answer(self, name: str, rdtype: str) -> list[object]:
        self.queries += 1
        try:
            return list(self.resolver.resolve(name, rdtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            why = "timed out" if isinstance(exc, dns.exception.Timeout) else "no answer"
            raise DnsUnreachable(Problem(
                "doctor", None, f"DNS did not answer ({why}) for {name} {rdtype} via "
                f"{self.where}", "check the network, or give a resolver with --nameserver "
                "HOST[:PORT]")) from None
        except (dns.name.NameTooLong, dns.name.EmptyLabel, dns.name.LabelTooLong,
                dns.exception.SyntaxError, UnicodeError, ValueError):
            return []  # a name built from a hostile record: nothing is there

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
