"""``send`` end to end against a relay that takes one message a connection and hangs up
after its 250 (some relays and ESP gateways do, silently or after 221/421).

Our next MAIL, written before the hang-up arrives, finds the link gone: that is no attempt
of the recipient's. Every recipient is ``sent`` with one attempt in the report, the store's
events and the summary, even with ``max_attempts: 1``; a drop after the end of DATA stays
``unknown`` and a rerun sends nobody again. Before, 200 messages took about 340 attempts
and, with ``max_attempts: 1``, a share of the list was left pending.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, report, statuses, use_relay
from support.processes import send_killed_after, states_after_kill
from support.smtp_sink import CloseAfterEach, SmtpSink

ISSUE_ID = SAMPLE_ISSUE.rsplit("/", 1)[1]
READERS = [f"reader{n:03d}@example.org" for n in range(60)]


def use_readers(project: Path, sink: SmtpSink) -> None:
    """The READERS, one attempt each at most: a hang-up counted would leave one pending."""
    config = use_relay(project, sink.url, timeout=5)
    edit(config, "  max_attempts: 5", "  max_attempts: 1")
    lines = ["email,name,lang"] + [f"{a},Reader {n},en" for n, a in enumerate(READERS)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def events(project: Path) -> Counter[tuple[str, str]]:
    with sqlite3.connect(f"file:{project / '.mirage/tracking.sqlite'}?mode=ro",
                         uri=True) as db:
        rows = db.execute("SELECT email, kind FROM events WHERE issue = ?", (ISSUE_ID,))
        return Counter((email, kind) for email, kind in rows if kind != "queued")


@pytest.mark.parametrize("farewell", [None, "221 2.0.0 Bye", "421 4.4.2 closing"],
                         ids=["silent", "221", "421"])
def test_every_reader_is_sent_with_one_attempt(project: Path, run_cli: RunCli,
                                               farewell: str | None) -> None:
    sink = SmtpSink(rules=[CloseAfterEach(farewell)])
    with sink.running_in_thread():
        use_readers(project, sink)
        result = run_cli("send", SAMPLE_ISSUE, "--yes", timeout=120)
        received = Counter(sink.recipients())
    assert result.code == 0, result.err
    assert "this run: sent 60, failed 0" in result.out, result.out
    assert "pending" not in result.out.splitlines()[-1].partition("this run:")[2]
    data = report(run_cli)
    assert data["counts"]["sent"] == 60 and data["counts"]["unknown"] == 0  # type: ignore[index]
    assert data["counts"]["pending"] == 0  # type: ignore[index]
    rows = {r["email"]: r for r in data["recipients"]}  # type: ignore[attr-defined]
    assert {e: (r["status"], r["attempts"]) for e, r in rows.items()} == {
        e: ("sent", 1) for e in READERS}
    assert events(project) == Counter({(e, "sent"): 1 for e in READERS})  # no deferral
    assert received == Counter(READERS)


def test_a_drop_after_the_end_of_data_is_unknown_and_never_sent_twice(
        project: Path, run_cli: RunCli) -> None:
    rule = CloseAfterEach(drop=0.2)
    sink = SmtpSink(rules=[rule])
    with sink.running_in_thread():
        use_readers(project, sink)
        for _ in range(2):  # the run, and the rerun a cron job would make
            result = run_cli("send", SAMPLE_ISSUE, "--yes", timeout=120)
            assert result.code == 0, result.err
        received = Counter(sink.recipients())
    assert rule.dropped
    rows = {r["email"]: r for r in report(run_cli)["recipients"]}  # type: ignore[attr-defined]
    assert {e for e, r in rows.items() if r["status"] == "unknown"} == rule.dropped
    assert {e for e, r in rows.items() if r["status"] == "sent"} == set(READERS) - rule.dropped
    assert all(r["attempts"] == 1 for r in rows.values()), rows
    assert received == Counter(READERS)  # everyone once: the unknown ones were not re-sent


def test_sigkill_while_the_relay_hangs_up_loses_nobody_and_doubles_only_unknown(
        project: Path, run_cli: RunCli) -> None:
    """A message offered again on a fresh link is still under its first claim: a send killed
    at any moment (while it learns the relay's limit, re-offers, or opens a link a message)
    leaves at most ``concurrency`` readers unknown besides the relay's own drops after DATA,
    nobody the relay has is left pending for a rerun to mail again, and the reruns double
    only readers the report lists as unknown."""
    concurrency = 3
    rule = CloseAfterEach("421 4.4.2 closing", gap=0.002, drop=0.08, per_link=2)
    sink = SmtpSink(rules=[rule])
    readers = [f"reader{n:03d}@example.org" for n in range(80)]
    rng = random.Random(5)
    unknown: set[str] = set()
    with sink.running_in_thread():
        use_relay(project, sink.url, timeout=2, concurrency=concurrency)
        lines = ["email,name,lang"] + [f"{a},Reader {n},en" for n, a in enumerate(readers)]
        (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n",
                                                       encoding="utf-8")
        for _ in range(4):
            # the first links: hang-ups not learnt yet
            target = len(sink.received) + rng.randint(1, 8)
            send_killed_after(project, SAMPLE_ISSUE, lambda: len(sink.received), target, rng,
                              poll=0.0005)
            states = states_after_kill(project, ISSUE_ID)
            dropped = set(rule.dropped)
            new = {a for a, s in states.items() if s == "unknown"} - unknown
            assert len(new - dropped) <= concurrency, new
            unknown |= new
            have = set(sink.recipients())
            assert {a for a in have if states[a] not in ("sent", "unknown")} == set()
            assert set(states.values()) <= {"sent", "pending", "unknown"}
        assert run_cli("send", SAMPLE_ISSUE, "--yes", timeout=120).code == 0
        last = statuses(run_cli)
        received = Counter(sink.recipients())
    finished = {a for a, s in last.items() if s == "unknown"}
    assert finished >= unknown and finished - unknown <= set(rule.dropped)
    assert set(last) == set(readers) and set(last.values()) <= {"sent", "unknown"}
    sent = {a for a, s in last.items() if s == "sent"}
    assert all(received[a] == 1 for a in sent)  # a sent reader has it, once
    assert {a for a, n in received.items() if n > 1} <= finished
