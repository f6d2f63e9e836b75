"""Issue 8 #1: RFC 2047 encoded words that decode to CR/LF cannot inject headers, whether they
come through a list row, an issue subject, or straight into the header builder."""

from __future__ import annotations

import base64
import email
import json
import random
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.util.headersafe import (
    HeaderError,
    header_problem,
    mailbox_header,
    text_header,
)

INJECTION = "=?utf-8?q?X=0D=0ASubject:_PWNED=0D=0A=0D=0A<h1>PHISH</h1>?="
B64_INJECTION = "=?UTF-8?B?" + base64.b64encode(b"Eve\r\nBcc: all@evil.example").decode() + "?="
LITERAL = "=?utf-8?q?Ren=C3=A9?="  # decodes to "René": no line break, kept as literal text


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_lines(raw: bytes, name: bytes) -> list[bytes]:
    head = raw.split(b"\n\n", 1)[0]
    return [line for line in head.split(b"\n") if line.lower().startswith(name.lower() + b":")]


def outbox(project: Path) -> list[bytes]:
    folder = project / "outbox" / "new"
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []


# -- through a list row, the CLI and the Maildir ---------------------------------------------


def test_a_list_row_cannot_inject_headers_into_the_newsletter(project: Path,
                                                               run_cli: RunCli) -> None:
    csv = project / "lists" / "subscribers.csv"
    with csv.open("a", encoding="utf-8") as handle:
        handle.write(f'eve@example.org,"{INJECTION}",en,\n')
        handle.write(f"mallory@example.org,{B64_INJECTION},en,\n")
        handle.write(f"rene@example.org,{LITERAL},en,\n")
    checked = run_cli("validate", SAMPLE_ISSUE)
    assert checked.code == 2, checked.out + checked.err
    shown = checked.out + checked.err
    assert "subscribers.csv:7" in shown and "subscribers.csv:8" in shown
    assert "encoded word" in shown and "subscribers.csv:9" not in shown

    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.out + sent.err
    assert "invalid 2" in sent.out
    messages = outbox(project)
    assert len(messages) == 6  # the five sample readers and René
    for raw in messages:
        assert b"\r" not in raw
        assert len(header_lines(raw, b"To")) == 1 and len(header_lines(raw, b"Subject")) == 1
        assert len(header_lines(raw, b"Bcc")) == 0
        message = parse(raw)
        [to] = message["To"].addresses
        assert to.addr_spec not in ("eve@example.org", "mallory@example.org")
        assert "\n" not in to.display_name and "\r" not in to.display_name
        assert "PWNED" not in str(message["Subject"]) and b"PHISH" not in raw
    [rene] = [parse(r) for r in messages if b"rene@example.org" in r]
    assert rene["To"].addresses[0].display_name == LITERAL  # intact, not decoded

    report = json.loads(run_cli("report", SAMPLE_ISSUE, "--format", "json").out)
    statuses = {r["email"]: r["status"] for r in report["recipients"]}
    assert statuses["eve@example.org"] == statuses["mallory@example.org"] == "invalid"


def test_an_issue_subject_with_a_hidden_line_break_is_a_fatal_error(project: Path,
                                                                     run_cli: RunCli) -> None:
    issue = project / SAMPLE_ISSUE / "issue.yaml"
    edit(issue, "  en: \"MIraGE news: final partners' meeting and lessons learned\"",
         f'  en: "{INJECTION}"')
    for command in (("validate", SAMPLE_ISSUE), ("send", SAMPLE_ISSUE, "--yes")):
        result = run_cli(*command)
        assert result.code == 2, result.out + result.err
        assert "issue.yaml:2" in result.out + result.err
        assert "encoded word" in result.out + result.err
    assert outbox(project) == []


# -- the checker -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    INJECTION, B64_INJECTION,
    "=?utf-8?q?a=0Ab?=", "=?utf-8?Q?a=0db?=", "=?iso-8859-1?q?a=0D?=",
    "=?utf-8*en?q?a=0A?=",  # RFC 2231 language suffix
    "=?x-unknown?q?a=0A?=",  # a charset nobody knows: the bytes still hold a line feed
    "=?utf-8?b?4oCo?=",  # U+2028 LINE SEPARATOR
    "=?utf-8?q?=C2=85?=",  # U+0085 NEXT LINE
    "=?utf-8?q?=3D=3Futf-8=3Fq=3F=0A=3F=3D?=",  # nested encoded word
    "=?utf-8?b?A?=",  # cannot be decoded
    # No closing ?=: Python's email parser (policy.default) still decodes a word whose text
    # starts with an =XX escape, up to the end of the header
    "=?utf-8?q?=0A", "=?utf-8?q?=0ABcc=3A=20a=40e.x@example.org", "x =?utf-8?Q?=0d=0a",
    "plain\r\ntext", "tab\x0bhere",
])
def test_values_hiding_a_line_break_are_refused(value: str) -> None:
    assert header_problem(value) is not None


