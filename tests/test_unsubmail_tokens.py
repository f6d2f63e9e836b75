"""Issue 8 #12: a mailed unsubscribe request whose token is not ASCII is skipped, never a crash
(``[A-Za-z]`` with IGNORECASE matches the Kelvin sign and the long s)."""

from __future__ import annotations

from email import policy
from email.parser import BytesHeaderParser

import pytest

from mirage_mailer.services.unsubmail import Mail, process
from mirage_mailer.util.tokens import Signer


class OneMail:
    def __init__(self, subject: str) -> None:
        raw = f"From: a@example.org\nSubject: {subject}\n\n".encode()
        self.mail = Mail("1", "1", BytesHeaderParser(policy=policy.default).parsebytes(raw))
        self.done: list[Mail] = []

    def messages(self):  # type: ignore[no-untyped-def]
        yield self.mail

    def mark_done(self, mail: Mail) -> str | None:
        self.done.append(mail)
        return None


@pytest.mark.parametrize("char", ["\u212a", "\u017f"])
def test_a_non_ascii_token_is_skipped(char: str) -> None:
    token = Signer(b"k" * 32).make("unsubscribe", "issue", "a@example.org")
    box = OneMail(f"unsubscribe {token[:-1]}{char}")
    [outcome] = process(box, Signer(b"k" * 32), None, dry_run=False)
    assert outcome.status == "skipped" and "not genuine" in outcome.detail
    assert box.done == []
