"""``util.visible``: a relay's words on one line, with its control characters written out."""

from __future__ import annotations

import pytest

from mirage_mailer.util.visible import visible


@pytest.mark.parametrize(("text", "shown"), [
    ("2.0.0 Ok: queued as 12", "2.0.0 Ok: queued as 12"),  # the usual reply, as it is
    ("5.1.1 Empfänger unbekannt\u00a0!", "5.1.1 Empfänger unbekannt\u00a0!"),
    ("\x1b]0;PWNED\x07\x1b[31mRED\x1b[0m", "\\x1b]0;PWNED\\x07\\x1b[31mRED\\x1b[0m"),
    ("2.0.0 queued\nid=abc", "2.0.0 queued id=abc"),  # a multi-line reply, joined
    ("Malformed SMTP response line: hello\r\n", "Malformed SMTP response line: hello"),
    ("a\rb\tc", "a\\x0db c"),
    ("user\u202egnp.exe", "user\\u202egnp.exe"),  # a right-to-left override
    ("a\u2028b\x85c", "a\\u2028b\\x85c"),
    ("", ""),
])
def test_visible(text: str, shown: str) -> None:
    assert visible(text) == shown
    assert visible(shown) == shown  # once is enough: escaping escapes changes nothing
