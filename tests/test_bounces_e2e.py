"""Bounces end to end: ``send`` to aiosmtpd on 127.0.0.1 with VERP on, bounce mails built
from the fixtures dropped into a Maildir, ``process-bounces`` and ``report`` run as the CLI."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, report, use_relay
from mirage_mailer.project.config import find_config, load_settings
from mirage_mailer.services.verp import Verp
from mirage_mailer.util.tokens import load_secret
from support.smtp_sink import SmtpSink

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
ISSUE = "2021-10-partners-meeting"
MARIA, JEAN, AMINA, PETER, SOFIA = ("maria.georgiou@example.org", "jean.dupont@example.org",
                                    "amina.haddad@example.org", "peter.novak@example.org",
                                    "sofia.rossi@example.org")
VERP_RE = re.compile(r"^bounces\+[0-9a-z]+-[0-9a-f]{20}@mirageproject\.eu$")
BOUNCES = """
bounces:
  address: bounces@mirageproject.eu
  mailbox: bouncebox
  soft_limit: 2
  soft_window_days: 7
"""


def bounce(name: str, *, verp: str, rcpt: str, message_id: str, mail_id: str | None = None,
           date: datetime | None = None) -> bytes:
    """A fixture with its placeholders filled in (and its own Message-ID and Date)."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    text = (text.replace("{{VERP}}", verp).replace("{{RCPT}}", rcpt)
            .replace("{{RCPT_LOCAL}}", rcpt.partition("@")[0])
            .replace("{{MSGID}}", message_id))
    if mail_id is not None:
        text = re.sub(r"(?im)^Message-Id: .*$", f"Message-ID: <{mail_id}>", text, count=1)
    if date is not None:
        text = re.sub(r"(?m)^Date: .*$", f"Date: {format_datetime(date)}", text, count=1)
    return text.encode("utf-8")


def drop(box: Path, name: str, data: bytes) -> Path:
    path = box / "new" / f"{name}.mirage-test"
    path.write_bytes(data)
    return path


@pytest.fixture
def sent(project: Path, run_cli: RunCli,
         sink: SmtpSink) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """The sample issue sent with VERP on: (recipient -> MAIL FROM, recipient -> Message-ID)."""
    config = use_relay(project, sink.url)
    config.write_text(config.read_text(encoding="utf-8") + BOUNCES, encoding="utf-8")
    for sub in ("new", "cur", "tmp"):
        (project / "bouncebox" / sub).mkdir(parents=True)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    senders = {r.recipients[0]: r.sender for r in sink.received}
    ids = {r["email"]: r["message_id"] for r in report(run_cli)["recipients"]}
    yield senders, ids


def suppressed(project: Path) -> dict[str, str]:
    with sqlite3.connect(project / ".mirage" / "tracking.sqlite") as db:
        return dict(db.execute("SELECT email, source FROM suppressions").fetchall())


