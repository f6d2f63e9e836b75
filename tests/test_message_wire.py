"""Messages joined in SMTP wire format must be, byte for byte, the message converted whole."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE
from mirage_mailer.compose import message as message_module
from mirage_mailer.compose.message import MessageFactory, Personal, stuffed
from mirage_mailer.delivery.wire import from_wire, wire_format
from mirage_mailer.services.loader import open_project, render
from mirage_mailer.util.tokens import Signer

DOTTY = [
    Personal("a@example.org", "Zoë Ünal", "subscribers", {"organisation": ".starts with a dot"}),
    Personal("b@example.org", None, "subscribers", {"organisation": "line\n.dot line\n..two"}),
    Personal("c@example.org", ".Dot", "subscribers", {"organisation": "."}),
    Personal("d@example.org", "Pat", "subscribers", {"organisation": ""}),
    Personal("e@example.org", "Pat", "subscribers", {"organisation": "é" * 300 + "\n." * 40}),
]


class FixedClock:
    """One second for every Date header, so two builds of a message can be compared."""

    @staticmethod
    def time() -> float:
        return 1_800_000_000.0


@pytest.fixture
def factory(project: Path, monkeypatch: pytest.MonkeyPatch) -> MessageFactory:
    """The sample issue with a list field in both parts, at the start of a line and amid
    text, and an image (a multipart/related level)."""
    monkeypatch.setattr(message_module, "time", FixedClock)
    for name in ("newsletter.html.j2", "newsletter.txt.j2"):
        template = project / "templates" / name
        text = template.read_text(encoding="utf-8")
        template.write_text(text.replace(
            "{{ recipient.greeting }}",
            "{{ recipient.greeting }} ({{ recipient.organisation }})\n"
            "{{ recipient.organisation }}\n.{{ recipient.organisation }}"), encoding="utf-8")
    loaded = open_project(project / "mirage.yaml", project / SAMPLE_ISSUE)
    rendered = render(loaded, {"organisation"})
    return MessageFactory(loaded.settings, loaded.issue.id, rendered, Signer(b"test-key"))


@pytest.mark.parametrize("person", DOTTY, ids=lambda p: p.email)
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_wire_build_is_the_whole_message_converted(factory: MessageFactory, person: Personal,
                                                   lang: str) -> None:
    message_id = factory.new_message_id()
    wire = factory.build_wire(person, lang, message_id=message_id)
    assert wire is not None
    assert wire == wire_format(factory.build(person, lang, message_id=message_id))
    assert from_wire(wire) == factory.build(person, lang, message_id=message_id)


def test_wire_build_matches_on_random_values(factory: MessageFactory) -> None:
    rng = random.Random(20261130)
    alphabet = ".\n =\tabé<&\"'"
    for n in range(200):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        person = Personal(f"r{n}@example.org", rng.choice([None, "Réader", ". dot"]),
                          "subscribers", {"organisation": value})
        message_id = factory.new_message_id()
        wire = factory.build_wire(person, "en", message_id=message_id)
        assert wire == wire_format(factory.build(person, "en", message_id=message_id)), value


def test_a_cr_anywhere_falls_back_to_the_whole_message(factory: MessageFactory) -> None:
    """A CR (quoted-printable keeps a lone one) is left to the whole-message conversion,
    which hands it to aiosmtplib's normaliser."""
    person = Personal("cr@example.org", "Pat", "subscribers", {"organisation": "a\rb"})
    assert factory.build_wire(person, "en", message_id=factory.new_message_id()) is None
    rendered = {lang: dataclasses.replace(r, text=r.text + "lone\rCR\n")
                for lang, r in factory.rendered.items()}
    crlf = MessageFactory(factory.settings, factory.issue_id, rendered, factory.signer)
    person = Personal("ok@example.org", "Pat", "subscribers", {"organisation": "fine"})
    assert crlf.build_wire(person, "en", message_id=crlf.new_message_id()) is None


def test_a_finished_message_is_not_joined_in_wire_format(factory: MessageFactory) -> None:
    """A ``finish`` (DKIM) still changes the bytes: those are converted after it ran."""
    signed = MessageFactory(factory.settings, factory.issue_id, factory.rendered,
                            factory.signer, finish=lambda data: b"X-Signed: 1\n" + data)
    person = Personal("ok@example.org", "Pat", "subscribers", {"organisation": "fine"})
    assert signed.build_wire(person, "en", message_id=signed.new_message_id()) is None


@pytest.mark.parametrize("piece", [b"", b".", b"..\n.\n", b"a\n.b\n", b"x.\n.y", b"\n.\n"])
def test_stuffed_piece_is_the_wire_of_a_piece_at_a_line_start(piece: bytes) -> None:
    assert stuffed(piece) + b"\r\n.\r\n" == wire_format(piece + b"\n")
