"""Three bad mailboxes at the top of the list must not look like a refused message.

The run stops (exit 3, everyone pending) when the relay gives the same refusal to the end of
DATA for three recipients in a row and accepts nothing (``delivery/refusals.py``). A relay
without enhanced status codes, one that names the recipient or speaks of its address, or one
that refuses the DATA command itself, is refusing those recipients: they fail, the others get
the issue. And a stop on a false alarm must not repeat on every rerun, since the same rows
come first each time. CLI subprocesses against the fault relay on 127.0.0.1, a real SQLite
store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, report, statuses, use_relay
from support.faults import refuse, refuse_message
from support.smtp_sink import SmtpSink

BAD = ["bad1@example.org", "bad2@example.org", "bad3@example.org"]
GOOD = ["good1@example.org", "good2@example.org", "good3@example.org"]


@pytest.fixture
def bad_first(project: Path, sink: SmtpSink) -> Path:
    """The bad addresses first in the list, one connection: they are tried first, in order."""
    rows = ["email,name,lang"] + [f"{a},,en" for a in BAD + GOOD]
    (project / "lists" / "subscribers.csv").write_text("\n".join(rows) + "\n", "utf-8")
    use_relay(project, sink.url, timeout=5, concurrency=1)
    return project


def _bad_ones_fail_and_the_others_get_it(run_cli: RunCli, sink: SmtpSink) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 1, result.err
    assert statuses(run_cli) == {**{a: "failed" for a in BAD}, **{a: "sent" for a in GOOD}}
    assert sorted(sink.recipients()) == GOOD


@pytest.mark.parametrize("reply", [
    "550 mailbox {address} unavailable",  # names the recipient, no enhanced code
    "550 Requested action not taken: mailbox unavailable",  # the same words, no code
    "550 5.7.1 Recipient address rejected: Access denied",  # 5.7.1, about the recipient
])
def test_refusals_about_the_recipient_after_the_dot_fail_those_recipients(
        bad_first: Path, run_cli: RunCli, sink: SmtpSink, reply: str) -> None:
    sink.rules.extend(refuse(a, reply.format(address=a), stage="DATA") for a in BAD)
    _bad_ones_fail_and_the_others_get_it(run_cli, sink)


def test_a_refused_data_command_fails_those_recipients(
        bad_first: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """Refused before any content went out: a filter cannot have read it."""
    sink.rules.extend(refuse(a, "554 No valid recipients", stage="DATA-START") for a in BAD)
    _bad_ones_fail_and_the_others_get_it(run_cli, sink)


def test_a_stop_on_a_false_alarm_does_not_repeat_on_the_rerun(
        bad_first: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """The same words for three recipients and nothing accepted: indistinguishable from a
    content filter at that moment, so the run stops. The rerun does not count them again:
    the others get the issue, and then their refusals are their own."""
    sink.rules.extend(refuse(a, "554 5.7.1 rejected by local policy", stage="DATA")
                      for a in BAD)
    first = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert first.code == 3, first.err
    assert "the same refusal after the end of DATA" in first.err
    assert "content filter" not in first.err  # the evidence is the same words, no more
    assert "nothing was lost: 6 recipients stay pending" in first.err
    _bad_ones_fail_and_the_others_get_it(run_cli, sink)


def test_a_content_filter_still_stops_the_rerun(
        bad_first: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """Rerun without a change: the held ones are tried again without counting, and the
    next three recipients stop the run again."""
    sink.rules.append(refuse_message("554 5.6.0 content rejected"))
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 3
    second = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert second.code == 3, second.err
    assert ("the relay gave 3 different recipients in a row the same refusal after the end "
            "of DATA and accepted no message: 554 5.6.0 content rejected") in second.err
    assert "nothing was lost: 6 recipients stay pending" in second.err
    assert sink.received == []


def test_too_few_recipients_to_tell_a_content_filter_are_not_failed(
        bad_first: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """Two recipients, both refused twice with nothing accepted: whose refusal it is cannot
    be told, so both stay pending (the last run of a list a filter refuses ends so)."""
    (bad_first / "lists" / "subscribers.csv").write_text(
        "email,name,lang\ngood1@example.org,,en\ngood2@example.org,,en\n", "utf-8")
    sink.rules.append(refuse_message("554 5.6.0 content rejected"))
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    counts = report(run_cli)["counts"]
    assert counts["pending"] == 2 and counts["failed"] == 0  # type: ignore[index]
    assert len(sink.mail_times) == 4 and sink.received == []  # each tried twice
