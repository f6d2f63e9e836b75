"""SPF as a receiving provider reads it (RFC 7208): one record, a sane ``all``, at most ten
DNS-querying terms, and whether the relay's addresses pass.

Hand-written on dnspython rather than taken from an SPF library: doctor needs the reasons
(which term, how many look-ups, which include) and a resolver that may be a chosen server on
a chosen port, which the SPF and DMARC packages on PyPI do not offer together. Everything in
a record is outside input: look-ups are bounded by the RFC's limits (10 querying terms, 2 void
look-ups, 10 MX hosts), and loops end at the limit.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from mirage_mailer.services.doctor_dns import Check, Dns, IPAddress, is_internal

LOOKUP_LIMIT = 10  # RFC 7208 4.6.4
VOID_LIMIT = 2
MX_LIMIT = 10
_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_QUERYING = frozenset({"include", "a", "mx", "ptr", "exists"})
_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)=(.*)$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*")
_RESULT_OF = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


class SpfError(Exception):
    """The record does not parse or breaks a limit: receivers treat it as permerror."""


@dataclass(frozen=True)
class Term:
    qualifier: str  # + - ~ ?
    name: str  # all include a mx ptr ip4 ip6 exists
    value: str  # domain-spec or address ("" when absent)
    cidr4: int | None = None
    cidr6: int | None = None


@dataclass(frozen=True)
class SpfRecord:
    text: str
    terms: tuple[Term, ...]
    redirect: str | None

    @property
    def all_term(self) -> Term | None:
        return next((t for t in self.terms if t.name == "all"), None)


def spf_texts(txts: list[str]) -> list[str]:
    """The TXT records that are SPF records (``v=spf1`` alone or followed by a space)."""
    return [t for t in txts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]


def parse(text: str) -> SpfRecord:
    """One SPF record's terms; raises ``SpfError`` with the offending term."""
    terms: list[Term] = []
    redirect = None
    for word in text.split()[1:]:
        modifier = _MODIFIER.match(word)
        if modifier and modifier.group(1).lower() not in _MECHANISMS:
            if modifier.group(1).lower() == "redirect":
                redirect = modifier.group(2)
            continue  # exp= and unknown modifiers are allowed and ignored
        term = _term(word)
        terms.append(term)
    return SpfRecord(text, tuple(terms), redirect)


def _term(word: str) -> Term:
    qualifier = word[0] if word[:1] in ("+", "-", "~", "?") else "+"
    body = word[1:] if word[:1] in ("+", "-", "~", "?") else word
    head = _NAME.match(body)
    name, rest = (head.group(0).lower(), body[head.end():]) if head else ("", body)
    if name not in _MECHANISMS or (rest and rest[0] not in ":/"):
        raise SpfError(f"unknown term {word!r}")
    if name == "all":
        if rest:
            raise SpfError(f"{word!r}: 'all' takes no value")
        return Term(qualifier, name, "")
    if name in ("ip4", "ip6"):
        try:
            network = ipaddress.ip_network(rest[1:], strict=False)
        except ValueError:
            raise SpfError(f"{word!r} is not an address or network") from None
        if network.version != (4 if name == "ip4" else 6):
            raise SpfError(f"{word!r} holds the wrong kind of address")
        return Term(qualifier, name, str(network))
    spec = rest[1:] if rest.startswith(":") else rest
    value, slash, cidrs = spec.partition("/")
    if name in ("include", "exists", "ptr"):
        if slash or (name != "ptr" and not value):
            raise SpfError(f"{word!r} needs a domain and no prefix length")
        return Term(qualifier, name, value)
    four, _, six = cidrs.partition("//") if not cidrs.startswith("/") else ("", "", cidrs[1:])
    if (slash and not (four.isdigit() or six.isdigit())) or any(
            part and not part.isdigit() for part in (four, six)):
        raise SpfError(f"{word!r} has a bad prefix length")
    cidr4, cidr6 = (int(four) if four else None), (int(six) if six else None)
    if (cidr4 or 0) > 32 or (cidr6 or 0) > 128:
        raise SpfError(f"{word!r} has a bad prefix length")
    return Term(qualifier, name, value, cidr4, cidr6)


def has_macros(value: str) -> bool:
    return "%" in value