def test_an_unclosed_encoded_word_is_decoded_by_readers_so_it_is_refused() -> None:
    """The address passes every syntax check (``=`` and ``?`` are atext), and the header that
    carries it holds no raw break, yet a reader's parser makes a line feed of it."""
    address = "=?utf-8?q?=0ABcc=3A=20a=40e.x@example.org"
    raw = mailbox_header("To", None, address) + b"Subject: hi\n\nbody\n"
    with pytest.raises(ValueError, match="CR or LF"):
        str(parse(raw)["To"])  # what a reader on Python's email package meets
    assert header_problem(address) is not None


@pytest.mark.parametrize("value", [
    "Jean Dupont", "Zoë Ünal-Πapadopoulou", "O'Brien, Pat", LITERAL, "a =? b ?= c",
    "=?utf-8?q?=E2=80=94?=", "tab\there",
])
def test_ordinary_values_pass(value: str) -> None:
    assert header_problem(value) is None


# -- the builder -------------------------------------------------------------------------------


def test_the_builder_refuses_raw_line_breaks() -> None:
    for bad in ("a\r\nb", "a\nb", "a\u2028b", "a\x85b"):
        with pytest.raises(HeaderError):
            text_header("Subject", bad)
        with pytest.raises(HeaderError):
            mailbox_header("To", bad, "a@example.org")
    with pytest.raises(HeaderError):
        mailbox_header("To", "A", "a@example.org>\nBcc: x@example.org")


def test_encoded_words_from_outside_stay_literal_text() -> None:
    for value in (INJECTION, B64_INJECTION, LITERAL):
        raw = text_header("Subject", value) + mailbox_header("To", value, "a@example.org")
        message = parse(raw + b"\nbody\n")
        assert str(message["Subject"]) == value
        assert message["To"].addresses[0].addr_spec == "a@example.org"
        assert message["To"].addresses[0].display_name.replace(" ", "") == value.replace(" ", "")


def test_random_values_always_give_one_header_that_round_trips() -> None:
    """Bounded fuzz: whatever printable text goes in, one folded line per header comes out,
    no line over 78 characters unless one word is, and the text decodes back unchanged."""
    rng = random.Random(8)
    alphabet = ("abcXYZ 019 =?_\"\\()<>@,;:.'" + "éßΠ中😀\t" + "=?utf-8?q?=0D=0A?=")
    for _ in range(400):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        value = " ".join(value.split(" "))
        subject = text_header("Subject", value)
        assert subject.count(b"\n") == subject.count(b"\n ") + 1 and b"\r" not in subject
        if all(len(word) <= 60 for word in value.split(" ")):
            assert all(len(line) <= 78 for line in subject.split(b"\n")), subject
        assert str(parse(subject + b"\nbody\n")["Subject"]) == value
        to = mailbox_header("To", value.strip() or None, "reader@example.org")
        assert to.count(b"\n") == to.count(b"\n ") + 1 and b"\r" not in to
        assert parse(to + b"\n")["To"].addresses[0].addr_spec == "reader@example.org"


@pytest.mark.parametrize("length", [899, 900, 990, 1200, 20_000])
@pytest.mark.parametrize("letter", ["N", "é", "N."])
def test_a_long_unbroken_display_name_keeps_every_line_within_rfc_5322(length: int,
                                                                       letter: str) -> None:
    """A list's name without a space once went out as one To: line of 994-1204 characters
    (RFC 5322 section 2.1.1 allows 998; a relay answered 500 and the row failed)."""
    name = (letter * length)[:length]
    to = mailbox_header("To", name, "reader@example.org")
    longest = max(len(line) for line in to.split(b"\n"))
    assert longest <= (998 if length < 900 else 78), longest  # a word that long is encoded
    parsed = parse(to + b"\n")["To"].addresses[0]
    # Python's phrase parser keeps the folding space between encoded words (RFC 2047 says
    # ignore it); the name has no space of its own
    assert parsed.display_name.replace(" ", "") == name
    assert parsed.addr_spec == "reader@example.org"
