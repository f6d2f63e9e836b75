"""DMARC (RFC 7489) for the From domain and MX for the bounce domain, as a provider sees them.

DMARC passes when SPF or DKIM passes for a domain *aligned* with the From domain: the same
domain (strict), or the same organisational domain (relaxed, the default), which the Public
Suffix List decides (``news.example.co.uk`` and ``example.co.uk`` align; two ``co.uk``
neighbours do not). The list ships with the ``publicsuffixlist`` package: no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from publicsuffixlist import PublicSuffixList

from mirage_mailer.services.doctor_dkim import tags
from mirage_mailer.services.doctor_dns import Check, Dns
from mirage_mailer.util.addresses import ascii_domain

POLICIES = ("none", "quarantine", "reject")


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def org_domain(domain: str) -> str:
    """The organisational domain (the registrable one), or the name itself."""
    name = ascii_domain(domain)
    return _psl().privatesuffix(name) or name


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    a, b = ascii_domain(domain), ascii_domain(from_domain)  # bücher.de is xn--bcher-kva.de
    return a == b if mode == "s" else org_domain(a) == org_domain(b)


@dataclass(frozen=True)
class Dmarc:
    where: str  # the name the record was found at
    values: dict[str, str]


def find_dmarc(dns: Dns, from_domain: str) -> tuple[Dmarc | None, Check | None]:
    """The record for ``from_domain`` (its own, else its organisational domain's)."""
    names = [f"_dmarc.{from_domain}"]
    if org_domain(from_domain) != from_domain:
        names.append(f"_dmarc.{org_domain(from_domain)}")
    for name in names:
        found = [t for t in dns.txt(name) if t.replace(" ", "").lower().startswith("v=dmarc1")]
        if len(found) > 1:
            return None, Check("fail", f"DMARC {name}", f"{len(found)} DMARC records: "
                               "receivers ignore them all", "keep exactly one")
        if found:
            return Dmarc(name, tags(found[0])), None
    return None, None


def dmarc_checks(dns: Dns, from_domain: str, dkim_domain: str | None,
                 return_path_domain: str) -> list[Check]:
    """The record's policy and reports, then whether this project's mail can align."""
    record, broken = find_dmarc(dns, from_domain)
    if broken is not None:
        return [broken]
    if record is None:
        return [Check("fail", f"DMARC {from_domain}", "no DMARC record: Gmail and Yahoo "
                      "refuse bulk mail without one",
                      f"publish a TXT record at _dmarc.{from_domain}: v=DMARC1; p=none; "
                      f"rua=mailto:dmarc@{from_domain}, then p=quarantine or p=reject")]
    topic = f"DMARC {record.where}"
    values = record.values
    policy = values.get("p", "").lower()
    if policy not in POLICIES:
        return [Check("fail", topic, f"p={policy or '(missing)'} is not a policy",
                      "write p=none, p=quarantine or p=reject")]
    tag = "p"
    if record.where != f"_dmarc.{from_domain}" and values.get("sp", "").lower() in POLICIES:
        tag, policy = "sp", values["sp"].lower()  # the organisation's rule for subdomains
    lines: list[Check] = []
    if policy == "none":
        lines.append(Check("warn", topic, f"{tag}=none: monitoring only, spoofed mail is "
                           "delivered", f"move to {tag}=quarantine, then {tag}=reject, once "
                           "reports look clean"))
    else:
        lines.append(Check("ok", topic, f"{tag}={policy}"))
    if not values.get("rua"):
        lines.append(Check("warn", topic, "no rua=: you get no aggregate reports",
                           f"add rua=mailto:dmarc@{from_domain}"))
    pct = values.get("pct", "100")
    if pct != "100":
        lines.append(Check("warn", topic, f"pct={pct}: the policy covers only part of the mail",
                           "remove pct (100 is the default)"))
    lines.append(_alignment(values, record.where, from_domain, dkim_domain,
                            return_path_domain))
    return lines


def _alignment(values: dict[str, str], where: str, from_domain: str, dkim_domain: str | None,
               return_path_domain: str) -> Check:
    topic = f"DMARC alignment for {from_domain}"
    adkim = values.get("adkim", "r").lower()
    aspf = values.get("aspf", "r").lower()
    spf_ok = aligned(return_path_domain, from_domain, aspf)
    dkim_ok = dkim_domain is not None and aligned(dkim_domain, from_domain, adkim)
    mode = {"r": "relaxed", "s": "strict"}
    parts = [f"SPF via return path {return_path_domain} "
             f"{'aligns' if spf_ok else 'does not align'} ({mode.get(aspf, aspf)})"]
    if dkim_domain is None:
        parts.append("no DKIM signing configured")
    else:
        parts.append(f"DKIM d={dkim_domain} {'aligns' if dkim_ok else 'does not align'} "
                     f"({mode.get(adkim, adkim)})")
    said = "; ".join(parts)
    if not (spf_ok or dkim_ok):
        return Check("fail", topic, f"{said}: DMARC fails for every message",
                     f"sign with dkim.domain: {from_domain}, or use a return path under "
                     f"{org_domain(from_domain)}")
    if not dkim_ok:
        return Check("warn", topic, f"{said}: forwarded mail loses SPF, and with it DMARC",
                     f"sign with DKIM for {from_domain}: add the dkim: section")
    return Check("ok", topic, said)


def mx_check(dns: Dns, domain: str) -> Check:
    """Bounces go to the return-path domain: it must accept mail."""
    topic = f"MX {domain} (bounces)"
    records = dns.mx(domain)
    if any(host in ("", ".") for _, host in records):
        return Check("fail", topic, "a null MX: the domain refuses all mail, so every bounce "
                     "is lost", "give sender.return_path an address at a domain that "
                     "receives mail")
    if records:
        shown = ", ".join(f"{host} ({pref})" for pref, host in records[:3])
        return Check("ok", topic, f"mail goes to {shown}")
    if dns.addresses(domain):
        return Check("warn", topic, "no MX record, only an address: bounces go to that host",
                     f"publish an MX record for {domain}")
    return Check("fail", topic, "no MX and no address: bounces cannot be delivered, and some "
                 "receivers refuse mail from a domain that cannot receive",
                 f"publish an MX record for {domain}, or change sender.return_path")
