"""`send`, `report`, `unsubscribe` and `run-due` end to end: CLI subprocesses against a real
SMTP server (aiosmtpd on 127.0.0.1, port 0, in a thread) and a real SQLite store."""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from email import policy
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, report, statuses, use_relay
from support.smtp_sink import (
    Call,
    Gate,
    Rule,
    SmtpSink,
    drop_at_data_command,
    fail_times,
    refuse,
)

ISSUE = "2021-10-partners-meeting"
SAMPLE = ["maria.georgiou@example.org", "jean.dupont@example.org", "amina.haddad@example.org",
          "peter.novak@example.org", "sofia.rossi@example.org"]


def fast_retries(project: Path) -> None:
    """Retry quickly: the tests must stay short."""
    edit(project / "mirage.yaml", "  timeout: 30", "  timeout: 5")


def write_list(project: Path, count: int) -> list[str]:
    addresses = [f"reader{n:04d}@example.org" for n in range(count)]
    lines = ["email,name,lang"] + [f"{a},Reader {n},en" for n, a in enumerate(addresses)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return addresses


def send_in_background(project: Path, sink: SmtpSink, *,
                       until_received: int) -> subprocess.Popen[bytes]:
    """``send --yes`` in a subprocess, returned once the sink has that many messages (or 30 s
    have passed); the caller ends it."""
    proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE,
                             "--yes"], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while len(sink.received) < until_received and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def test_every_recipient_gets_exactly_one_message(project: Path, run_cli: RunCli,
                                                  sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    assert result.out.startswith(f"{ISSUE}: sent 5, failed 0, pending 0, unknown 0, "
                                 "suppressed 0, invalid 0; this run: sent 5, failed 0 in ")
    assert sorted(sink.recipients()) == sorted(SAMPLE)
    links = set()
    for received in sink.received:
        message = email.message_from_bytes(received.data, policy=policy.default)
        assert message["To"].addresses[0].addr_spec == received.recipients[0]
        for header in ("From", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe"):
            assert message[header], header
        assert received.sender == "news@mirageproject.eu"
        html = message.get_body(("html",))
        assert html is not None
        link = re.search(r'href="(mailto:info@mirageproject\.eu\?subject=unsubscribe[^"]+)"',
                         html.get_content())
        assert link is not None
        links.add(link.group(1))
    assert len(links) == 5
    assert sink.connections < len(sink.received) or sink.connections == 1
    data = report(run_cli)
    assert data["counts"] == {"sent": 5, "failed": 0, "pending": 0, "suppressed": 0,
                              "invalid": 0, "unknown": 0, "withdrawn": 0}
    first = data["recipients"][0]  # type: ignore[index]
    assert set(first) >= {"email", "status", "attempts", "message_id", "smtp_code",
                          "smtp_response", "last_attempt_at"}
    assert first["smtp_code"] == 250 and first["attempts"] == 1
    again = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert again.code == 0
    assert again.out.strip().endswith("; nothing to send")
    assert len(sink.received) == 5


@pytest.mark.smtp_fault(rules=[refuse("peter.novak@example.org",
                                       "550 5.1.1 <peter.novak>: no mailbox")])
def test_550_marks_only_that_recipient_failed(project: Path, run_cli: RunCli,
                                              sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 1, result.err
    assert "sent 4, failed 1" in result.out
    data = report(run_cli)
    failed = [r for r in data["recipients"] if r["status"] == "failed"]  # type: ignore[union-attr]
    assert [(r["email"], r["smtp_code"], r["smtp_response"]) for r in failed] == [
        ("peter.novak@example.org", 550, "5.1.1 <peter.novak>: no mailbox")]
    rerun = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert rerun.code == 0  # the failure was recorded by the earlier run, not this one
    assert len(sink.received) == 4


@pytest.mark.smtp_fault(rules=[fail_times(1, "451 4.3.0 Try again later",
                                          address="jean.dupont@example.org")])
def test_451_is_retried_and_sent_once(project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    assert Counter(sink.recipients())["jean.dupont@example.org"] == 1
    jean = next(r for r in report(run_cli)["recipients"]  # type: ignore[attr-defined]
                if r["email"] == "jean.dupont@example.org")
    assert (jean["status"], jean["attempts"]) == ("sent", 2)


@pytest.mark.smtp_fault(rules=[drop_at_data_command(1, address="amina.haddad@example.org")])
def test_connection_dropped_before_the_end_of_data_is_recovered(project: Path, run_cli: RunCli,
                                                  sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    assert sorted(sink.recipients()) == sorted(SAMPLE)
    assert set(statuses(run_cli).values()) == {"sent"}


@pytest.mark.smtp_fault(auth=("mirage", "right"), auth_required=True, auth_require_tls=False)
def test_auth_refused_exits_3_and_changes_nobody(project: Path, run_cli: RunCli,
                                                 sink: SmtpSink) -> None:
    use_relay(project, sink.url, extra="\n  allow_plaintext_auth: true")
    env = {"MIRAGE_SMTP_USER": "mirage", "MIRAGE_SMTP_PASSWORD": "wrong"}
    result = run_cli("send", SAMPLE_ISSUE, "--yes", env=env)
    assert result.code == 3, result.err
    assert len(result.err.strip().splitlines()[-1]) < 330  # one line, the relay's host:port
    assert "auth" in result.err.lower()
    assert sink.received == []
    assert set(statuses(run_cli).values()) <= {"pending"}
    ok = run_cli("send", SAMPLE_ISSUE, "--yes",
                 env={"MIRAGE_SMTP_USER": "mirage", "MIRAGE_SMTP_PASSWORD": "right"})
    assert ok.code == 0, ok.err
    assert sorted(sink.recipients()) == sorted(SAMPLE)


def test_unreachable_server_exits_3(project: Path, run_cli: RunCli) -> None:
    probe = SmtpSink()
    with probe.running_in_thread():
        url = probe.url  # a port that was just free and is closed again below
    use_relay(project, url, paced=True)
    started = time.monotonic()
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 3, result.err
    assert time.monotonic() - started < 45
    assert set(statuses(run_cli).values()) <= {"pending"}


def test_suppressed_addresses_never_receive(project: Path, run_cli: RunCli,
                                            sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    assert run_cli("unsubscribe", "Jean.Dupont@EXAMPLE.org").code == 0
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    assert "jean.dupont@example.org" not in sink.recipients()
    assert statuses(run_cli)["jean.dupont@example.org"] == "suppressed"
    test_copy = run_cli("send", SAMPLE_ISSUE, "--to", "jean.dupont@example.org")
    assert test_copy.code == 0  # an explicit test copy is the officer's own choice
    assert len(sink.received) == 5


def test_dry_run_and_test_copy_leave_the_store_untouched(project: Path, run_cli: RunCli,
                                                         sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    assert run_cli("send", SAMPLE_ISSUE, "--yes", "--limit", "2").code == 0
    database = project / ".mirage/tracking.sqlite"

    def snapshot() -> list[tuple[object, ...]]:
        with sqlite3.connect(database) as conn:
            return (conn.execute("SELECT * FROM recipients ORDER BY id").fetchall()
                    + conn.execute("SELECT * FROM events ORDER BY id").fetchall())

    before = snapshot()
    dry = run_cli("send", SAMPLE_ISSUE, "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.strip() == (f"{ISSUE}: dry run, nothing sent: would send 3 (en: 2, fr: 1); "
                               "already sent 2, suppressed 0, invalid 0, failed 0, unknown 0")
    test = run_cli("send", SAMPLE_ISSUE, "--to", "officer@example.org", "--lang", "fr")
    assert test.code == 0, test.err
    assert snapshot() == before
    assert len(sink.received) == 3
    copy = email.message_from_bytes(sink.received[-1].data, policy=policy.default)
    assert copy["Subject"].startswith("[TEST] Nouvelles de MIraGE")
    assert copy["To"] == "officer@example.org"


def test_invalid_rows_are_recorded_and_the_rest_sent(project: Path, run_cli: RunCli,
                                                     sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    with (project / "lists/subscribers.csv").open("a", encoding="utf-8") as handle:
        handle.write("not-an-address,Broken,en,\nMARIA.georgiou@example.org,Dup,en,\n")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    assert "sent 5, failed 0, pending 0, unknown 0, suppressed 0, invalid 1" in result.out
    assert ("lists/subscribers.csv:7: 'not-an-address' is not a valid e-mail address: An email "
            "address must have an @-sign. (correct the address or delete the row) [skipped, "
            "recorded as invalid]") in result.err.splitlines()
    assert statuses(run_cli)["not-an-address"] == "invalid"
    assert sorted(sink.recipients()) == sorted(SAMPLE)


def test_report_of_an_unsent_issue_is_zero(run_cli: RunCli) -> None:
    assert report(run_cli) == {"issue": ISSUE, "counts": {
        "sent": 0, "failed": 0, "pending": 0, "suppressed": 0, "invalid": 0, "unknown": 0,
        "withdrawn": 0},
        "recipients": []}
    everything = run_cli("report", "--format", "json")
    assert json.loads(everything.out) == []


def _slow(delay: float) -> Rule:
    """Accept every message after ``delay`` seconds: a slow relay (blocks the sink's thread)."""

    def rule(call: Call) -> None:
        if call.stage == "DATA":
            time.sleep(delay)
        return None

    return rule


@pytest.mark.smtp_fault(rules=[_slow(0.02)])
def test_sigkill_mid_send_then_rerun_loses_and_doubles_nobody(project: Path, run_cli: RunCli,
                                                              sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: 2")
    addresses = write_list(project, 120)
    proc = send_in_background(project, sink, until_received=30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    received_before = Counter(sink.recipients())
    assert 0 < len(received_before) < 120
    states = statuses(run_cli)
    assert set(states.values()) <= {"sent", "pending", "unknown"}
    assert sum(s == "unknown" for s in states.values()) <= 2  # at most `concurrency`
    assert all(states[a] == "sent" for a in received_before if states[a] != "unknown")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    unknown = [a for a, s in statuses(run_cli).items() if s == "unknown"]
    resend = run_cli("send", SAMPLE_ISSUE, "--yes", "--resend-unknown")
    assert resend.code == 0, resend.err
    final = Counter(sink.recipients())
    assert set(final) == set(addresses)
    doubled = {a for a, n in final.items() if n > 1}
    assert doubled <= set(unknown)
    assert set(statuses(run_cli).values()) == {"sent"}


@pytest.mark.smtp_fault(rules=[_slow(0.05)])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_finishes_in_flight_messages_and_a_rerun_resumes(
        project: Path, run_cli: RunCli, sink: SmtpSink, sig: signal.Signals) -> None:
    use_relay(project, sink.url)
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: 2")
    addresses = write_list(project, 40)
    proc = send_in_background(project, sink, until_received=5)
    try:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    # the contract: 130 for SIGINT, 143 for SIGTERM, so cron sees the run did not finish
    assert proc.returncode == 128 + sig, err.decode()
    name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert f"stopped by {name}".encode() in out and b"pending: rerun send to resume" in out
    received = Counter(sink.recipients())
    assert 5 <= len(received) < 40 and max(received.values()) == 1
    states = statuses(run_cli)
    # in-flight messages finished and were recorded: nothing is left unknown
    assert {a for a, s in states.items() if s == "sent"} == set(received)
    assert {s for a, s in states.items() if a not in received} == {"pending"}
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    assert Counter(sink.recipients()) == Counter(addresses)  # everyone once, nobody twice
    assert set(statuses(run_cli).values()) == {"sent"}


def _signalled_while_planning(project: Path, rows: int, sig: signal.Signals,
                              *command: str) -> tuple[int, str, str]:
    """``command`` (default ``send SAMPLE_ISSUE --yes``) on a list of ``rows`` readers, sent
    ``sig`` once the store exists (made as planning begins): its exit code, stdout, stderr."""
    write_list(project, rows)
    proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer",
                             *(command or ("send", SAMPLE_ISSUE, "--yes"))], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        store = project / ".mirage/tracking.sqlite"
        while not store.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(sig)
        out, errors = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, out, errors


def _nothing_sent_then_a_rerun_sends(project: Path, run_cli: RunCli, errors: str,
                                     stopped_by: str) -> None:
    assert errors.splitlines()[-1] == (f"mirage-mailer: stopped by {stopped_by} before "
                                       "sending began: nothing was sent (a rerun plans again "
                                       "and sends)")
    assert not list((project / "outbox/new").glob("*"))
    rerun = run_cli("send", SAMPLE_ISSUE, "--yes", "--limit", "3")
    assert rerun.code == 0, rerun.err
    assert len(list((project / "outbox/new").iterdir())) == 3


def test_sigterm_while_planning_exits_143_sends_nothing_and_a_rerun_plans_again(
        project: Path, run_cli: RunCli) -> None:
    """Planning a long list takes seconds before the delivery loop (and its handlers) runs;
    a SIGTERM then (systemd stopping cron's job) used to kill the process by the default
    action (-15, no line), not stop it as the contract says."""
    code, out, errors = _signalled_while_planning(project, 200_000, signal.SIGTERM)
    assert code == 143, errors
    assert out == ""
    _nothing_sent_then_a_rerun_sends(project, run_cli, errors, "SIGTERM")
    assert report(run_cli, SAMPLE_ISSUE)["counts"] == {  # type: ignore[index]
        "sent": 3, "failed": 0, "pending": 199_997, "suppressed": 0, "invalid": 0,
        "unknown": 0, "withdrawn": 0}


def test_ctrl_c_while_planning_exits_130_and_says_plainly_that_nothing_was_sent(
        project: Path, run_cli: RunCli) -> None:
    """Ctrl-C while a long list is planned said only "aborted" (click's word for the
    KeyboardInterrupt), where SIGTERM says in one line that nothing was sent."""
    code, out, errors = _signalled_while_planning(project, 30_000, signal.SIGINT)
    assert code == 130, errors
    assert out == "" and "Traceback" not in errors
    _nothing_sent_then_a_rerun_sends(project, run_cli, errors, "Ctrl-C")


@pytest.mark.smtp_fault(rules=[Gate(after=3)])
def test_address_unsubscribed_during_the_send_is_not_mailed(project: Path, run_cli: RunCli,
                                                             sink: SmtpSink) -> None:
    """The row was read (and its message maybe built) before the reader unsubscribed; the
    claim right before transmission sees the suppression and withdraws it."""
    use_relay(project, sink.url)
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: 1")
    addresses = write_list(project, 40)
    gate = sink.rules[0]
    assert isinstance(gate, Gate)
    proc = send_in_background(project, sink, until_received=3)
    try:
        assert run_cli("unsubscribe", addresses[-1]).code == 0  # the 4th waits at the gate
        gate.open()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()
    assert 3 <= len(sink.received) < 40  # the unsubscription came while the send was running
    assert Counter(sink.recipients()) == Counter(addresses[:-1])
    states = statuses(run_cli)
    assert states[addresses[-1]] == "suppressed"
    assert set(states.values()) == {"sent", "suppressed"}


# An hour after the sample's send_at: a project that has never sent from here sends only an
# issue due within the last 24 hours (test_project_moved.py).
FIRST_HOUR = "2021-10-29T10:00:00+02:00"


@pytest.mark.smtp_fault(rules=[Gate(after=1)])
def test_run_due_twice_at_once_one_sends_other_exits_3(project: Path, run_cli: RunCli,
                                                       sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: 1")
    write_list(project, 40)
    gate = sink.rules[0]
    assert isinstance(gate, Gate)
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:00:00+02:00")
    first = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "run-due", "--now",
                              FIRST_HOUR], cwd=project,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not sink.received and time.monotonic() < deadline:
        time.sleep(0.01)
    second = run_cli("run-due")  # while the first waits at the gate for its second 250
    gate.open()
    out, errors = first.communicate(timeout=60)
    assert first.returncode == 0, errors
    assert second.code == 3
    assert "run-due is already running (pid" in second.err
    assert f"{ISSUE}: sent 40, failed 0, pending 0" in out
    assert len(sink.received) == 40
    third = run_cli("run-due")
    assert third.code == 0
    assert third.out.startswith("run-due: nothing due at ")


@pytest.mark.smtp_fault(rules=[_slow(0.05)])
def test_run_due_stopped_by_sigterm_exits_143_and_starts_no_further_issue(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: 1")
    write_list(project, 40)
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:00:00+02:00")
    later = project / "issues/2021-11-later"
    shutil.copytree(project / SAMPLE_ISSUE, later)
    edit(later / "issue.yaml", "send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:30:00+02:00")
    proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "run-due", "--now",
                             FIRST_HOUR], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(sink.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        out, errors = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, errors  # cron sees that the run did not finish
    assert "stopped by SIGTERM" in out
    assert "pending: rerun run-due to resume" in out and "rerun send" not in out
    assert 3 <= len(sink.received) < 40
    assert "2021-11-later" not in out
    assert report(run_cli, "issues/2021-11-later")["recipients"] == []


def test_run_due_stopped_while_planning_says_it_of_that_issue_only(
        project: Path, run_cli: RunCli) -> None:
    """run-due's stop while it plans an issue is that issue's: "nothing was sent" of the
    whole run was said even when an earlier issue of the same run had gone out."""
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:00:00+02:00")
    code, out, errors = _signalled_while_planning(project, 30_000, signal.SIGTERM, "run-due",
                                                  "--now", FIRST_HOUR)
    assert code == 143, errors
    assert out == "" and "Traceback" not in errors
    assert errors.splitlines()[-1] == (f"{ISSUE}: stopped by SIGTERM before sending began: "
                                       "nothing of this issue was sent (the next run plans "
                                       "it again)")
    assert not list((project / "outbox/new").glob("*"))


def test_run_due_skips_future_issues(project: Path, run_cli: RunCli) -> None:
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2031-10-29T09:00:00+02:00")
    result = run_cli("run-due", "--now", "2030-01-01T00:00:00Z")
    assert result.code == 0
    assert result.out.strip() == "run-due: nothing due at 2030-01-01T00:00:00+00:00"
    due = run_cli("run-due", "--now", "2031-10-29T10:00:00+02:00")
    assert due.code == 0, due.err
    assert len(list((project / "outbox/new").iterdir())) == 5


def test_maildir_default_delivers_parseable_messages(project: Path, run_cli: RunCli) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    files = list((project / "outbox/new").iterdir())
    assert len(files) == 5
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert message.get_content_type() == "multipart/alternative"
    assert not list((project / "outbox/tmp").iterdir())


def test_real_send_without_terminal_needs_yes(project: Path, run_cli: RunCli) -> None:
    result = run_cli("send", SAMPLE_ISSUE)
    assert result.code == 2
    assert result.err.strip().endswith(
        "send: refusing a real send without --yes when not on a terminal (add --yes (cron "
        "jobs), or --dry-run to see what would be sent)")
    assert not (project / "outbox").exists()
