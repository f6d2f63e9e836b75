"""Internationalised domains (RFC 5890/5891) travel as A-labels: on the SMTP envelope and in
every header, so a relay without SMTPUTF8 (RFC 6531) delivers ``hans@bücher.de`` and
``hans@xn--bcher-kva.de`` alike; only a non-ASCII local part needs SMTPUTF8. Message-ID,
List-Id and the mailto URI are pure ASCII, and a Message-ID is a valid dot-atom whatever the
issue folder's name. A real CLI in a subprocess, a real SQLite store, aiosmtpd on 127.0.0.1.
"""

from __future__ import annotations

import email
import email.policy
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, use_relay
from mirage_mailer.compose.message import mailto_address
from mirage_mailer.project.config import load_settings
from mirage_mailer.services.bounce_parse import parse
from mirage_mailer.services.verp import Verp
from mirage_mailer.util.addresses import ascii_address
from mirage_mailer.web.confirmation import confirmation_message
from support.smtp_sink import SmtpSink

LIST = "lists/subscribers.csv"
ROWS = ("hans@xn--bcher-kva.de,Hans A,en,\n"  # written in A-labels
        "grete@bücher.de,Grete U,en,\n"  # written in Unicode
        "jörg@bücher.de,Jörg,en,\n")  # a non-ASCII local part: SMTPUTF8 or nothing
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")


def add_rows(project: Path, rows: str) -> None:
    with (project / LIST).open("a", encoding="utf-8", newline="") as handle:
        handle.write(rows)


def idn_sender(project: Path) -> None:
    """Sender, Reply-To and contact at an international domain, written both ways."""
    config = project / "mirage.yaml"
    edit(config, "  from: MIraGE project <news@mirageproject.eu>",
         "  from: MIraGE project <news@xn--bcher-kva.de>")
    edit(config, "  reply_to: info@mirageproject.eu", "  reply_to: Info <info@bücher.de>")
    edit(config, "  contact: info@mirageproject.eu", "  contact: kontakt@bücher.de")


