"""An ``unknown`` row (the relay may have the message) keeps saying so until it is resent.

Outside audit 13f, F3: ``--resend-unknown`` put every unknown row back to ``pending`` before
the lists were read, so a reader briefly out of the list became ``withdrawn``, and once back,
a plain ``send`` mailed them again while ``report`` said only ``sent``: a duplicate that the
report did not list as ``unknown`` (DESIGN: every duplicate a reader receives is one the
report lists as unknown).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, statuses, use_relay
from support.faults import Call, Reply
from support.smtp_sink import SmtpSink, StoreThenFail

READERS = [f"r{n}@example.org" for n in range(1, 5)]


def write_readers(project: Path, readers: list[str]) -> None:
    lines = ["email,name,lang"] + [f"{a},R {n},en" for n, a in enumerate(readers)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


class DropFor(StoreThenFail):
    """Queue the message for ``address`` once, then drop the connection without a reply."""

    def __init__(self, address: str) -> None:
        super().__init__(1.0)
        self.address = address

    def __call__(self, call: Call) -> Reply | None:
        if call.address != self.address:
            return None
        return super().__call__(call)


@pytest.fixture
def relay() -> Iterator[SmtpSink]:
    sink = SmtpSink(rules=[DropFor("r3@example.org")])
    with sink.running_in_thread():
        yield sink


def sent_with_r3_unknown(project: Path, run_cli: RunCli, relay: SmtpSink,
                         *args: str) -> None:
    """The issue sent to READERS (``args``: e.g. a --limit); the relay kept r3's message and
    never answered, so r3 is ``unknown``."""
    use_relay(project, relay.url, timeout=1)
    write_readers(project, READERS)
    assert run_cli("send", SAMPLE_ISSUE, "--yes", *args).code == 0
    assert statuses(run_cli)["r3@example.org"] == "unknown"


def test_an_unknown_reader_out_of_the_list_during_a_resend_stays_unknown(
        project: Path, run_cli: RunCli, relay: SmtpSink) -> None:
    sent_with_r3_unknown(project, run_cli, relay)

    write_readers(project, [a for a in READERS if a != "r3@example.org"])  # a list clean-up
    resend = run_cli("send", SAMPLE_ISSUE, "--yes", "--resend-unknown")
    assert resend.code == 0, resend.err
    assert statuses(run_cli)["r3@example.org"] == "unknown"  # not resent, still unknown

    write_readers(project, READERS)  # the row is back
    again = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert again.code == 0, again.err
    got = Counter(relay.recipients())
    assert got["r3@example.org"] == 1, "a plain send mailed an unknown reader again"
    assert statuses(run_cli)["r3@example.org"] == "unknown"


def test_resend_unknown_still_resends_the_unknown_readers_in_the_list(
        project: Path, run_cli: RunCli, relay: SmtpSink) -> None:
    sent_with_r3_unknown(project, run_cli, relay)

    resend = run_cli("send", SAMPLE_ISSUE, "--yes", "--resend-unknown")
    assert resend.code == 0, resend.err
    assert set(statuses(run_cli).values()) == {"sent"}
    assert Counter(relay.recipients())["r3@example.org"] == 2  # the one the flag asked for


def test_resend_unknown_with_a_limit_resends_the_unknown_reader_first_in_list_order(
        project: Path, run_cli: RunCli, relay: SmtpSink) -> None:
    sent_with_r3_unknown(project, run_cli, relay, "--limit", "3")

    resend = run_cli("send", SAMPLE_ISSUE, "--yes", "--resend-unknown", "--limit", "1")
    assert resend.code == 0, resend.err
    states = statuses(run_cli)
    assert states["r3@example.org"] == "sent"  # list order: r3 comes before r4
    assert states["r4@example.org"] == "pending"