def events(project: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(project / ".mirage" / "tracking.sqlite") as db:
        return db.execute("SELECT email, kind FROM events WHERE kind IN"
                          " ('bounced', 'soft-bounced', 'complained') ORDER BY id").fetchall()


def test_mail_from_is_a_signed_verp_address_per_recipient(
        project: Path, sent: tuple[dict[str, str], dict[str, str]]) -> None:
    senders, _ = sent
    assert len(senders) == 5 and len(set(senders.values())) == 5
    secret = load_secret(project / ".mirage", None)
    verp = Verp("bounces", "+", "mirageproject.eu", [bytes(secret)])
    with sqlite3.connect(project / ".mirage" / "tracking.sqlite") as db:
        rows = {email: (rid, issue) for rid, email, issue in
                db.execute("SELECT id, email, issue FROM recipients")}
    for recipient, sender in senders.items():
        assert VERP_RE.match(sender), sender
        assert len(sender.partition("@")[0]) <= 64
        (token,) = verp.find(sender.upper())  # an MTA that upper-cases local parts
        assert token.row_id == rows[recipient][0]
        assert verp.genuine(token, ISSUE, recipient)
        assert not verp.genuine(token, ISSUE, JEAN if recipient != JEAN else MARIA)


def test_process_bounces_classifies_records_and_suppresses_once(
        project: Path, run_cli: RunCli, sent: tuple[dict[str, str], dict[str, str]]) -> None:
    senders, ids = sent
    box = project / "bouncebox"
    drop(box, "postfix", bounce("postfix.eml", verp=senders[MARIA], rcpt=MARIA,
                                message_id=ids[MARIA]))
    # Gmail's DSN for the address Jean forwards to, the VERP address upper-cased on the way
    # back: only the token can say whom it is about
    drop(box, "gmail", bounce("gmail.eml", verp=senders[JEAN].upper(),
                              rcpt="jean.forwarded@gmail.example", message_id="<other@x>"))
    drop(box, "arf", bounce("arf-complaint.eml", verp=senders[AMINA], rcpt=AMINA,
                            message_id=ids[AMINA]))
    drop(box, "ooo", bounce("autoreply.eml", verp=senders[PETER], rcpt=PETER,
                            message_id=ids[PETER]))
    # no VERP token at all (a relay rewrote the return path): the DSN's address and
    # the original Message-ID find the row
    drop(box, "m365", bounce("microsoft365.eml", verp="bounces@mirageproject.eu",
                             rcpt=PETER, message_id=ids[PETER]))
    # dated now: soft bounces count within the window that ends at processing time
    drop(box, "full", bounce("postfix-mailbox-full.eml", verp=senders[SOFIA], rcpt=SOFIA,
                             message_id=ids[SOFIA], date=datetime.now(UTC)))
    drop(box, "delay", bounce("postfix-delay.eml", verp=senders[SOFIA], rcpt=SOFIA,
                              message_id=ids[SOFIA]))
    # a forged token: Sofia's row id with a MAC that is not ours, in a hard bounce
    forged = re.sub(r"-[0-9a-f]{20}@", "-" + "a" * 20 + "@", senders[SOFIA])
    drop(box, "forged", bounce("exim.eml", verp=forged, rcpt=SOFIA, message_id=ids[SOFIA]))
    drop(box, "stranger", bounce("exim.eml", verp="bounces@mirageproject.eu",
                                 rcpt="nobody@elsewhere.example", message_id="<x@y>",
                                 mail_id="stranger@relay.example.net"))
    drop(box, "garbage", b"\x00\xff" * 50 + b"\r\n\r\n--\x00")

    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    out = result.out
    assert f"hard bounce {MARIA} (issue {ISSUE}): 5.1.1" in out
    assert f"hard bounce {JEAN} (issue {ISSUE})" in out
    assert f"complaint {AMINA} (issue {ISSUE}): feedback report (abuse); address suppressed" \
        in out
    assert f"hard bounce {PETER} (issue {ISSUE}): 5.1.10" in out
    assert f"soft bounce {SOFIA} (issue {ISSUE}): 4.2.2" in out and "(1 of 2 within 7 days)" \
        in out
    assert "ooo.mirage-test: ignored: an automatic reply, not a bounce" in out
    assert "delay.mirage-test: ignored: a delay warning" in out
    assert "forged.mirage-test: unmatched: its VERP token is forged" in out
    assert "stranger.mirage-test: unmatched: no genuine VERP token, and its original " \
           "Message-ID is none this project sent to nobody@elsewhere.example; ignored" in out
    summary = out.strip().splitlines()[-1]
    assert summary == ("process-bounces: 10 mail(s): 3 hard, 1 soft, 1 complaint, "
                       "2 unmatched, 1 delay, 1 auto-reply, 1 ignored; "
                       "4 address(es) suppressed"), summary
    assert suppressed(project) == {MARIA: "bounce", JEAN: "bounce", AMINA: "complaint",
                                   PETER: "bounce"}
    assert sorted(events(project)) == sorted([(MARIA, "bounced"), (JEAN, "bounced"),
                                              (AMINA, "complained"), (PETER, "bounced"),
                                              (SOFIA, "soft-bounced")])
    # everything read is now seen (cur/, flag S): a second run reads nothing
    assert not list((box / "new").iterdir())
    again = run_cli("process-bounces")
    assert again.out.strip() == "process-bounces: 0 mail(s); 0 address(es) suppressed"
    # the same mails delivered again (a replay): none counts twice
    for path in (box / "cur").iterdir():
        (box / "new" / path.name.partition(":")[0]).write_bytes(path.read_bytes())
    replay = run_cli("process-bounces")
    assert replay.code == 0
    assert "7 already" in replay.out.strip().splitlines()[-1]
    assert "0 address(es) suppressed" in replay.out
    assert len(events(project)) == 5

    data = report(run_cli)
    assert data["bounces"] == {
        "hard": 3, "soft": 1, "complaints": 1, "bounce_rate": 0.6, "soft_bounce_rate": 0.2,
        "complaint_rate": 0.2, "warnings": data["bounces"]["warnings"]}
    assert [w.split(" is above")[0] for w in data["bounces"]["warnings"]] == [
        "hard bounce rate 60.00%", "complaint rate 20.00%"]
    assert set(data) == {"issue", "counts", "recipients", "bounces"}  # contract keys stay
    assert {r["email"]: r["bounce"] for r in data["recipients"]} == {
        MARIA: "hard", JEAN: "hard", AMINA: "complaint", PETER: "hard", SOFIA: "soft"}
    table = run_cli("report", SAMPLE_ISSUE)
    assert "Bounces and complaints" in table.out and "60.00%" in table.out
    assert f"warning: {ISSUE}: hard bounce rate 60.00% is above 2%" in table.err
    csv_out = run_cli("report", SAMPLE_ISSUE, "--format", "csv").out.splitlines()
    assert csv_out[0].endswith(",last_attempt_at,bounce")
    kinds = {line.split(",")[2]: line.rsplit(",", 1)[1] for line in csv_out[1:]}
    assert kinds == {MARIA: "hard", JEAN: "hard", AMINA: "complaint", PETER: "hard",
                     SOFIA: "soft"}
    period = json.loads(run_cli("report", "--period", "2000-01-01..2099-12-31", "--format",
                                "json").out)
    assert [(i["issue"], i["bounces"]) for i in period["issues"]] == [(ISSUE, 3)]
    page = project / "report.html"
    assert run_cli("report", SAMPLE_ISSUE, "--format", "html", "--out", str(page)).code == 0
    html = page.read_text(encoding="utf-8")
    assert '<section id="bounces">' in html
    assert "<b>60.00%</b><span>hard bounce rate (of sent)</span>" in html
    assert '<p class="warn">Warning: complaint rate 20.00% is above 0.3%' in html


def test_soft_bounces_suppress_after_the_limit_within_the_window(
        project: Path, run_cli: RunCli, sent: tuple[dict[str, str], dict[str, str]]) -> None:
    senders, ids = sent
    box = project / "bouncebox"
    now = datetime.now(UTC)

    def soft(n: int, age_days: float) -> None:
        drop(box, f"soft{n}", bounce("postfix-mailbox-full.eml", verp=senders[SOFIA],
                                     rcpt=SOFIA, message_id=ids[SOFIA],
                                     mail_id=f"soft{n}@mail.example.org",
                                     date=now - timedelta(days=age_days)))
        result = run_cli("process-bounces")
        assert result.code == 0, result.err

    soft(1, 20)  # outside the 7-day window of the next ones
    soft(2, 1)
    assert SOFIA not in suppressed(project)  # 1 of 2 within 7 days
    soft(3, 0)
    assert suppressed(project) == {SOFIA: "bounce"}
    with sqlite3.connect(project / ".mirage" / "tracking.sqlite") as db:
        (reason,) = db.execute("SELECT reason FROM suppressions").fetchone()
    assert reason == f"2 soft bounces within 7 days, issue {ISSUE}"
    assert report(run_cli)["bounces"]["soft"] == 1  # one recipient, three soft bounces


def test_dry_run_changes_nothing(project: Path, run_cli: RunCli,
                                 sent: tuple[dict[str, str], dict[str, str]]) -> None:
    senders, ids = sent
    box = project / "bouncebox"
    drop(box, "postfix", bounce("postfix.eml", verp=senders[MARIA], rcpt=MARIA,
                                message_id=ids[MARIA]))
    result = run_cli("process-bounces", "--dry-run")
    assert result.code == 0, result.err
    assert f"hard bounce {MARIA} (issue {ISSUE}): 5.1.1" in result.out
    assert result.out.strip().endswith("1 address(es) to suppress; dry run, nothing changed")
    assert suppressed(project) == {} and events(project) == []
    assert [p.name for p in (box / "new").iterdir()] == ["postfix.mirage-test"]


def test_run_due_processes_bounces_before_sending(
        project: Path, run_cli: RunCli, sent: tuple[dict[str, str], dict[str, str]]) -> None:
    senders, ids = sent
    drop(project / "bouncebox", "postfix", bounce("postfix.eml", verp=senders[MARIA],
                                                  rcpt=MARIA, message_id=ids[MARIA]))
    result = run_cli("run-due", "--now", "2030-01-01T00:00:00+00:00")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == ("process-bounces: 1 mail(s): 1 hard; "
                                          "1 address(es) suppressed")
    assert suppressed(project) == {MARIA: "bounce"}


def test_without_a_mailbox_process_bounces_says_what_to_set(project: Path,
                                                            run_cli: RunCli) -> None:
    config = project / "mirage.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "\nbounces:\n  verp: true\n",
                      encoding="utf-8")
    result = run_cli("process-bounces")
    assert result.code == 2
    assert result.err.strip().startswith("mirage.yaml:")
    assert "no bounce mailbox configured (set bounces.mailbox" in result.err
    assert json.loads(run_cli("report", SAMPLE_ISSUE, "--format", "json").out)["bounces"][
        "warnings"] == []


