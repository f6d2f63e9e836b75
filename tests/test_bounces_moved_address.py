"""Bounces of messages sent before ``bounces.address`` changed: their tokens sit on the earlier
base (another local part, another domain) and still verify, with the current key or one
retired by ``rotate-secret``; a forged token there still changes nothing; and mail that
matches nothing can be set aside unread (``bounces.unmatched_folder``). Real CLI runs, a
real store, a real Maildir (audit finding F6)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from helpers import RunCli, edit
from test_bounces_e2e import ISSUE, JEAN, MARIA, SOFIA, drop, events, sent, suppressed

__all__ = ["sent"]  # the fixture
Sent = tuple[dict[str, str], dict[str, str]]
OLD, NEW = "bounces@mirageproject.eu", "bounces@mail.mirageproject.eu"


def dsn(to: str, failed: str, mail_id: str) -> bytes:
    """An RFC 3464 report without the returned message (optional, and often left out): only
    the envelope address it was delivered to, ``To:``, can say which message it is about."""
    return (f"Return-Path: <>\nDelivered-To: {to}\nFrom: MAILER-DAEMON@mx.example.org\n"
            f"To: {to}\nSubject: Undelivered Mail\nMessage-ID: <{mail_id}@mx.example.org>\n"
            f"Date: {format_datetime(datetime.now(UTC))}\nMIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"Q\"\n\n"
            "--Q\nContent-Type: text/plain\n\nfailed\n--Q\n"
            "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
            f"Final-Recipient: rfc822; {failed}\nAction: failed\nStatus: 5.1.1\n"
            "Diagnostic-Code: smtp; 550 5.1.1 User unknown\n\n--Q--\n").encode()


def move_mailbox(project: Path, address: str = NEW) -> None:
    edit(project / "mirage.yaml", f"\n  address: {OLD}", f"\n  address: {address}")


def forge(verp: str) -> str:
    """The same row id with a MAC that is not ours."""
    forged = re.sub(r"-[0-9a-f]{20}@", "-" + "a" * 20 + "@", verp)
    assert forged != verp
    return forged


def test_a_bounce_to_the_earlier_address_still_suppresses(project: Path, run_cli: RunCli,
                                                          sent: Sent) -> None:
    """The audit's scenario: sent with bounces@mirageproject.eu, the mailbox moved to
    bounces@mail.mirageproject.eu, then the DSN of a dead address arrives at the old one."""
    senders, _ = sent
    assert senders[MARIA].endswith("@mirageproject.eu")
    move_mailbox(project)
    box = project / "bouncebox"
    drop(box, "dsn", dsn(senders[MARIA], MARIA, "dsn1"))
    # the same token on another base and local part too (a relay that rewrote the domain,
    # a delimiter changed from + to -): the MAC alone says whose it is
    token = senders[JEAN].partition("+")[2].partition("@")[0]
    drop(box, "other", dsn(f"returns-{token}@old-host.example", JEAN, "dsn2"))
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    assert (f"dsn.mirage-test: hard bounce {MARIA} (issue {ISSUE}): 5.1.1; smtp; 550 5.1.1 "
            "User unknown; address suppressed") in result.out, result.out
    assert f"other.mirage-test: hard bounce {JEAN} (issue {ISSUE})" in result.out, result.out
    assert suppressed(project) == {MARIA: "bounce", JEAN: "bounce"}
    assert sorted(events(project)) == [(JEAN, "bounced"), (MARIA, "bounced")]


def test_a_token_signed_with_a_retired_key_on_the_earlier_address(
        project: Path, run_cli: RunCli, sent: Sent) -> None:
    senders, _ = sent
    rotated = run_cli("rotate-secret")
    assert rotated.code == 0, rotated.err
    move_mailbox(project)
    drop(project / "bouncebox", "dsn", dsn(senders[SOFIA].upper(), SOFIA, "dsn1"))
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    assert f"dsn.mirage-test: hard bounce {SOFIA} (issue {ISSUE}): 5.1.1" in result.out
    assert suppressed(project) == {SOFIA: "bounce"}


def test_a_forged_token_on_the_earlier_address_changes_nothing(project: Path, run_cli: RunCli,
                                                               sent: Sent) -> None:
    senders, _ = sent
    move_mailbox(project)
    box = project / "bouncebox"
    # Maria's row id on the old address, a MAC not ours; and one on the current address
    drop(box, "old", dsn(forge(senders[MARIA]), MARIA, "f1"))
    current = forge(senders[MARIA]).replace(f"@{OLD.partition('@')[2]}", "@" + NEW.partition(
        "@")[2])
    drop(box, "new", dsn(current, MARIA, "f2"))
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    assert ("old.mirage-test: unmatched: no genuine VERP token, and its original Message-ID "
            f"is none this project sent to {MARIA}; ignored") in result.out, result.out
    assert "new.mirage-test: unmatched: its VERP token is forged" in result.out, result.out
    assert suppressed(project) == {} and events(project) == []


def test_unmatched_mail_is_set_aside_unread_and_judged_afresh_when_moved_back(
        project: Path, run_cli: RunCli, sent: Sent) -> None:
    senders, _ = sent
    config = project / "mirage.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "  unmatched_folder: Unmatched\n",
                      encoding="utf-8")
    box = project / "bouncebox"
    drop(box, "forged", dsn(forge(senders[MARIA]), MARIA, "f1"))
    drop(box, "good", dsn(senders[JEAN], JEAN, "g1"))
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    assert ("forged.mirage-test: unmatched: its VERP token is forged (altered, or not ours); "
            "ignored; set aside unread in Unmatched") in result.out, result.out
    # unread (no S flag) in the Maildir++ folder, where a mail client shows it as new
    assert [p.name for p in (box / ".Unmatched" / "cur").iterdir()] == [
        "forged.mirage-test:2,"]
    assert [p.name for p in (box / "cur").iterdir()] == ["good.mirage-test:2,S"]
    # put back in the inbox, it is read again and judged afresh, never "already"
    (box / ".Unmatched" / "cur" / "forged.mirage-test:2,").rename(
        box / "new" / "forged.mirage-test")
    again = run_cli("process-bounces")
    assert again.code == 0, again.err
    assert "forged.mirage-test: unmatched: its VERP token is forged" in again.out, again.out
    assert suppressed(project) == {JEAN: "bounce"}
