"""Per-recipient bytes by substitution must equal what the slow, obvious route would give."""

from __future__ import annotations

import dataclasses
import email
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE
from mirage_mailer.compose.message import MessageFactory, Personal, Skeleton, fill
from mirage_mailer.services.loader import open_project, render
from mirage_mailer.util.tokens import Signer

TRICKY = [
    Personal("jean.dupont@example.org", "Jean Dupont", "subscribers", {"organisation": "A&B"}),
    Personal("zoe@example.org", "Zoë Ünal-Πapadopoulou", "subscribers",
             {"organisation": "<b>bold</b> = \"quoted\" trailing   "}),
    Personal("x@example.org", None, "subscribers", {"organisation": "é" * 300}),
    Personal("o.brien@example.org", "O'Brien, Pat", "subscribers", {"organisation": ""}),
]


@pytest.fixture
def factory(project: Path) -> MessageFactory:
    for name in ("newsletter.html.j2", "newsletter.txt.j2"):
        template = project / "templates" / name
        text = template.read_text(encoding="utf-8")
        template.write_text(text.replace(
            "{{ recipient.greeting }}", "{{ recipient.greeting }} ({{ recipient.organisation }})"
        ), encoding="utf-8")
    loaded = open_project(project / "mirage.yaml", project / SAMPLE_ISSUE)
    rendered = render(loaded, {"organisation"})
    return MessageFactory(loaded.settings, loaded.issue.id, rendered, Signer(b"test-key"))


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize("person", TRICKY, ids=lambda p: p.email)
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_substituted_message_decodes_to_the_filled_parts(factory: MessageFactory,
                                                         person: Personal, lang: str) -> None:
    data = factory.build(person, lang)
    message = parse(data)
    values = factory.values_for(person, lang)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content() == fill(factory.rendered[lang].text, values, html=False)
    assert html.get_content() == fill(factory.rendered[lang].html, values, html=True)
    body = data.split(b"\n\n", 1)[1]
    assert all(len(line) <= 76 for line in body.split(b"\n")), "QP/base64 line too long"
    assert all(len(line) <= 998 for line in data.split(b"\n"))
    assert not message.defects and all(not p.defects for p in message.walk())


def test_to_header_round_trips(factory: MessageFactory) -> None:
    for person in TRICKY:
        message = parse(factory.build(person, "en"))
        address = message["To"].addresses[0]
        assert address.addr_spec == person.email
        assert address.display_name == (person.name or "")
    assert b"\nTo: <x@example.org>\n" in factory.build(TRICKY[2], "en")


def test_html_values_are_escaped_text_values_are_not(factory: MessageFactory) -> None:
    message = parse(factory.build(TRICKY[1], "en"))
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    assert "(&lt;b&gt;bold&lt;/b&gt; = &quot;quoted&quot; trailing   )" in html.get_content()
    assert '(<b>bold</b> = "quoted" trailing   )' in text.get_content()


def test_message_ids_are_unique_and_tokens_personal(factory: MessageFactory) -> None:
    ids = set()
    unsubscribes = set()
    for n in range(500):
        message = parse(factory.build(Personal(f"r{n}@example.org", None, "subscribers", {}),
                                      "en"))
        ids.add(message["Message-ID"])
        unsubscribes.add(str(message["List-Unsubscribe"]))
    assert len(ids) == 500 and len(unsubscribes) == 500


def test_signed_token_verifies_and_rejects_tampering() -> None:
    signer = Signer(b"k")
    token = signer.make("unsubscribe", "2021-10-partners-meeting", "Jean@Example.org")
    scope, subject = signer.verify("unsubscribe", token) or ("", "")
    assert scope == "2021-10-partners-meeting"
    assert subject == signer.subject_id("jean@example.org")
    assert "jean" not in token.lower()
    assert signer.verify("view", token) is None
    assert signer.verify("unsubscribe", token[:-2] + ("AA" if token[-2:] != "AA" else "BB")) \
        is None
    assert Signer(b"other").verify("unsubscribe", token) is None


INJECTION = "=?utf-8?q?X=0D=0ASubject:_PWNED=0D=0A=0D=0A<h1>PHISH</h1>?="


def test_encoded_words_in_subject_and_name_stay_literal(factory: MessageFactory) -> None:
    """Issue 8 #1, defence in depth: even values that skipped validation cannot carry a line
    break into the headers; the header bytes never come from the stdlib's folder."""
    rendered = dataclasses.replace(factory.rendered["en"], subject=INJECTION)
    factory.skeletons["en"] = Skeleton(factory.settings, rendered, factory.issue_id)
    raw = factory.build(Personal("eve@example.org", INJECTION, "subscribers", {}), "en")
    head = raw.split(b"\n\n", 1)[0]
    assert b"\r" not in raw
    assert [line[:3] for line in head.split(b"\n")].count(b"To:") == 1
    assert [line[:8] for line in head.split(b"\n")].count(b"Subject:") == 1
    message = parse(raw)
    assert str(message["Subject"]) == INJECTION
    [to] = message["To"].addresses
    assert to.addr_spec == "eve@example.org"
    assert "\n" not in to.display_name and "\r" not in to.display_name


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_no_quoted_printable_line_passes_76_whatever_a_value_s_length(
        factory: MessageFactory, lang: str) -> None:
    """RFC 2045 6.7: an encoded line is at most 76 characters. Each value is followed by a
    soft break (``=``), and a value of 76 or 151 characters filled its line to 76 before it:
    77-character lines."""
    for size in range(60, 240):
        person = Personal("p@example.org", "P" * size, "subscribers",
                          {"organisation": "o" * size})
        for data in (factory.build(person, lang),
                     factory.build_wire(person, lang, message_id="<a@example.org>")):
            assert data is not None
            body = data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
            longest = max(len(line) for line in body.split(b"\n"))
            assert longest <= 76, (size, longest)
            text = parse(data.removesuffix(b".\r\n")).get_body(("plain",))
            assert text is not None and "o" * size in text.get_content()