def test_reading_bounces_before_any_send_creates_no_secret(project: Path,
                                                           run_cli: RunCli) -> None:
    config = project / "mirage.yaml"
    config.write_text(config.read_text(encoding="utf-8") + BOUNCES, encoding="utf-8")
    for sub in ("new", "cur", "tmp"):
        (project / "bouncebox" / sub).mkdir(parents=True)
    drop(project / "bouncebox", "stray", bounce("postfix.eml", verp="bounces+1-aaaaaaaaaaaaaaaaaaaa"
                                                "@mirageproject.eu", rcpt=MARIA,
                                                message_id="<x@y>"))
    drop(project / "bouncebox", "huge", b"Subject: x\n\n" + b"x" * (2 * 1024 * 1024))
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    assert "stray.mirage-test: unmatched: no genuine VERP token" in result.out
    assert "huge.mirage-test: skipped: 2,097,164 bytes, too large for a bounce" in result.out
    assert not (project / ".mirage" / "secret").exists()


def test_validate_warns_when_the_bounce_domain_does_not_align(project: Path,
                                                             run_cli: RunCli) -> None:
    config = project / "mirage.yaml"
    base = config.read_text(encoding="utf-8")
    config.write_text(base + "\nbounces:\n  address: bounces@mail.mirageproject.eu\n",
                      encoding="utf-8")
    aligned = run_cli("validate", SAMPLE_ISSUE)
    assert aligned.code == 0, aligned.err
    assert "does not align" not in aligned.out + aligned.err
    config.write_text(base + "\nbounces:\n  address: bounces@bulk-sender.example\n",
                      encoding="utf-8")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    (line,) = [x for x in (result.out + result.err).splitlines() if "does not align" in x]
    assert re.match(r"^mirage\.yaml:\d+: warning: the bounce address's domain "
                    r"bulk-sender\.example does not align with the From domain "
                    r"mirageproject\.eu", line), line


