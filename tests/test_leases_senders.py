"""Several ``send`` processes on one issue and one PostgreSQL store (issue 12 item 6).

Real CLI processes, a real PostgreSQL server (tests/support/postgres.py) and an aiosmtpd relay
on 127.0.0.1 that counts what it receives per address: every recipient is received exactly
once, except the in-flight ones of a sender that died, which ``report`` lists as ``unknown``;
a sender that stalled past its lease stops with exit 3 and sends nothing more.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, report, use_relay
from mirage_mailer.util.database import PostgresUrl
from support.smtp_sink import Call, Gate, SmtpSink

CONCURRENCY = 4


def _slow(call: Call) -> None:
    if call.stage == "DATA":
        time.sleep(0.002)  # at most 500 messages a second: runs last seconds, anywhere


pytestmark = pytest.mark.smtp_fault(rules=[_slow])  # the `sink` fixture (conftest.py)


def _slower(call: Call) -> None:
    if call.stage == "DATA":
        time.sleep(0.01)  # a hundred messages a second: still running after a report


@pytest.fixture
def slow_sink() -> Iterator[SmtpSink]:
    server = SmtpSink(rules=[_slower])
    with server.running_in_thread():
        yield server


def _setup(project: Path, relay: str, database: PostgresUrl, readers: int,
           lease: int = 3) -> list[str]:
    config = use_relay(project, relay, timeout=10)
    edit(config, "  database: .mirage/tracking.sqlite",
         f"  database: {database}\n  lease_seconds: {lease}")
    addresses = [f"reader{n:04d}@example.org" for n in range(readers)]
    lines = ["email,name,lang"] + [f"{a},Reader {n},en" for n, a in enumerate(addresses)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return addresses


def _send(project: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE,
                             "--yes"], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(sink: SmtpSink, received: int, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 60
    while len(sink.received) < received:
        assert time.monotonic() < deadline, "the senders never got going"
        assert any(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.005)


def _wait_busy(url: PostgresUrl, pid: int) -> None:
    """Until the sender ``pid`` has messages on the wire and pending rows leased."""
    deadline = time.monotonic() + 60
    with psycopg.connect(str(url), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(CASE WHEN status = 'sending' THEN 1 END),"
                " count(CASE WHEN status = 'pending' THEN 1 END) FROM recipients"
                " WHERE lease_owner = (SELECT owner FROM senders WHERE pid = %s)",
                (pid,)).fetchone()
            if row is not None and row[0] and row[1]:
                return
            assert time.monotonic() < deadline, "the sender never got going"
            time.sleep(0.002)


def _senders(url: PostgresUrl) -> int:
    with psycopg.connect(str(url), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM senders").fetchone()
        assert row is not None
        return int(row[0])


def _claim_elsewhere(store: Any, owner: str, count: int, *, lease: int) -> list[Any]:
    """Another host's sender (cron-2, pid 4242) registered and holding ``count`` rows."""
    store.register_sender(owner, "2021-10-partners-meeting", "cron-2", 4242, lease)
    rows = store.claim(owner, "2021-10-partners-meeting", count)
    assert rows is not None and len(rows) == count
    return list(rows)


def _states(run_cli: RunCli) -> dict[str, str]:
    data = report(run_cli)
    recipients = data["recipients"]
    assert isinstance(recipients, list)
    return {r["email"]: r["status"] for r in recipients}


def test_three_senders_one_killed_every_reader_once_or_reported_unknown(
        project: Path, run_cli: RunCli, sink: SmtpSink, pg_url: PostgresUrl) -> None:
    addresses = _setup(project, sink.url, pg_url, 3000)
    procs = [_send(project) for _ in range(3)]
    _wait_for(sink, 100, procs)
    victim = procs[1]
    _wait_busy(pg_url, victim.pid)
    os.kill(victim.pid, signal.SIGKILL)  # mid-run: messages on the wire, a batch leased
    victim.wait(10)
    results = [p.communicate(timeout=120) for p in (procs[0], procs[2])]
    for p, (out, err) in zip((procs[0], procs[2]), results, strict=True):
        assert p.returncode == 0, (out, err)
        assert "Traceback" not in err
    assert any(f"1 sender(s) of this issue stopped renewing their lease ({socket.gethostname()}"
               f" pid {victim.pid})" in err for _out, err in results), results  # taken back
    states = _states(run_cli)
    counts = Counter(states.values())
    assert counts["pending"] == 0, counts  # the survivors took the dead sender's batch back
    assert set(counts) <= {"sent", "unknown"}, counts
    unknown = {a for a, s in states.items() if s == "unknown"}
    assert len(unknown) <= CONCURRENCY  # what the killed sender had on the wire
    received = Counter(sink.recipients())
    assert set(received) | unknown == set(addresses)  # nobody lost
    assert {a for a, n in received.items() if n > 1} == set()  # nobody twice
    assert set(received) - unknown == {a for a, s in states.items() if s == "sent"}
    assert _senders(pg_url) == 0  # the survivors left, and reaped the dead one


