"""What a mail in the bounce mailbox is: the fixtures (written after real Postfix, Exim, Gmail
and Microsoft 365 bounces, an Outlook auto-reply and a Yahoo ARF report) classified, and
hostile mail that never raises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mirage_mailer.services.bounce_parse import MAX_BYTES, parse

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
VERP = "bounces+1a-0123456789abcdef0123@mirageproject.eu"
RCPT = "jean@partner.example"
MSGID = "<m1.x@mirageproject.eu>"


def fixture(name: str, **extra: str) -> bytes:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    text = (text.replace("{{VERP}}", VERP).replace("{{RCPT}}", RCPT)
            .replace("{{RCPT_LOCAL}}", "jean").replace("{{MSGID}}", MSGID))
    for old, new in extra.items():
        text = text.replace(old, new)
    return text.encode("utf-8")


@pytest.mark.parametrize(("name", "category", "status", "hard"), [
    ("postfix.eml", "bounce", "5.1.1", True),
    ("postfix-mailbox-full.eml", "bounce", "4.2.2", False),
    ("postfix-delay.eml", "delay", None, None),
    ("exim.eml", "bounce", "5.1.1", True),
    ("gmail.eml", "bounce", "5.1.1", True),
    ("microsoft365.eml", "bounce", "5.1.10", True),
    ("autoreply.eml", "auto-reply", None, None),
    ("arf-complaint.eml", "complaint", None, None),
])
def test_fixtures_are_classified(name: str, category: str, status: str | None,
                                 hard: bool | None) -> None:
    parsed = parse(fixture(name))
    assert parsed.category == category, parsed.reason
    assert VERP in parsed.text  # where the token is looked for
    if category == "bounce":
        (failure,) = parsed.failures
        assert (failure.address, failure.status, failure.hard) == (RCPT, status, hard)
    else:
        assert parsed.failures == []
    if category == "complaint":
        assert (parsed.feedback_type, parsed.complained) == ("abuse", RCPT)
    if name not in ("exim.eml", "autoreply.eml"):  # the DSNs and the ARF carry the original
        assert parsed.original_message_id == MSGID
    assert parsed.key.startswith("mid:<")


def test_exim_is_read_by_flufl_bounce_without_its_x_failed_recipients_header() -> None:
    raw = re.sub(rb"(?m)^X-Failed-Recipients: .*\n", b"", fixture("exim.eml"))
    parsed = parse(raw)
    assert parsed.category == "bounce"
    assert [(f.address, f.hard) for f in parsed.failures] == [(RCPT, True)]


def test_an_auto_reply_that_talks_like_a_bounce_is_still_an_auto_reply() -> None:
    parsed = parse(fixture("autoreply.eml", **{"Automatic reply": "Undeliverable"}))
    assert parsed.category == "auto-reply"  # Auto-Submitted: auto-replied from a person


def test_a_dsn_that_reports_success_is_no_bounce() -> None:
    raw = fixture("postfix.eml", **{"Action: failed": "Action: delivered",
                                    "Status: 5.1.1": "Status: 2.0.0"})
    assert parse(raw).category == "other"


def garbled_dsn(report: str) -> bytes:
    """A DSN-shaped mail from a mail server whose delivery-status part is ``report``."""
    return (f"From: MAILER-DAEMON@mail.example.org\nTo: {VERP}\nSubject: Notice\n"
            "Message-ID: <g1@mail.example.org>\nMIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
            "--b\nContent-Type: text/plain\n\nSomething happened.\n--b\n"
            f"Content-Type: message/delivery-status\n\n{report}\n--b--\n").encode()


def test_a_dsn_with_no_failure_it_can_read_is_unrecognised_but_a_delay_is_a_delay() -> None:
    """As a mangled plain-text bounce: a genuine token then makes it a soft bounce."""
    for report in ("%%% garbage %%%", "Reporting-MTA: dns; x\n\nAction: ???\nStatus: ?"):
        parsed = parse(garbled_dsn(report))
        assert (parsed.category, parsed.failures) == ("unrecognised", []), report
        assert parsed.reason == "a delivery report, but no failure in it could be read"
    delayed = parse(garbled_dsn("Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822; "
                                f"{RCPT}\nAction: delayed\nStatus: 4.4.1"))
    assert delayed.category == "delay"


def test_a_not_spam_feedback_report_is_no_complaint() -> None:
    raw = fixture("arf-complaint.eml", **{"Feedback-Type: abuse": "Feedback-Type: not-spam"})
    assert parse(raw).category == "other"


def test_a_mail_without_a_message_id_is_keyed_by_its_bytes() -> None:
    raw = re.sub(rb"(?im)^Message-Id: .*\n", b"", fixture("postfix.eml"))
    first, second = parse(raw), parse(raw)
    assert first.key == second.key and first.key.startswith("sha256:")
    assert parse(raw + b"x").key != first.key


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe" * 1000,
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
    b"Content-Type: message/delivery-status\n\n\x00\x00\n--x",
    b"Content-Type: multipart/report; report-type=feedback-report\n\nno boundary at all",
    b"From: MAILER-DAEMON@x\nSubject: =?utf-8?b?!!!?=\nContent-Transfer-Encoding: base64\n\n"
    b"%%%%not base64%%%%",
    b"Content-Type: multipart/mixed; boundary=a\n\n" + b"--a\nContent-Type: multipart/mixed; "
    b"boundary=a\n\n" * 200,
    b"Subject: " + b"x" * 200_000 + b"\n\nbody",
])
def test_hostile_mail_never_raises(raw: bytes) -> None:
    parsed = parse(raw)
    assert parsed.category in ("other", "unreadable", "bounce", "complaint", "delay",
                               "auto-reply", "unrecognised")
    assert parsed.key


def test_a_huge_mail_is_not_parsed() -> None:
    parsed = parse(b"Subject: big\n\n" + b"x" * (MAX_BYTES + 1))
    assert parsed.category == "too-large" and "over the 2 MiB" in parsed.reason


def test_the_original_message_id_falls_back_to_in_reply_to() -> None:
    raw = fixture("gmail.eml")
    cut = raw.index(b"--000000000000a1f30e0628878b2c\nContent-Type: message/rfc822")
    parsed = parse(raw[:cut] + b"--000000000000a1f30e0628878b2c--\n")
    assert parsed.category == "bounce"
    assert parsed.original_message_id == MSGID


@pytest.mark.parametrize(("status", "hard"), [
    ("5.1.1", True), ("5.2.1", True), ("5.4.4", True),
    ("5.2.2", False),  # mailbox full: RFC 3463's "persistent transient failure"
    ("5.7.1", False),  # refused by policy: this message or sender, not the address
    ("4.4.7", False),
])
def test_which_statuses_are_hard(status: str, hard: bool) -> None:
    parsed = parse(fixture("postfix.eml", **{"Status: 5.1.1": f"Status: {status}"}))
    assert [(f.status, f.hard) for f in parsed.failures] == [(status, hard)]
    exim = parse(fixture("exim.eml", **{"550 5.1.1": f"550 {status}"}))
    assert [(f.status, f.hard) for f in exim.failures] == [(status, hard)]


@pytest.mark.parametrize(("diagnostic", "shown"), [
    ("smtp; 550 5.1.1 \x1b]0;pwned\x07\x1b[31mno such user", "\\x1b]0;pwned\\x07"),
    ("smtp; =?utf-8?q?550_=1B=5B31mno_such_user?=", "=1B=5B31m"),  # stays as written
])
def test_a_diagnostic_cannot_reach_the_terminal_as_control_characters(diagnostic: str,
                                                                     shown: str) -> None:
    """Anyone can mail the bounce mailbox, and process-bounces prints the diagnostic: an
    ESC sequence in it retitled or recoloured the officer's terminal."""
    raw = fixture("postfix.eml").replace(b"Diagnostic-Code:", b"X-Was:", 1)
    raw = raw.replace(b"Status: 5.1.1", b"Status: 5.1.1\nDiagnostic-Code: "
                      + diagnostic.encode(), 1)
    failures = parse(raw).failures
    assert failures and all("\x1b" not in f.diagnostic and "\x07" not in f.diagnostic
                            for f in failures)
    assert shown in failures[0].diagnostic  # shown, as an escape: nothing is hidden