def parsed(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def assert_ascii_headers(data: bytes) -> email.message.EmailMessage:
    """Every header line ASCII, and no defect in Python's reading of the address headers."""
    head = data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    assert head.isascii(), [line for line in head.split(b"\n") if not line.isascii()]
    message = parsed(data)
    for name in ("From", "To", "Reply-To", "Message-ID", "List-Id", "List-Unsubscribe"):
        assert message[name] is not None, name
        assert not message[name].defects, (name, message[name].defects)
    return message


def test_idn_domains_go_as_a_labels_to_a_relay_without_smtputf8(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    use_relay(project, sink.url)  # the `sink` fixture offers no SMTPUTF8
    idn_sender(project)
    add_rows(project, ROWS)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 1, result.err  # jörg only: a permanent failure, as before
    with closing(sqlite3.connect(project / ".mirage" / "tracking.sqlite")) as db:
        rows = {email: (status, response) for email, status, response in db.execute(
            "SELECT email, status, smtp_response FROM recipients")}
    states = {email: status for email, (status, _) in rows.items()}
    # the store keeps one form of each mailbox (the key both spellings share)
    assert states["hans@bücher.de"] == states["grete@bücher.de"] == "sent"
    assert states["jörg@bücher.de"] == "failed"
    assert "maria.georgiou@example.org" in states
    got = {message.recipients[0]: message for message in sink.received}
    assert "hans@xn--bcher-kva.de" in got and "grete@xn--bcher-kva.de" in got
    assert not any("jörg" in address for address in got)
    assert {message.sender for message in sink.received} == {"news@xn--bcher-kva.de"}
    for address in ("hans@xn--bcher-kva.de", "grete@xn--bcher-kva.de",
                    "maria.georgiou@example.org"):
        message = assert_ascii_headers(got[address].data)
        assert message["From"].addresses[0].addr_spec == "news@xn--bcher-kva.de"
        assert message["To"].addresses[0].addr_spec == address
        assert message["Reply-To"].addresses[0].addr_spec == "info@xn--bcher-kva.de"
        assert str(message["Message-ID"]).endswith("@xn--bcher-kva.de>")
        assert str(message["List-Id"]).endswith("<subscribers.xn--bcher-kva.de>")
        assert "<mailto:kontakt@xn--bcher-kva.de?subject=" in str(message["List-Unsubscribe"])
    assert "not ASCII and the server does not offer SMTPUTF8" in rows["jörg@bücher.de"][1]


def test_test_copy_from_an_a_label_sender_is_delivered(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    use_relay(project, sink.url, paced=True)
    idn_sender(project)
    result = run_cli("send", SAMPLE_ISSUE, "--to", "plain@example.org")
    assert result.code == 0, result.err + result.out
    (message,) = sink.received
    assert (message.sender, message.recipients) == ("news@xn--bcher-kva.de",
                                                     ("plain@example.org",))
    assert_ascii_headers(message.data)


def test_maildir_outbox_traces_the_ascii_envelope(project: Path, run_cli: RunCli) -> None:
    idn_sender(project)
    add_rows(project, ROWS.splitlines(keepends=True)[1])
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    mails = [path.read_bytes() for path in (project / "outbox" / "new").iterdir()]
    (grete,) = [data for data in mails if b"Delivered-To: grete@xn--bcher-kva.de\n" in data]
    assert grete.startswith(b"Return-Path: <news@xn--bcher-kva.de>\n")
    assert_ascii_headers(grete)


def test_both_spellings_of_one_mailbox_are_one_subscriber(project: Path,
                                                          run_cli: RunCli) -> None:
    add_rows(project, "x@bücher.de,Unicode,en,\nX@xn--bcher-kva.de,A-label,en,\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert re.search(r"subscribers\.csv:8: warning: .*duplicate", result.err), result.err


@pytest.mark.parametrize(("folder", "left"), [("x.", "x"), ("a..b", "a.b"),
                                              ("2024.05..", "2024.05")])
def test_message_id_is_a_dot_atom_whatever_the_issue_folder(
        project: Path, run_cli: RunCli, folder: str, left: str) -> None:
    source = project / SAMPLE_ISSUE
    target = project / "issues" / folder
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    result = run_cli("preview", f"issues/{folder}", "--lang", "en", "--out", "pv")
    assert result.code == 0, result.err
    message = parsed((project / "pv" / "en.eml").read_bytes())
    assert not message["Message-ID"].defects
    match = re.fullmatch(r"<([0-9a-f]{32})\.(.+)@([^>]+)>", str(message["Message-ID"]))
    assert match is not None and match[2] == left
    assert DOT_ATOM.fullmatch(f"{match[1]}.{match[2]}")


def test_ascii_address_converts_the_domain_only_where_the_local_part_allows() -> None:
    assert ascii_address("hans@bücher.de") == "hans@xn--bcher-kva.de"
    assert ascii_address("Hans@Bücher.DE") == "Hans@xn--bcher-kva.de"
    assert ascii_address("hans@xn--bcher-kva.de") == "hans@xn--bcher-kva.de"
    assert ascii_address("jörg@bücher.de") == "jörg@bücher.de"  # SMTPUTF8 or nothing
    assert ascii_address("plain@example.org") == "plain@example.org"


def test_mailto_address_is_pure_ascii() -> None:
    assert mailto_address("Kontakt <kontakt@bücher.de>") == "kontakt@xn--bcher-kva.de"
    assert mailto_address("jörg@bücher.de") == "j%C3%B6rg@xn--bcher-kva.de"  # RFC 6068
    assert mailto_address("info@example.org") == "info@example.org"


def test_a_bounce_for_the_a_label_address_finds_its_row() -> None:
    """Bounces name the address as it travelled (A-labels); the store keeps it in Unicode."""
    verp = Verp("bounces", "+", "bücher.de", [b"k" * 32])
    sent_as = ascii_address(verp.address("issue", 7, "hans@bücher.de"))
    assert sent_as.endswith("@xn--bcher-kva.de")
    (token,) = verp.find(f"To: <{sent_as}>")
    assert verp.genuine(token, "issue", "hans@bücher.de")
    dsn = (b"From: MAILER-DAEMON@example.org\nTo: <" + sent_as.encode() + b">\n"
           b"Subject: Undelivered\nMIME-Version: 1.0\n"
           b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
           b"--B\nContent-Type: text/plain\n\ngone\n--B\n"
           b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; example.org\n\n"
           b"Final-Recipient: rfc822; hans@xn--bcher-kva.de\nAction: failed\n"
           b"Status: 5.1.1\n\n--B--\n")
    (failure,) = parse(dsn).failures
    assert failure.address == "hans@bücher.de"


def test_confirmation_mail_from_an_idn_sender_is_ascii(project: Path) -> None:
    idn_sender(project)
    raw = confirmation_message(load_settings(project / "mirage.yaml"),
                               list_name="subscribers", email="grete@bücher.de",
                               link="https://example.org/confirm/x")
    head = raw.split(b"\n\n", 1)[0]
    assert head.isascii()
    message = parsed(raw)
    assert str(message["Message-ID"]).endswith("@xn--bcher-kva.de>")
    assert message["To"].addresses[0].addr_spec == "grete@xn--bcher-kva.de"
