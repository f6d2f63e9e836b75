"""The sign-up confirmation mail as a strict receiver reads it: the one mail mirage-mailer
builds with the standard library's body encoder rather than ``compose.message``."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest

from mirage_mailer.project.config import load_settings
from mirage_mailer.web.confirmation import confirmation_message


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_confirmation_mail_is_seven_bit(project: Path, lang: str) -> None:
    """Its French text went out as raw UTF-8 (``Content-Transfer-Encoding: 8bit``) even to a
    relay without 8BITMIME (RFC 6152), and a relay that downgrades it to quoted-printable
    breaks the DKIM signature (RFC 6376 5.3 asks signers for a 7-bit encoding)."""
    raw = confirmation_message(load_settings(project / "mirage.yaml"),
                               list_name="subscribers", email="x@example.org",
                               link="https://example.org/confirm/x", lang=lang)
    assert raw.isascii()
    assert all(len(line) <= 76 for line in raw.split(b"\n\n", 1)[1].split(b"\n"))
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in message.walk():
        if part.get_content_maintype() == "text":
            assert part["Content-Transfer-Encoding"] == "quoted-printable"
            assert part.get_content_charset() == "utf-8"
    text = message.get_body(("plain",))
    assert text is not None and "https://example.org/confirm/x" in text.get_content()
    if lang == "fr":
        assert re.search(r"[éèàç]", text.get_content())


def test_confirmation_date_has_a_numeric_zone(project: Path) -> None:
    """RFC 5322 4.3: "GMT" is obsolete zone syntax, which must not be generated."""
    raw = confirmation_message(load_settings(project / "mirage.yaml"),
                               list_name="subscribers", email="x@example.org",
                               link="https://example.org/confirm/x")
    date = re.search(rb"^Date: (.*)$", raw, re.MULTILINE)
    assert date is not None
    assert re.fullmatch(rb"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000",
                        date[1]), date[1]