def test_a_sender_that_stalled_past_its_lease_stops_and_sends_nothing_more(
        project: Path, run_cli: RunCli, sink: SmtpSink, pg_url: PostgresUrl) -> None:
    addresses = _setup(project, sink.url, pg_url, 600)
    stalled = _send(project)
    _wait_for(sink, 50, [stalled])
    os.kill(stalled.pid, signal.SIGSTOP)  # a paused VM, a long GC: no heartbeat
    try:
        time.sleep(3.6)  # its lease (3 s) runs out
        relief = _send(project)  # reaps it, and sends everyone else
        out, err = relief.communicate(timeout=120)
        assert relief.returncode == 0, (out, err)
        assert "stopped renewing their lease" in err
    finally:
        os.kill(stalled.pid, signal.SIGCONT)
    out, err = stalled.communicate(timeout=60)
    assert stalled.returncode == 3, (out, err)
    # its heartbeat finds it reaped; or, stopped inside a transaction, the server had ended
    # its session (idle_in_transaction_session_timeout) so that the reaper never waited
    assert "lease expired" in err or "tracking database" in err, err
    assert "run the same command again" in err or "rerun" in err, err
    assert "Traceback" not in err
    states = _states(run_cli)
    unknown = {a for a, s in states.items() if s == "unknown"}
    assert len(unknown) <= CONCURRENCY
    assert set(states.values()) <= {"sent", "unknown"}
    received = Counter(sink.recipients())
    assert set(received) | unknown == set(addresses)
    assert {a for a, n in received.items() if n > 1} == set()  # its late words sent nobody


def test_sigterm_gives_the_rest_back_and_leaves(
        project: Path, run_cli: RunCli, pg_url: PostgresUrl) -> None:
    gate = Gate(after=40, timeout=8)  # the messages after the 40th wait: the send still runs
    with SmtpSink(rules=[gate]).running_in_thread() as sink:
        _sigterm_gives_the_rest_back_and_leaves(project, run_cli, sink, gate, pg_url)


def _sigterm_gives_the_rest_back_and_leaves(project: Path, run_cli: RunCli, sink: SmtpSink,
                                            gate: Gate, pg_url: PostgresUrl) -> None:
    addresses = _setup(project, sink.url, pg_url, 300, lease=60)
    proc = _send(project)
    _wait_for(sink, 40, [proc])
    running = report(run_cli)["senders"]  # an extra field while senders run
    assert isinstance(running, list) and len(running) == 1
    assert running[0]["pid"] == proc.pid and 0 <= running[0]["in_flight"] <= CONCURRENCY
    assert running[0]["lease_left"] > 50
    os.kill(proc.pid, signal.SIGTERM)
    gate.open()  # the messages on the wire finish
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (out, err)
    assert _senders(pg_url) == 0
    with psycopg.connect(str(pg_url), autocommit=True) as conn:
        leased = conn.execute("SELECT count(*) FROM recipients WHERE lease_owner IS NOT NULL"
                              ).fetchone()
        assert leased == (0,)  # a 60 s lease: the rest is free now, not in a minute
    assert "senders" not in report(run_cli)  # gone with it
    states = _states(run_cli)
    assert "pending" in states.values() and "unknown" not in states.values()
    done = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert done.code == 0, done.err
    assert Counter(sink.recipients()) == Counter(addresses)


def test_sending_processes_are_refused_on_a_shared_store(
        project: Path, run_cli: RunCli, pg_url: PostgresUrl) -> None:
    _setup(project, "smtp://127.0.0.1:9", pg_url, 3)
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: 4\n  processes: 2")
    # validate and a dry run refuse what the send would (a cron host's config passed both)
    for args in (("validate",), ("send", "--dry-run"), ("send", "--yes")):
        result = run_cli(*args[:1], SAMPLE_ISSUE, *args[1:])
        assert result.code == 2, (args, result.err)
        assert "mirage.yaml:" in result.err and "transport.processes is 2" in result.err
        assert "start several 'mirage-mailer send' commands" in result.err


def test_lease_seconds_below_two_is_refused(project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         "  database: .mirage/tracking.sqlite\n  lease_seconds: 1")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert "mirage.yaml:" in result.err and "lease_seconds" in result.err