def test_an_internationalised_bounce_domain_aligns_in_either_form(project: Path,
                                                                  run_cli: RunCli) -> None:
    config = project / "mirage.yaml"
    base = config.read_text(encoding="utf-8").replace("<news@mirageproject.eu>",
                                                      "<news@xn--bcher-kva.de>")
    for address in ("bounces@bücher.de", "bounces@mail.XN--BCHER-KVA.de"):
        config.write_text(base + f"\nbounces:\n  address: {address}\n", encoding="utf-8")
        result = run_cli("validate", SAMPLE_ISSUE)
        assert result.code == 0, result.err
        assert "does not align" not in result.out + result.err, address


def test_a_complaint_with_a_redacted_address_is_found_by_its_message_id(
        project: Path, run_cli: RunCli, sent: tuple[dict[str, str], dict[str, str]]) -> None:
    _, ids = sent
    # a feedback loop that redacts the reader's address and rewrites the return path
    drop(project / "bouncebox", "arf", bounce("arf-complaint.eml",
                                              verp="bounces@mirageproject.eu",
                                              rcpt="redacted@yahoo.example",
                                              message_id=ids[PETER]))
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    assert f"complaint {PETER} (issue {ISSUE})" in result.out
    assert suppressed(project) == {PETER: "complaint"}


