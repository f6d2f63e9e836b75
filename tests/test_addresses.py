"""Address checks: the per-domain short way agrees with email-validator on every address."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email

from mirage_mailer.util import addresses
from mirage_mailer.util.addresses import check_address, check_header_value


def reference(address: str) -> tuple[str, bool]:
    """(normalised, valid) straight from email-validator."""
    try:
        return validate_email(address, check_deliverability=False).normalized, True
    except EmailNotValidError:
        return address, False


TRICKY = [
    "Reader.One@Example.ORG", "two@example.org", "three@EXAMPLE.org", "a..b@example.org",
    ".a@example.org", "a.@example.org", "a@example.org.", "a@-example.org", "a@example-.org",
    "a@example", "a@localhost", "a@a.invalid", "a@x.test", "\"quoted\"@example.org",
    "o'neil+news@example.org", "x" * 64 + "@example.org", "x" * 65 + "@example.org",
    "a@" + "d" * 63 + ".org", "a@" + "d" * 64 + ".org",
    "a@" + ".".join(["b" * 60] * 4) + ".org", "x" * 60 + "@" + ".".join(["b" * 60] * 3) + ".org",
    "renée@example.org", "a@münchen.de", "b@MÜNCHEN.de", "a@xn--mnchen-3ya.de",
    "a b@example.org", "a@exa mple.org", "a@@example.org", "@example.org", "a@",
    "a@1.2.3.4", "a@[1.2.3.4]", "a@example.o", "a@example.123",
    # near the 254-octet limit, which email-validator checks on the address as written, as
    # normalised (an xn-- domain becomes Unicode) and with the IDNA ASCII domain
    "x" * 46 + "@" + ".".join(["b" * 50] * 4) + ".org", "x" * 47 + "@" + ".".join(["b" * 50] * 4)
    + ".org", "l" * 236 + "@xn--mnchen-3ya.de", "l" * 237 + "@xn--mnchen-3ya.de",
    # local parts email-validator lowercases (RFC 2142 role names), in any case
    "PostMaster@example.org", "Info@Example.ORG", "INFO@münchen.de", "support@xn--mnchen-3ya.de",
    "Infos@example.org", "in.fo@example.org",
    # international domains, written in Unicode, in capitals, as IDNA, or not valid at all
    "a@MÜNCHEN.DE", "a@αλληλεγγύη.gr", "a@例え.jp", "a@x\u0301.org", "a@\u0301x.org",
    "a@\uff45xample.org", "a@exa\u00admple.org", "a@ex\u200bample.org", "a@\ud800x.org",
    "a@münchen.de.", "a@-münchen.de", "a@ab--münchen.de", "a@münchen..de", "a@münchen",
    "l" * 236 + "@münchen.de", "l" * 237 + "@münchen.de", "l" * 242 + "@münchen.de",
    "l" * 243 + "@münchen.de", "l" * 238 + "@\uff45\uff58ample.org",
    "l" * 239 + "@\uff45\uff58ample.org",  # too long as written only (fullwidth: 3 octets)
]


@pytest.mark.parametrize("warm", [False, True])
def test_agrees_with_email_validator_on_tricky_addresses(warm: bool) -> None:
    addresses._domains.clear()
    if warm:  # every domain already seen once, through a valid address
        for address in TRICKY:
            check_address("warm@" + address.rpartition("@")[2])
    for address in TRICKY:
        normalised, error = check_address(address)
        assert (normalised, error is None) == reference(address), address


def test_agrees_with_email_validator_on_random_addresses() -> None:
    rng = random.Random(20261128)
    locals_ = "abcXYZ09.+-_'!#~\"é "
    domains = ["example.org", "Example.ORG", "ex-ample.co.uk", "example", "a.invalid",
               "exa_mple.org", "münchen.de", "example.org.", "-bad.org", "x.y"]
    addresses._domains.clear()
    for _ in range(3000):
        local = "".join(rng.choice(locals_) for _ in range(rng.randrange(0, 12)))
        address = f"{local}@{rng.choice(domains)}"
        normalised, error = check_address(address)
        assert (normalised, error is None) == reference(address), address
    assert addresses._domains  # the short way was taken


def test_agrees_with_email_validator_on_random_international_domains() -> None:
    """Domains built from ASCII, accented, Greek, fullwidth, combining and invisible
    characters, with role-name local parts (lowercased) and lengths around 254 octets."""
    rng = random.Random(20261130)
    pieces = ["a", "B", "0", "-", ".", "ü", "Ü", "α", "Ω", "例", "\uff45", "\u0301", "\u00ad",
              "\u200b", "xn--", "_", "ß", "ﬁ"]
    tlds = [".de", ".gr", ".org", ".DE", "", ".", ".c0m", ".xn--p1ai"]
    locals_ = ["a", "Info", "POSTMASTER", "abuse", "news.letter", "x" * 70, "o'neil", "a+b"]
    seen: list[str] = []
    addresses._domains.clear()
    for _ in range(4000):
        if seen and rng.random() < 0.6:  # mostly domains met before: the short way
            domain = rng.choice(seen)
        else:
            label = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 8)))
            domain = label + rng.choice(tlds)
            seen.append(domain)
        local = rng.choice(locals_)
        if rng.random() < 0.1:  # close to the 254-octet limit
            local = "l" * (254 - len(domain.encode("utf-8")) - rng.randrange(-8, 8))
        address = f"{local}@{domain}"
        normalised, error = check_address(address)
        assert (normalised, error is None) == reference(address), address
    assert any(not d.isascii() for d in addresses._domains)  # the short way was taken


def test_a_plain_domain_met_first_agrees_with_email_validator() -> None:
    """Domains settled at first sight without email-validator (plain ASCII host names):
    labels and names around the length limits, hyphens, digits, capitals, special-use
    names; each checked cold, so the first sight decides, and both must agree."""
    rng = random.Random(20261130)
    labels = ["a", "Z", "0", "9", "-", "ab", "x-y", "news", "mail", "--", "xn--", "1",
              "q" * 61, "w" * 62]
    plain = ["a", "Z", "0", "9", "ab", "x-y", "news", "mail", "q" * 61]
    tlds = ["org", "de", "ORG", "eu", "c0m", "c0", "0", "123", "a-b", "b-", "-b", "invalid",
            "test", "local", "localhost", "arpa", "onion", "x", "d" * 63, "d" * 64, ""]
    fast = 0
    for n in range(2500):
        pool = labels if n % 2 else plain  # every other one from plain pieces
        parts = ["".join(rng.choice(pool) for _ in range(rng.randrange(1, 4)))
                 for _ in range(rng.randrange(0, 5))]
        if n % 7 == 0:  # near the 253-octet name and 254-octet address limits
            parts = ["b" * 60] * 4 + [rng.choice(["a", "ab", "abc", "mail"])]
        domain = ".".join([*parts, rng.choice(tlds)])
        if rng.random() < 0.05:
            domain = domain.replace(".", "..", 1) if rng.random() < 0.5 else domain + "."
        addresses._domains.clear()
        fast += addresses._plain_domain(domain) is not None
        addresses._domains.clear()
        for local in ("a", "Info", "x" * (254 - len(domain) - 1), "x" * (254 - len(domain))):
            address = f"{local}@{domain}"
            normalised, error = check_address(address)
            assert (normalised, error is None) == reference(address), address
            addresses._domains.clear()
    assert fast > 300  # the first sight took the short way often enough to be tested


def test_header_values_refuse_line_breaks_and_controls_but_not_tabs() -> None:
    assert check_header_value("Anna\tB.") is None
    assert check_header_value("Anna\r\nBcc: x") is not None
    assert check_header_value("Anna\x00") == "contains a control character"
    assert check_header_value("Anna\x7f") == "contains a control character"


def test_the_copied_lists_are_email_validators() -> None:
    """addresses.py copies two of email-validator's lists, so that importing it can wait."""
    import email_validator
    from email_validator import rfc_constants

    theirs = (email_validator.SPECIAL_USE_DOMAIN_NAMES,
              rfc_constants.CASE_INSENSITIVE_MAILBOX_NAMES)
    ours = (addresses.SPECIAL_USE_DOMAIN_NAMES, addresses.CASE_INSENSITIVE_MAILBOX_NAMES)
    assert ours == tuple(tuple(names) for names in theirs)


def test_the_domain_characters_are_ascii_letters_digits_dot_hyphen_and_all_non_ascii() -> None:
    """The short way's domain class, written as the ASCII it leaves out, at every code point."""
    import re

    one = re.compile(addresses._DOMAIN_CHAR)
    wrong = [hex(point) for point in range(0x110000) if bool(one.fullmatch(chr(point))) != (
        not chr(point).isascii() or chr(point).isalnum() or chr(point) in ".-")]
    assert wrong == []
