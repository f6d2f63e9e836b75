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


def test_header_values_refuse_line_breaks_and_controls_but_not_tabs() -> None:
    assert check_header_value("Anna\tB.") is None
    assert check_header_value("Anna\r\nBcc: x") is not None
    assert check_header_value("Anna\x00") == "contains a control character"
    assert check_header_value("Anna\x7f") == "contains a control character"