def test_maildir_move_and_ignored_folder(project: Path, run_cli: RunCli,
                                         sent: tuple[dict[str, str], dict[str, str]]) -> None:
    senders, ids = sent
    config = project / "mirage.yaml"
    config.write_text(config.read_text(encoding="utf-8")
                      + "  processed: move\n  ignored_folder: Replies\n", encoding="utf-8")
    box = project / "bouncebox"
    drop(box, "postfix", bounce("postfix.eml", verp=senders[MARIA], rcpt=MARIA,
                                message_id=ids[MARIA]))
    drop(box, "ooo", bounce("autoreply.eml", verp=senders[PETER], rcpt=PETER,
                            message_id=ids[PETER]))
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    assert [p.name for p in (box / ".Processed" / "cur").iterdir()] == [
        "postfix.mirage-test:2,S"]
    assert [p.name for p in (box / ".Replies" / "cur").iterdir()] == ["ooo.mirage-test:2,S"]
    assert not list((box / "new").iterdir()) and not list((box / "cur").iterdir())


def test_an_unknown_format_from_a_mail_server_with_a_genuine_token_counts_softly(
        project: Path, run_cli: RunCli, sent: tuple[dict[str, str], dict[str, str]]) -> None:
    senders, _ = sent
    odd = (f"Return-Path: <>\nFrom: MAILER-DAEMON@odd.example\nTo: {senders[MARIA]}\n"
           "Subject: Notice\nMessage-ID: <odd1@odd.example>\n\nSomething went wrong.\n")
    drop(project / "bouncebox", "odd", odd.encode())
    drop(project / "bouncebox", "odd2", odd.replace(senders[MARIA], "bounces@mirageproject.eu")
         .replace("odd1@", "odd2@").encode())
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    assert f"odd.mirage-test: soft bounce {MARIA} (issue {ISSUE}): from a mail server, but " \
           "in no bounce format known (1 of 2 within 7 days)" in result.out
    assert "odd2.mirage-test: ignored: from a mail server, but in no bounce format known, " \
           "and no genuine VERP token" in result.out
    assert suppressed(project) == {}