@dataclass
class _Budget:
    """Look-ups spent by one evaluation, across includes (RFC 7208 4.6.4)."""

    lookups: int = 0
    voids: int = 0
    seen: set[str] = field(default_factory=set)

    def spend(self, what: str) -> None:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise SpfError(f"more than {LOOKUP_LIMIT} DNS look-ups (at {what})")

    def void(self, found: bool, what: str) -> None:
        if not found:
            self.voids += 1
            if self.voids > VOID_LIMIT:
                raise SpfError(f"more than {VOID_LIMIT} look-ups found nothing (at {what})")


class Spf:
    """SPF records of one resolver, parsed once each."""

    def __init__(self, dns: Dns) -> None:
        self.dns = dns
        self._records: dict[str, SpfRecord | None] = {}

    def record(self, domain: str) -> SpfRecord | None:
        """The one SPF record of ``domain``, None when there is none; ``SpfError`` for two
        or more, or one that does not parse."""
        key = domain.lower().rstrip(".")
        if key not in self._records:
            found = spf_texts(self.dns.txt(key))
            if len(found) > 1:
                raise SpfError(f"{key} publishes {len(found)} SPF records")
            self._records[key] = parse(found[0]) if found else None
        return self._records[key]

    def count_lookups(self, domain: str) -> int:
        """DNS-querying terms of the record tree, as a receiver counts them (worst case:
        every term evaluated); ``SpfError`` past the limit, in a loop, or a broken include."""
        budget = _Budget()
        self._count(domain, budget)
        return budget.lookups

    def _count(self, domain: str, budget: _Budget) -> None:
        key = domain.lower().rstrip(".")
        if key in budget.seen:
            raise SpfError(f"{key} includes itself (a loop)")
        budget.seen.add(key)
        record = self.record(key)
        if record is None:
            raise SpfError(f"{key} has no SPF record, but another record includes it")
        for term in record.terms:
            if term.name in _QUERYING:
                budget.spend(f"{term.name}:{term.value or key}")
                if term.name == "include" and not has_macros(term.value):
                    self._count(term.value, budget)
        if record.redirect and record.all_term is None:
            budget.spend(f"redirect={record.redirect}")
            if not has_macros(record.redirect):
                self._count(record.redirect, budget)
        budget.seen.discard(key)

    def check_host(self, address: IPAddress, domain: str) -> str:
        """RFC 7208's result for mail from ``address``: pass, fail, softfail, neutral, none,
        permerror, or "unknown" where doctor cannot tell (macros, exists, ptr)."""
        try:
            return self._check(address, domain, _Budget(), depth=0)
        except SpfError:
            return "permerror"

    def _check(self, address: IPAddress, domain: str, budget: _Budget, depth: int) -> str:
        record = self.record(domain)
        if record is None:
            return "none"
        if depth > LOOKUP_LIMIT:
            raise SpfError("includes nest too deep")
        for term in record.terms:
            if term.name in _QUERYING:
                budget.spend(term.name)
            matched = self._matches(term, address, domain, budget, depth)
            if matched is None:
                return "unknown"
            if matched:
                return _RESULT_OF[term.qualifier]
        if record.redirect:
            budget.spend("redirect")
            if has_macros(record.redirect):
                return "unknown"
            result = self._check(address, record.redirect, budget, depth + 1)
            return "permerror" if result == "none" else result
        return "neutral"

    def _matches(self, term: Term, address: IPAddress, domain: str, budget: _Budget,
                 depth: int) -> bool | None:
        if term.name == "all":
            return True
        if term.name in ("ip4", "ip6"):
            network = ipaddress.ip_network(term.value)
            return network.version == address.version and address in network
        if term.name in ("ptr", "exists") or has_macros(term.value):
            return None
        target = term.value or domain
        if term.name == "include":
            result = self._check(address, target, budget, depth + 1)
            if result in ("none", "permerror"):
                raise SpfError(f"include:{target} has no usable SPF record")
            return None if result == "unknown" else result == "pass"
        if term.name == "a":
            found = self.dns.addresses(target)
            budget.void(bool(found), f"a:{target}")
            return any(_within(address, ip, term) for ip in found)
        hosts = [host for _, host in self.dns.mx(target) if host][:MX_LIMIT]
        budget.void(bool(hosts), f"mx:{target}")
        return any(_within(address, ip, term) for host in hosts
                   for ip in self.dns.addresses(host))


