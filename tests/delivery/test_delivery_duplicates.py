"""Issue 8, item 2: a relay that stores a message and then never replies must not get it twice.

End to end: ``send`` and ``report`` as subprocesses, a real SQLite store, an aiosmtpd relay
that queues the message and then drops the connection or stalls past the client's timeout.
What the relay stored is reconciled against the report: every address stored twice is
``unknown``, nobody is lost (each recipient is sent, unknown, or pending for the next run), a
rerun leaves the unknown ones alone, and only ``--resend-unknown`` sends them again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, report, statuses, use_relay
from support.smtp_sink import (
    SmtpSink,
    StoreThenFail,
    store_then_drop,
    store_then_stall,
)

COUNT = 300
FRACTION = 0.05


def point_at(project: Path, sink: SmtpSink, count: int) -> list[str]:
    """A list of ``count`` readers and a transport to ``sink`` with a 1 s command timeout."""
    use_relay(project, sink.url, timeout=1)
    addresses = [f"reader{n:04d}@example.org" for n in range(count)]
    lines = ["email,name,lang"] + [f"{a},Reader {n},en" for n, a in enumerate(addresses)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return addresses


def reconcile(sink: SmtpSink, states: dict[str, str], addresses: list[str]) -> set[str]:
    """The contract's checks; returns the addresses reported unknown."""
    stored = Counter(sink.recipients())
    unknown = {a for a, s in states.items() if s == "unknown"}
    twice = {a for a, n in stored.items() if n > 1}
    assert twice <= unknown, f"{len(twice - unknown)} readers got two copies, not reported"
    assert set(states) == set(addresses)
    assert set(states.values()) <= {"sent", "unknown", "pending"}  # nobody lost
    assert all(stored[a] == 1 for a, s in states.items() if s == "sent")
    return unknown


@pytest.fixture
def relay(request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    sink = SmtpSink(rules=[request.param])
    with sink.running_in_thread():
        yield sink


@pytest.mark.parametrize("relay", [store_then_drop(FRACTION), store_then_stall(FRACTION)],
                         ids=["store-then-drop", "store-then-stall"], indirect=True)
def test_no_reply_after_the_end_of_data_is_unknown_never_resent(
        project: Path, run_cli: RunCli, relay: SmtpSink) -> None:
    [fault] = relay.rules
    assert isinstance(fault, StoreThenFail)
    addresses = point_at(project, relay, COUNT)

    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    assert fault.hit, "the fault never fired"
    states = statuses(run_cli)
    unknown = reconcile(relay, states, addresses)
    assert unknown == fault.hit  # exactly the messages whose reply never came
    assert all(Counter(relay.recipients())[a] == 1 for a in addresses)  # nobody got two
    assert f"unknown {len(unknown)}" in result.out
    rows = report(run_cli)["recipients"]
    assert isinstance(rows, list)
    for row in rows:
        if row["status"] == "unknown":  # the report says why, and the attempt is counted
            assert "after the end of DATA" in row["smtp_response"], row
            assert row["attempts"] >= 1 and row["last_attempt_at"], row

    stored_before = Counter(relay.recipients())
    rerun = run_cli("send", SAMPLE_ISSUE, "--yes")  # without --resend-unknown: nothing resent
    assert rerun.code == 0, rerun.err
    assert Counter(relay.recipients()) == stored_before
    assert statuses(run_cli) == states

    relay.rules.clear()  # the relay recovers; the user asks for the unknown ones again
    resend = run_cli("send", SAMPLE_ISSUE, "--yes", "--resend-unknown")
    assert resend.code == 0, resend.err
    stored = Counter(relay.recipients())
    assert {a for a, n in stored.items() if n > 1} == unknown  # the doubles were all reported
    assert set(statuses(run_cli).values()) == {"sent"}