def test_a_dsn_with_a_genuine_token_but_no_failure_it_can_read_counts_softly(
        project: Path, run_cli: RunCli, sent: tuple[dict[str, str], dict[str, str]]) -> None:
    """As a mangled plain-text bounce does (docs/guide/bounces.md); a delay stays ignored."""
    senders, _ = sent

    def dsn(report: str, mail_id: str) -> bytes:
        return (f"Return-Path: <>\nFrom: MAILER-DAEMON@odd.example\nTo: {senders[MARIA]}\n"
                f"Subject: Notice\nMessage-ID: <{mail_id}@odd.example>\nMIME-Version: 1.0\n"
                "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
                "--b\nContent-Type: text/plain\n\nSomething went wrong.\n--b\n"
                f"Content-Type: message/delivery-status\n\n{report}\n--b--\n").encode()

    drop(project / "bouncebox", "garbled", dsn("%%% not a report %%%", "g1"))
    drop(project / "bouncebox", "delayed", dsn(
        f"Reporting-MTA: dns; odd.example\n\nFinal-Recipient: rfc822; {MARIA}\n"
        "Action: delayed\nStatus: 4.4.1", "g2"))
    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    assert f"garbled.mirage-test: soft bounce {MARIA} (issue {ISSUE}): a delivery report, " \
           "but no failure in it could be read (1 of 2 within 7 days)" in result.out
    assert "delayed.mirage-test: ignored: a delay warning: the server still tries" in result.out
    assert suppressed(project) == {}


def test_the_report_page_with_bounces_passes_axe(
        project: Path, run_cli: RunCli, sent: tuple[dict[str, str], dict[str, str]]) -> None:
    """The bounces section (its warning lines included) in headless Chromium at 320 and 600
    px: no serious or critical axe-core violation."""
    from browser import BLOCKING, axe_lines, axe_violations, browser

    senders, ids = sent
    drop(project / "bouncebox", "arf", bounce("arf-complaint.eml", verp=senders[AMINA],
                                              rcpt=AMINA, message_id=ids[AMINA]))
    assert run_cli("process-bounces").code == 0
    page_path = project / "report.html"
    assert run_cli("report", SAMPLE_ISSUE, "--format", "html", "--out", str(page_path)).code == 0
    with browser() as chromium:
        page = chromium.new_page(locale="en-GB")  # type: ignore[attr-defined]
        page.goto(page_path.as_uri())
        assert page.locator("#bounces .warn").count() == 1
        blocking = []
        for width in (320, 600):
            page.set_viewport_size({"width": width, "height": 900})
            blocking += axe_lines([v for v in axe_violations(page) if v["impact"] in BLOCKING],
                                  f"report at {width}px")
        page.close()
    assert blocking == []


def test_run_due_warns_and_goes_on_when_the_bounce_mailbox_is_unreachable(
        project: Path, run_cli: RunCli) -> None:
    config = project / "mirage.yaml"
    config.write_text(config.read_text(encoding="utf-8") + BOUNCES.replace(
        "mailbox: bouncebox", "mailbox: imaps://127.0.0.1:1/INBOX\n  username_env: U\n"
        "  password_env: P"), encoding="utf-8")
    result = run_cli("run-due", "--now", "2000-01-01T00:00:00+00:00", env={"U": "u", "P": "p"})
    assert result.code == 0, result.err
    (line,) = result.err.strip().splitlines()
    assert line.startswith("bounces.mailbox: warning: bounces not processed: cannot connect "
                           "127.0.0.1:1")
    assert result.out.strip() == "run-due: nothing due at 2000-01-01T00:00:00+00:00"


def test_a_test_copy_goes_out_from_the_plain_return_path(project: Path, run_cli: RunCli,
                                                         sink: SmtpSink) -> None:
    """``send --to`` records no delivery, so no row for a VERP token to name: its MAIL FROM is
    sender.return_path even with bounces: on, and a bounce of it stays unmatched."""
    return_path = load_settings(find_config(project / "mirage.yaml")).sender.return_path
    config = use_relay(project, sink.url, paced=True)
    config.write_text(config.read_text(encoding="utf-8") + BOUNCES, encoding="utf-8")
    result = run_cli("send", SAMPLE_ISSUE, "--to", "officer@example.org")
    assert result.code == 0, result.err
    assert [(r.sender, list(r.recipients)) for r in sink.received] == [
        (return_path, ["officer@example.org"])]
    assert "+" not in return_path.partition("@")[0]  # not a VERP address
    database = project / ".mirage" / "tracking.sqlite"
    if database.exists():  # nothing recorded: no recipients row a token could name
        with sqlite3.connect(database) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            if "recipients" in tables:
                assert db.execute("SELECT count(*) FROM recipients").fetchone() == (0,)
