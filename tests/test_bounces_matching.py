"""Whom a bounce is about when it carries no genuine VERP token, and the mailbox guards of
``process-bounces`` (store, symlinks, lock, dry run, soft window), through the CLI on a real
store and a real Maildir."""

from __future__ import annotations

import fcntl
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import RunCli
from test_bounces_e2e import (
    ISSUE,
    JEAN,
    MARIA,
    PETER,
    SOFIA,
    bounce,
    drop,
    events,
    sent,
    suppressed,
)

__all__ = ["sent"]  # the fixture
Sent = tuple[dict[str, str], dict[str, str]]
PLAIN = "bounces@mirageproject.eu"  # the return path without a token

FORGED_DSN = f"""\
Return-Path: <>
From: MAILER-DAEMON@attacker.example
To: {PLAIN}
Subject: Undelivered Mail Returned to Sender
Message-ID: <forged-dsn-1@attacker.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

gone
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; attacker.example

Final-Recipient: rfc822; {MARIA}
Action: failed
Status: 5.1.1

--B--
"""


def test_forged_bounces_without_a_genuine_token_change_nothing(
        project: Path, run_cli: RunCli, sent: Sent) -> None:
    senders, ids = sent
    box = project / "bouncebox"
    # a DSN naming Maria, no token, no original message at all
    drop(box, "bare", FORGED_DSN.encode())
    # a DSN naming Maria with a Message-ID that was never sent
    drop(box, "garbled", bounce("postfix.eml", verp=PLAIN, rcpt=MARIA,
                                message_id="<whatever@attacker>"))
    # an ARF report that names only the address (Original-Rcpt-To)
    drop(box, "arf", bounce("arf-complaint.eml", verp=PLAIN, rcpt=JEAN,
                            message_id="<whatever2@attacker>"))
    # Maria's token cut to 18 hex digits, with her real Message-ID: a token, malformed
    cut = re.sub(r"(-[0-9a-f]{18})[0-9a-f]{2}@", r"\1@", senders[MARIA])
    assert cut != senders[MARIA]
    drop(box, "cut", bounce("exim.eml", verp=cut, rcpt=MARIA, message_id=ids[MARIA]))
    # Sofia's Message-ID, but the DSN says another address failed
    drop(box, "other", bounce("microsoft365.eml", verp=PLAIN, rcpt=PETER,
                              message_id=ids[SOFIA]))
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    out = result.out
    for name in ("bare", "garbled", "arf", "cut", "other"):
        assert f"{name}.mirage-test: unmatched" in out, out
    assert "cut.mirage-test: unmatched: its VERP token is forged" in out
    assert f"bare.mirage-test: unmatched: no genuine VERP token, and its original " \
           f"Message-ID is none this project sent to {MARIA}; ignored" in out
    assert out.strip().splitlines()[-1] == (
        "process-bounces: 5 mail(s): 5 unmatched; 0 address(es) suppressed")
    assert suppressed(project) == {} and events(project) == []


def test_a_bounce_without_a_token_matches_by_our_message_id_and_its_address(
        project: Path, run_cli: RunCli, sent: Sent) -> None:
    _, ids = sent
    box = project / "bouncebox"
    drop(box, "m365", bounce("microsoft365.eml", verp=PLAIN, rcpt=PETER,
                             message_id=ids[PETER]))
    drop(box, "gmail", bounce("gmail.eml", verp=PLAIN, rcpt=MARIA, message_id=ids[MARIA]))
    # nothing of the original returned: our Message-ID only in In-Reply-To
    drop(box, "reply-to", FORGED_DSN.replace(MARIA, JEAN).replace(
        "Message-ID: <forged-dsn-1@attacker.example>\n",
        f"Message-ID: <dsn-2@mx.example>\nIn-Reply-To: {ids[JEAN]}\n").encode())
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    assert f"reply-to.mirage-test: hard bounce {JEAN} (issue {ISSUE}): 5.1.1" in result.out
    assert f"hard bounce {PETER} (issue {ISSUE}): 5.1.10" in result.out
    assert f"hard bounce {MARIA} (issue {ISSUE})" in result.out
    assert suppressed(project) == {PETER: "bounce", MARIA: "bounce", JEAN: "bounce"}


def test_our_message_ids_are_unguessable(sent: Sent) -> None:
    _, ids = sent
    for message_id in ids.values():  # 128 random bits before the issue id
        assert re.fullmatch(r"<[0-9a-f]{32}\.[^@>]+@[^>]+>", message_id), message_id


