"""Replies a relay should not give, end to end: the real CLI against the fault relay on
127.0.0.1, pipelining offered and not, and the relay's own count of what it received compared
with what ``report`` says (audit 9a, F1, F2, F6).

The contract: a recipient is ``sent`` only on a 250 to the end of DATA; once that end is
written, anything but a clear answer leaves it ``unknown`` and never retried; so every message
the relay has is ``sent`` or ``unknown``, every duplicate is ``unknown``, and every ``sent``
reached the relay. A relay's words are kept and shown on one line, with no terminal escapes.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, report, use_relay
from support.smtp_sink import Fault, SmtpSink, StoreThenFail, store_then_answer

READERS = [f"reader{n:02d}@example.org" for n in range(12)]
ESCAPES = "\x1b]0;PWNED\x07\x1b[31mRED\x1b[0m"  # retitles the terminal, turns it red
SHOWN = "\\x1b]0;PWNED\\x07\\x1b[31mRED\\x1b[0m"


def use_readers(project: Path, sink: SmtpSink) -> None:
    """The READERS list, sent to ``sink`` over one link, so each drop shows."""
    use_relay(project, sink.url, timeout=3, concurrency=1)
    lines = ["email,name,lang"] + [f"{a},Reader {n},en" for n, a in enumerate(READERS)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(params=[True, False], ids=["pipelining", "no-pipelining"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@contextmanager
def relay(rule: Fault | StoreThenFail, *, pipelining: bool) -> Iterator[SmtpSink]:
    sink = SmtpSink(rules=[rule], pipelining=pipelining)
    with sink.running_in_thread():
        yield sink


def rows(run_cli: RunCli) -> dict[str, dict[str, object]]:
    recipients = report(run_cli)["recipients"]
    assert isinstance(recipients, list)
    return {r["email"]: r for r in recipients}


def check_against_relay(sink: SmtpSink, found: dict[str, dict[str, object]]) -> None:
    """The audit's comparison: the relay's log against the store."""
    received = Counter(sink.recipients())
    assert set(found) == set(READERS)
    for email, row in found.items():
        if received[email] > 1:
            assert row["status"] == "unknown", (email, received[email], row)
        if received[email]:
            assert row["status"] in ("sent", "unknown"), (email, row)
        if row["status"] == "sent":
            assert received[email] == 1, (email, "sent, but the relay never had it", row)


def send_twice(run_cli: RunCli) -> None:
    """A run, and the rerun a cron job would make: it must not send anyone again."""
    for _ in range(2):
        result = run_cli("send", SAMPLE_ISSUE, "--yes")
        assert result.code == 0, result.err


@pytest.mark.parametrize("answer", ["OK queued as 12345", "25"],
                         ids=["no-code", "cut-short"])
def test_a_malformed_answer_to_the_end_of_data_leaves_the_recipient_unknown(
        project: Path, run_cli: RunCli, pipelining: bool, answer: str) -> None:
    """F1: the relay queues the message, then answers the final "." with a line that is no
    SMTP reply. It may have the message (it has): unknown, never retried."""
    garbled = store_then_answer(answer, 0.3)
    with relay(garbled, pipelining=pipelining) as sink:
        use_readers(project, sink)
        send_twice(run_cli)
        found = rows(run_cli)
        check_against_relay(sink, found)
        assert garbled.hit, "the relay garbled no answer"
        assert {e for e, r in found.items() if r["status"] == "unknown"} == garbled.hit
        assert {e for e, r in found.items() if r["status"] == "sent"} == set(
            READERS) - garbled.hit
        unknown = found[sorted(garbled.hit)[0]]
        assert unknown["attempts"] == 1 and unknown["smtp_code"] is None
        assert unknown["smtp_response"] == (
            f"the answer to the end of DATA was not an SMTP reply ({answer}): the server may "
            "have the message; not retried (send --resend-unknown)")


def test_a_250_to_the_data_command_is_retried_not_sent(
        project: Path, run_cli: RunCli, pipelining: bool) -> None:
    """F2 (a): "250" where 354 is due: the body never went, so the recipient is not sent;
    the link is out of step, dropped, and the message retried on a new one."""
    with relay(Fault("DATA-START", "250 2.0.0 ok", times=3), pipelining=pipelining) as sink:
        use_readers(project, sink)
        send_twice(run_cli)
        found = rows(run_cli)
        check_against_relay(sink, found)
        assert {r["status"] for r in found.values()} == {"sent"}
        assert Counter(sink.recipients()) == Counter(READERS)  # every one, once
        assert Counter(r["attempts"] for r in found.values()) == {1: 9, 2: 3}
        assert sink.connections >= 4  # each wrong answer cost its link


def test_two_answers_to_one_end_of_data_are_never_taken_for_the_next_command(
        project: Path, run_cli: RunCli, pipelining: bool) -> None:
    """F2 (b): one "." answered with two 250 lines. The first is the answer (the relay has
    the message: sent); the second, taken as the answer to the next MAIL, would shift every
    later reply by one and mark the next recipient sent on its RCPT reply."""
    doubled = store_then_answer("250 2.0.0 Ok\r\n250 2.0.0 queued as ABC", 0.3)
    with relay(doubled, pipelining=pipelining) as sink:
        use_readers(project, sink)
        send_twice(run_cli)
        found = rows(run_cli)
        check_against_relay(sink, found)
        assert doubled.hit
        assert {r["status"] for r in found.values()} == {"sent"}
        assert Counter(sink.recipients()) == Counter(READERS)
        # each the answer to its own end of DATA, never a MAIL or RCPT reply ("OK")
        assert all(str(r["smtp_response"]).startswith("2.0.0 Ok") for r in found.values())
        # each double answer cost its link (the last message's, maybe, the run's end)
        assert sink.connections >= len(doubled.hit)


# ------------------------------------------------------------ F6: the relay's words, shown


def test_escape_sequences_in_a_greeting_are_shown_not_obeyed(project: Path,
                                                           run_cli: RunCli) -> None:
    with relay(Fault("GREET", "421 4.3.2 " + ESCAPES), pipelining=True) as sink:
        use_readers(project, sink)
        result = run_cli("send", SAMPLE_ISSUE, "--yes")
        assert result.code == 3, result.err
        errors = [line for line in result.err.splitlines() if ": warning: " not in line]
        assert len(errors) == 1
        assert f"refused the connection: 421 4.3.2 {SHOWN}; nothing was lost" in errors[0]
        assert "\x1b" not in result.err + result.out and "\x07" not in result.err


def test_a_greeting_with_line_breaks_stays_one_line(project: Path, run_cli: RunCli) -> None:
    with relay(Fault("GREET", "hello\r\n\x1b[2Jthere"), pipelining=True) as sink:
        use_readers(project, sink)
        result = run_cli("send", SAMPLE_ISSUE, "--yes")
        assert result.code == 3, result.err
        errors = [line for line in result.err.splitlines() if ": warning: " not in line]
        assert len(errors) == 1, errors
        assert errors[0].startswith("mirage.yaml:")
        assert "(Malformed SMTP response line: hello); nothing was lost" in errors[0]
        assert "\x1b" not in result.err


def test_escape_sequences_in_a_refusal_are_stored_and_reported_escaped(
        project: Path, run_cli: RunCli) -> None:
    with relay(Fault("RCPT", "550 5.1.1 " + ESCAPES, address=READERS[0]),
                      pipelining=True) as sink:
        use_readers(project, sink)
        result = run_cli("send", SAMPLE_ISSUE, "--yes")
        assert result.code == 1, result.err
    database = project / ".mirage" / "tracking.sqlite"
    with sqlite3.connect(database) as db:
        stored = [r for (r,) in db.execute("SELECT smtp_response FROM recipients")]
    assert f"5.1.1 {SHOWN}" in stored
    assert not any("\x1b" in (r or "") for r in stored)
    assert rows(run_cli)[READERS[0]]["smtp_response"] == f"5.1.1 {SHOWN}"
    for fmt in ("table", "csv"):
        shown = run_cli("report", SAMPLE_ISSUE, "--format", fmt)
        assert shown.code == 0, shown.err
        assert "\x1b" not in shown.out and "\x07" not in shown.out
        assert "PWNED" in shown.out


def test_a_reply_stored_raw_by_an_earlier_version_is_reported_escaped(
        project: Path, run_cli: RunCli) -> None:
    with relay(Fault("RCPT", "550 5.1.1 no such user", address=READERS[0]),
                      pipelining=True) as sink:
        use_readers(project, sink)
        assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 1
    with sqlite3.connect(project / ".mirage" / "tracking.sqlite") as db:
        db.execute("UPDATE recipients SET smtp_response = ? WHERE smtp_code = 550",
                   ("5.1.1 " + ESCAPES,))
    for fmt in ("table", "csv"):
        shown = run_cli("report", SAMPLE_ISSUE, "--format", fmt)
        assert shown.code == 0, shown.err
        assert "\x1b" not in shown.out and "PWNED" in shown.out