def _within(address: IPAddress, listed: IPAddress, term: Term) -> bool:
    if address.version != listed.version:
        return False
    prefix = term.cidr4 if address.version == 4 else term.cidr6
    if prefix is None:
        return address == listed
    return address in ipaddress.ip_network(f"{listed}/{prefix}", strict=False)


def spf_checks(spf: Spf, domain: str, role: str) -> tuple[list[Check], bool]:
    """The lines for ``domain``'s record itself; True when it is usable for the relay test."""
    topic = f"SPF {domain} ({role})"
    publish = f"publish one TXT record at {domain}: v=spf1 <your relay's ip4:/include:> -all"
    try:
        record = spf.record(domain)
    except SpfError as exc:
        fix = ("merge them into one TXT record starting v=spf1" if "SPF records" in str(exc)
               else "correct the record (the syntax is in RFC 7208, section 12)")
        return [Check("fail", topic, f"{exc}: receivers treat that as a permanent error",
                      fix)], False
    if record is None:
        return [Check("fail", topic, "no SPF record", publish)], False
    try:
        lookups = spf.count_lookups(domain)
    except SpfError as exc:
        return [Check("fail", topic, f"{record.text!r}: {exc}; receivers treat that as a "
                      "permanent error", "flatten includes into ip4:/ip6: terms, or drop "
                      "senders you no longer use")], False
    lines = []
    final = record.all_term
    said = f"{lookups} of {LOOKUP_LIMIT} DNS look-ups"
    if final is None and record.redirect is None:
        lines.append(Check("warn", topic, f"no 'all' at the end ({said}): mail from anywhere "
                           "else is 'neutral'", "end the record with -all (or ~all)"))
    elif final is not None and final.qualifier == "+":
        lines.append(Check("fail", topic, f"ends in +all ({said}): anyone may send as "
                           f"{domain}", "end it with -all (or ~all while you test)"))
    elif final is not None and final.qualifier == "?":
        lines.append(Check("warn", topic, f"ends in ?all ({said}): other senders are "
                           "'neutral', not refused", "end it with -all (or ~all)"))
    else:
        ending = f"ends in {final.qualifier if final.qualifier != '+' else ''}all" \
            if final is not None else f"redirect={record.redirect}"
        lines.append(Check("ok", topic, f"one record, {ending}, {said}"))
    if any(t.name == "ptr" for t in record.terms):
        lines.append(Check("warn", topic, "uses 'ptr', which RFC 7208 says not to use",
                           "replace it with ip4:/ip6: or a: terms"))
    return lines, True


def relay_check(spf: Spf, domain: str, relay: str, addresses: list[IPAddress]) -> Check:
    """Whether ``domain``'s SPF lets the relay's public addresses send."""
    topic = f"SPF {domain} and the relay {relay}"
    public = [a for a in addresses if not is_internal(a)]
    if not addresses:
        return Check("warn", topic, f"{relay} has no address in DNS: cannot tell",
                     "check the host name in transport.url or transport.relays")
    if not public:
        shown = ", ".join(map(str, addresses))
        return Check("warn", topic, f"{relay} is an internal address ({shown}): receivers see "
                     "the address it relays from, which doctor cannot see",
                     "make sure that address is in the SPF record")
    results = {str(a): spf.check_host(a, domain) for a in public}
    bad = {a: r for a, r in results.items() if r in ("fail", "softfail", "permerror")}
    if bad:
        shown = ", ".join(f"{a} ({r})" for a, r in bad.items())
        return Check("fail", topic, f"not covered: {shown}",
                     f"add the addresses your relay delivers from (ip4:/ip6:, or its "
                     f"provider's include:) to the SPF record of {domain}")
    unsure = {a: r for a, r in results.items() if r != "pass"}
    if unsure:
        shown = ", ".join(f"{a} ({r})" for a, r in unsure.items())
        return Check("warn", topic, f"cannot confirm {shown}",
                     "list the relay's addresses explicitly with ip4:/ip6:")
    return Check("ok", topic, f"covers {', '.join(results)}")