def test_a_missing_store_is_refused_and_the_mail_left_unread(
        project: Path, run_cli: RunCli, sent: Sent) -> None:
    senders, ids = sent
    box = project / "bouncebox"
    path = drop(box, "postfix", bounce("postfix.eml", verp=senders[MARIA], rcpt=MARIA,
                                       message_id=ids[MARIA]))
    database = project / ".mirage" / "tracking.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    for args in (("process-bounces",), ("process-bounces", "--dry-run")):
        result = run_cli(*args)
        assert result.code == 2, result.out
        (line,) = result.err.strip().splitlines()
        assert "the tracking database is missing" in line
        assert not database.exists()
        assert path.exists() and not list((box / "cur").iterdir())


def test_symlinks_in_the_maildir_are_never_followed(
        project: Path, run_cli: RunCli, sent: Sent, tmp_path: Path) -> None:
    senders, ids = sent
    box = project / "bouncebox"
    outside = tmp_path / "outside.eml"
    outside.write_bytes(bounce("postfix.eml", verp=senders[MARIA], rcpt=MARIA,
                               message_id=ids[MARIA]))
    links = {"dsn": outside, "zero": Path("/dev/zero"), "dir": tmp_path}
    for name, target in links.items():
        (box / "new" / f"{name}.mirage-test").symlink_to(target)
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    for name in links:
        assert f"{name}.mirage-test: skipped: not a regular file (a symbolic link); " \
               "left in place" in result.out, result.out
    assert suppressed(project) == {} and events(project) == []
    assert sorted(p.name for p in (box / "new").iterdir()) == sorted(
        f"{name}.mirage-test" for name in links)


def test_dry_run_predicts_the_real_run_for_copies_of_one_bounce(
        project: Path, run_cli: RunCli, sent: Sent) -> None:
    senders, ids = sent
    box = project / "bouncebox"
    data = bounce("postfix.eml", verp=senders[MARIA], rcpt=MARIA, message_id=ids[MARIA])
    drop(box, "copy1", data)
    drop(box, "copy2", data)
    drop(box, "exim", bounce("exim.eml", verp=senders[MARIA], rcpt=MARIA,
                             message_id=ids[MARIA]))
    dry = run_cli("process-bounces", "--dry-run").out.strip().splitlines()[-1]
    real = run_cli("process-bounces").out.strip().splitlines()[-1]
    assert dry == ("process-bounces: 3 mail(s): 2 hard, 1 already; 1 address(es) to "
                   "suppress; dry run, nothing changed")
    assert real == "process-bounces: 3 mail(s): 2 hard, 1 already; 1 address(es) suppressed"


def test_soft_bounces_handled_out_of_date_order_count_within_the_window(
        project: Path, run_cli: RunCli, sent: Sent) -> None:
    senders, ids = sent
    box = project / "bouncebox"
    now = datetime.now(UTC)
    for n, age_days in enumerate((0, 2)):  # the newest first; limit 2 within 7 days
        drop(box, f"soft{n}", bounce("postfix-mailbox-full.eml", verp=senders[SOFIA],
                                     rcpt=SOFIA, message_id=ids[SOFIA],
                                     mail_id=f"soft{n}@mail.example.org",
                                     date=now - timedelta(days=age_days)))
        result = run_cli("process-bounces")
        assert result.code == 0, result.err
    assert suppressed(project) == {SOFIA: "bounce"}
    # and a dry run predicts a soft bounce that reaches the limit
    for n in (1, 2):
        drop(box, f"soft-j{n}", bounce("postfix-mailbox-full.eml", verp=senders[JEAN],
                                       rcpt=JEAN, message_id=ids[JEAN],
                                       mail_id=f"j{n}@mail.example.org", date=now))
    dry = run_cli("process-bounces", "--dry-run").out.strip().splitlines()[-1]
    real = run_cli("process-bounces").out.strip().splitlines()[-1]
    assert dry.startswith("process-bounces: 2 mail(s): 2 soft; 1 address(es) to suppress")
    assert real == "process-bounces: 2 mail(s): 2 soft; 1 address(es) suppressed"


def test_a_second_process_bounces_at_once_is_refused(
        project: Path, run_cli: RunCli, sent: Sent) -> None:
    senders, ids = sent
    box = project / "bouncebox"
    path = drop(box, "postfix", bounce("postfix.eml", verp=senders[MARIA], rcpt=MARIA,
                                       message_id=ids[MARIA]))
    lock = project / ".mirage" / "locks" / "process-bounces.lock"
    lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242\n")
        result = run_cli("process-bounces")
    finally:
        os.close(fd)
    assert result.code == 3, result.out
    (line,) = result.err.strip().splitlines()
    assert "process-bounces is already running (pid 4242)" in line
    assert path.exists() and suppressed(project) == {}
    assert run_cli("process-bounces").code == 0
    assert suppressed(project) == {MARIA: "bounce"}
