"""doctor's DKIM key check and SPF evaluation against a real DNS server on 127.0.0.1: the key
published at ``selector._domainkey`` compared with real private keys, and RFC 7208 results
for a relay's address through a:, mx:, include: and redirect=."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from mirage_mailer.services.doctor_dkim import _published_key, dkim_check, tags
from mirage_mailer.services.doctor_dmarc import aligned, dmarc_checks
from mirage_mailer.services.doctor_dns import (
    Dns,
    DnsUnreachable,
    LookupFailed,
    parse_nameserver,
)
from mirage_mailer.services.doctor_spf import Spf, SpfError, parse
from mirage_mailer.util.errors import InputError
from support.dns_zone import serving_zone

SELECTOR_NAME = "s1._domainkey.example.org"


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def published(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def check(records: list[str], private: bytes | None) -> tuple[str, str]:
    zone: dict[str, dict[str, list[Any]]] = {"example.org": {"A": ["192.0.2.1"]}}
    if records:
        zone[SELECTOR_NAME] = {"TXT": records}
    with serving_zone(zone) as server:
        result = dkim_check(Dns(server.address), "example.org", "s1", private, "DKIM_KEY")
    assert result.topic == f"DKIM {SELECTOR_NAME}"
    return result.status, result.message


def test_matching_rsa_key(key: rsa.RSAPrivateKey) -> None:
    # a 2048-bit key is longer than one TXT string: served split, joined again by doctor
    assert check([published(key)], pem(key)) == (
        "ok", "published and matches the private key (rsa 2048 bits)")


def test_matching_ed25519_key() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    assert check([published(key)], pem(key))[0] == "ok"


def test_no_key_published(key: rsa.RSAPrivateKey) -> None:
    status, message = check([], pem(key))
    assert status == "fail" and message.startswith("no DKIM key published")


def test_key_that_does_not_match(key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    status, message = check([published(other_key)], pem(key))
    assert status == "fail" and "does not match the private key (DKIM_KEY)" in message


@pytest.mark.parametrize(("record", "said"), [
    ("v=DKIM1; k=rsa; p=", "revoked"),
    ("v=DKIM1; k=rsa; p=not*base64", "not valid base64"),
    ("v=DKIM1; k=rsa; p=AAAA", "not an RSA public key"),
    ("v=DKIM1; k=dsa; p=AAAA", "k=dsa"),
])
def test_broken_key_records(record: str, said: str, key: rsa.RSAPrivateKey) -> None:
    status, message = check([record], pem(key))
    assert status == "fail" and said in message


def test_private_key_unavailable_is_a_warning(key: rsa.RSAPrivateKey) -> None:
    status, message = check([published(key)], None)
    assert status == "warn" and "could not be read here" in message


def test_private_key_that_does_not_load(key: rsa.RSAPrivateKey) -> None:
    status, message = check([published(key)], b"-----BEGIN PRIVATE KEY-----\nxx\n")
    assert status == "fail" and "is not a PEM private key" in message


SPF_ZONE: dict[str, dict[str, list[Any]]] = {
    "example.org": {"TXT": ["v=spf1 a mx:mail.example.net/28 include:partner.example.net "
                            "redirect=fallback.example.net"], "A": ["192.0.2.1"]},
    "mail.example.net": {"MX": [(10, "mx1.example.net")]},
    "mx1.example.net": {"A": ["198.51.100.17"]},
    "partner.example.net": {"TXT": ["v=spf1 ip6:2001:db8::/32 -all"]},
    "fallback.example.net": {"TXT": ["v=spf1 ip4:203.0.113.0/24 ~all"]},
    "soft.example.org": {"TXT": ["v=spf1 ip4:192.0.2.1 ?all"]},
    "macro.example.org": {"TXT": ["v=spf1 exists:%{i}.spf.example.org -all"]},
}


@pytest.fixture(scope="module")
def spf() -> Iterator[Spf]:
    with serving_zone(SPF_ZONE) as server:
        yield Spf(Dns(server.address))


@pytest.mark.parametrize(("address", "domain", "result"), [
    ("192.0.2.1", "example.org", "pass"),  # a
    ("198.51.100.30", "example.org", "pass"),  # mx with /28
    ("198.51.100.40", "example.org", "softfail"),  # outside the /28: the redirect's ~all
    ("2001:db8::5", "example.org", "pass"),  # include
    ("192.0.2.9", "soft.example.org", "neutral"),
    ("192.0.2.9", "macro.example.org", "unknown"),  # doctor cannot evaluate macros
    ("192.0.2.9", "nothing.example.org", "none"),
])
def test_check_host(address: str, domain: str, result: str, spf: Spf) -> None:
    assert spf.check_host(ipaddress.ip_address(address), domain) == result


def test_include_that_does_not_match_falls_through_to_redirect(spf: Spf) -> None:
    """partner's -all belongs to partner: an include that does not pass is no match, and
    the redirect decides."""
    assert spf.check_host(ipaddress.ip_address("203.0.113.7"), "example.org") == "pass"
    assert spf.count_lookups("example.org") == 4  # a, mx, include, redirect


@pytest.mark.parametrize(("given", "expected"), [
    ("192.0.2.53", ("192.0.2.53", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("2001:db8::53", ("2001:db8::53", 53)), ("[::1]:5353", ("::1", 5353)),
])
def test_nameserver_forms(given: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(given) == expected


@pytest.mark.parametrize("given", ["", ":53", "[::1]:0", "host:port", "192.0.2.1:70000"])
def test_nameserver_mistakes_are_input_errors(given: str) -> None:
    with pytest.raises(InputError, match="--nameserver"):
        parse_nameserver(given)


def test_dmarc_of_a_subdomain_comes_from_the_organisation_and_its_sp() -> None:
    zone: dict[str, dict[str, list[Any]]] = {"_dmarc.example.co.uk": {"TXT": [
        "v=DMARC1; p=reject; sp=none; rua=mailto:d@example.co.uk; aspf=s"]}}
    with serving_zone(zone) as server:
        checks = dmarc_checks(Dns(server.address), "news.example.co.uk", None,
                              "bounces.example.co.uk")
    assert [(c.status, c.topic) for c in checks] == [
        ("warn", "DMARC _dmarc.example.co.uk"),
        ("fail", "DMARC alignment for news.example.co.uk")]
    assert checks[0].message.startswith("sp=none")
    assert "does not align (strict)" in checks[1].message  # aspf=s: exact domains only


@pytest.mark.parametrize(("domain", "other", "aligned_relaxed"), [
    ("news.example.co.uk", "bounces.example.co.uk", True),
    ("example.co.uk", "other.co.uk", False),  # neighbours under a public suffix
    ("example.org", "mail.example.org", True),
])
def test_relaxed_alignment_follows_the_public_suffix_list(domain: str, other: str,
                                                          aligned_relaxed: bool) -> None:
    assert aligned(domain, other, "r") is aligned_relaxed
    assert aligned(domain, other, "s") is (domain == other)


def test_a_long_record_arrives_whole_over_tcp() -> None:
    """A 4096-bit DKIM key or a long SPF record does not fit a classic UDP answer."""
    long_spf = "v=spf1 " + " ".join(f"ip4:198.51.100.{n}" for n in range(100)) + " -all"
    with serving_zone({"example.org": {"TXT": [long_spf]}}) as server:
        assert Dns(server.address).txt("example.org") == [long_spf]
        assert server.resolver.over_tcp == 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("v=spf1 +-~?:/.%{}aipx46mlcnudesr0123456789")),
               max_size=80))
def test_any_spf_text_parses_or_is_a_permerror(text: str) -> None:
    """A record is outside input: whatever it says, doctor gets terms or an SpfError."""
    try:
        record = parse("v=spf1 " + text)
    except SpfError:
        return
    assert all(term.name in ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
               for term in record.terms)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_any_key_record_gives_one_line(text: str) -> None:
    values = tags(text)
    assert all(isinstance(v, str) for v in values.values())
    key, problem = _published_key({**values, "p": values.get("p", "") or "AA=="})
    assert (key is None) == bool(problem)


def test_alignment_compares_internationalised_domains_as_a_labels() -> None:
    assert aligned("xn--bcher-kva.de", "bücher.de", "s")
    assert aligned("mail.xn--bcher-kva.de", "Bücher.de.", "r")
    assert not aligned("mail.xn--bcher-kva.de", "bücher.de", "s")


def test_a_timeout_after_answers_fails_that_name_only() -> None:
    """A resolver that has answered is alive: a name that then times out is that name's
    failure, asked once; a resolver whose first answer times out is unreachable (exit 3)."""
    zone: dict[str, Any] = {"example.org": {"TXT": ["v=spf1 -all"]},
                            "slow.example.org": {"TXT": "TIMEOUT"}}
    with serving_zone(zone) as server:
        dns = Dns(server.address, timeout=0.4)
        assert dns.txt("example.org") == ["v=spf1 -all"]
        with pytest.raises(LookupFailed, match=r"^DNS timed out for slow.example.org TXT via "):
            dns.txt("slow.example.org")
        with pytest.raises(LookupFailed):
            dns.txt("slow.example.org")  # remembered: not another wait
        assert server.queries.count(("slow.example.org", "TXT")) <= 2  # UDP retries only
        assert dns.nothing_answered() is None
        fresh = Dns(server.address, timeout=0.4)
        with pytest.raises(DnsUnreachable, match="DNS did not answer any look-up"):
            fresh.txt("slow.example.org")