def test_lang_and_limit_claim_only_their_rows(
        project: Path, run_cli: RunCli, sink: SmtpSink, pg_url: PostgresUrl) -> None:
    _setup(project, sink.url, pg_url, 0)
    lines = ["email,name,lang"] + [f"reader{n:02d}@example.org,Reader {n},"
                                   f"{'fr' if n % 3 == 0 else 'en'}" for n in range(12)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    french = {f"reader{n:02d}@example.org" for n in range(0, 12, 3)}
    done = run_cli("send", SAMPLE_ISSUE, "--yes", "--lang", "fr")
    assert done.code == 0, done.err
    assert set(sink.recipients()) == french
    done = run_cli("send", SAMPLE_ISSUE, "--yes", "--limit", "3")
    assert done.code == 0, done.err
    assert set(sink.recipients()[len(french):]) == {  # the plan's first three
        "reader01@example.org", "reader02@example.org", "reader04@example.org"}
    states = _states(run_cli)
    assert list(states.values()).count("pending") == 12 - len(french) - 3
    with psycopg.connect(str(pg_url), autocommit=True) as conn:  # nothing held back
        assert conn.execute("SELECT count(*) FROM recipients WHERE lease_owner IS NOT NULL"
                            ).fetchone() == (0,)


def test_a_sender_whose_database_connection_dies_stops_with_one_line(
        project: Path, run_cli: RunCli, slow_sink: SmtpSink, pg_url: PostgresUrl) -> None:
    addresses = _setup(project, slow_sink.url, pg_url, 300)
    proc = _send(project)
    _wait_for(slow_sink, 20, [proc])
    with psycopg.connect(str(pg_url), autocommit=True) as conn:  # the server drops it
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE application_name = 'mirage-mailer' AND pid <> pg_backend_pid()")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    assert "Traceback" not in err
    problems = [line for line in err.splitlines() if str(pg_url) in line]
    assert problems and "rerun" in problems[0], err
    time.sleep(3.2)  # its lease runs out: the rerun takes its rows back
    done = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert done.code == 0, done.err
    states = _states(run_cli)
    unknown = {a for a, s in states.items() if s == "unknown"}
    assert len(unknown) <= CONCURRENCY and set(states.values()) <= {"sent", "unknown"}
    received = Counter(slow_sink.recipients())
    assert set(received) | unknown == set(addresses)
    assert {a for a, n in received.items() if n > 1} == set()


def test_a_senders_progress_counts_only_what_it_can_still_claim(
        project: Path, run_cli: RunCli, sink: SmtpSink, pg_url: PostgresUrl) -> None:
    """Another live sender holds 50 of the 199 pending rows: this sender's progress total is
    the 149 it can take, not the plan's 199, so its bar ends full and its figures add up."""
    from mirage_mailer.services.loader import open_project
    from mirage_mailer.services.sending import Progress, SendOptions, prepare, send
    from mirage_mailer.store import open_store

    _setup(project, sink.url, pg_url, 200, lease=60)
    assert run_cli("send", SAMPLE_ISSUE, "--yes", "--limit", "1").code == 0  # plans all
    with open_store(pg_url) as other:
        _claim_elsewhere(other, "other", 50, lease=600)
    seen: list[tuple[int, int]] = []

    def progress(totals: Progress) -> None:
        seen.append((totals.done, totals.total))

    opened = open_project(project / "mirage.yaml", project / SAMPLE_ISSUE)
    outcome = send(prepare(opened, SendOptions()), SendOptions(), progress)
    assert outcome.this_run.sent == 149
    assert seen and {total for _done, total in seen} == {149}, seen[:3]
    assert seen[-1] == (149, 149)
    assert outcome.elsewhere == 50  # and the summary says whose the rest is


def test_report_and_send_say_which_sender_died_and_what_became_of_its_rows(
        project: Path, run_cli: RunCli, sink: SmtpSink, pg_url: PostgresUrl) -> None:
    """A sender on another host died with 2 messages on the wire and 3 more leased: ``report``
    names it and says what will happen; the next ``send`` takes them back and says so; the
    ``report`` after that still says why those 2 are ``unknown``."""
    from mirage_mailer.store import open_store

    _setup(project, sink.url, pg_url, 20, lease=60)
    assert run_cli("send", SAMPLE_ISSUE, "--yes", "--limit", "1").code == 0  # plans all
    with open_store(pg_url) as dead:
        rows = _claim_elsewhere(dead, "dead", 5, lease=60)
        stamp = dead.stamp()
        assert dead.mark("dead", [], [(r.id, f"<m{r.id}@x>", stamp) for r in rows[:2]])
    with psycopg.connect(str(pg_url), autocommit=True) as conn:
        conn.execute("UPDATE senders SET expires_at = clock_timestamp() - interval '5 s'")

    before = run_cli("report", SAMPLE_ISSUE)
    assert before.code == 0, before.err
    [line] = [x for x in before.out.splitlines() if "cron-2 pid 4242" in x]
    assert "stopped renewing its lease" in line and "running" not in line, line
    assert "2 message(s) it had on the wire are unknown" in line, line
    assert "3 other recipient(s) it held go back to the pool at the next send" in line, line

    done = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert done.code == 0, done.err
    assert ("1 sender(s) of this issue stopped renewing their lease (cron-2 pid 4242): 2 "
            "recipient(s) they had on the wire are unknown") in done.err, done.err
    assert len(sink.recipients()) == 1 + 17  # the 3 it held were sent, not its 2 on the wire

    after = run_cli("report", SAMPLE_ISSUE)
    [line] = [x for x in after.out.splitlines() if "cron-2 pid 4242" in x]
    assert "2 recipient(s) unknown" in line and "--resend-unknown" in line, line
    again = run_cli("send", SAMPLE_ISSUE, "--yes", "--resend-unknown")
    assert again.code == 0, again.err
    assert not [x for x in run_cli("report", SAMPLE_ISSUE).out.splitlines()
                if "cron-2" in x]  # resent: nothing left to explain
