"""``run-due`` and recipients left ``unknown``: the command it names to resend them works as
printed, and an issue whose only unsettled rows are unknown is not handled again (its
newcomers get the next issue, as with any finished issue). CLI subprocesses against a real
SMTP server (aiosmtpd on 127.0.0.1) and a real SQLite store."""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, statuses, use_relay
from support.smtp_sink import Call, Reply, SmtpSink
from test_send import ISSUE, SAMPLE

NEWCOMER = "newcomer@example.org"


@dataclass
class LoseFirstReply:
    """Keep the first message, then drop the connection without the 250: the client cannot
    know it arrived (RFC 5321 section 6.1), so its recipient is left ``unknown``. An object,
    so the `sink` fixture gives each test a fresh copy."""

    lost: list[str] = field(default_factory=list)

    def __call__(self, call: Call) -> Reply | None:
        if call.stage != "DATA" or self.lost:
            return None
        self.lost.append(call.address)
        return Reply(None, close=True, store=True)


pytestmark = pytest.mark.smtp_fault(rules=[LoseFirstReply()])  # the `sink` fixture (conftest.py)


@pytest.fixture
def due(project: Path, sink: SmtpSink) -> Path:
    """The sample issue, due an hour ago (a project that has never sent from here sends
    only an issue due within the last 24 hours), sent one connection at a time through the
    sink."""
    use_relay(project, sink.url, concurrency=1)
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         f"send_at: {an_hour_ago}")
    return project


def unknown_after_run_due(run_cli: RunCli) -> tuple[str, str]:
    """run-due's summary line and the one recipient it left unknown."""
    first = run_cli("run-due")
    assert first.code == 0, first.err
    (lost,) = [a for a, s in statuses(run_cli).items() if s == "unknown"]
    return first.out, lost


def test_the_command_run_due_names_for_unknown_recipients_runs_as_printed(
        due: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    out, lost = unknown_after_run_due(run_cli)
    hint = f'1 unknown: check, then run "mirage-mailer send {SAMPLE_ISSUE} --resend-unknown"'
    assert out.rstrip().endswith(hint), out
    command = shlex.split(out.rstrip().rsplit('"', 2)[1])
    assert command[0] == "mirage-mailer"
    resend = run_cli(*command[1:], "--yes")  # as typed in the project folder (no terminal)
    assert resend.code == 0, resend.err
    assert set(statuses(run_cli).values()) == {"sent"}
    assert Counter(sink.recipients())[lost] == 2  # the person checked: a second copy


def test_the_command_names_the_config_and_quotes_a_folder_with_a_space(
        due: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    spaced = due.parent / "news letter"
    due.rename(spaced)
    out = run_cli("--config", "news letter/mirage.yaml", "run-due", cwd=due.parent)
    assert out.code == 0, out.err
    printed = out.out.rstrip().rsplit('"', 2)[1]
    assert printed == ("mirage-mailer --config 'news letter/mirage.yaml' send "
                       f"'news letter/{SAMPLE_ISSUE}' --resend-unknown")
    resend = run_cli(*shlex.split(printed)[1:], "--yes", cwd=due.parent)
    assert resend.code == 0, resend.err
    assert len(sink.received) == len(SAMPLE) + 1


def test_run_due_leaves_an_issue_whose_only_open_rows_are_unknown(
        due: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """A newcomer to the list gets the next issue, not this one, whether or not a lost reply
    left someone unknown; pending rows (here left by --limit) still make it due."""
    first = run_cli("send", SAMPLE_ISSUE, "--yes", "--limit", "2")
    assert first.code == 0, first.err
    assert Counter(statuses(run_cli).values()) == {"pending": 3, "sent": 1, "unknown": 1}
    resumed = run_cli("run-due")
    assert resumed.code == 0, resumed.err
    assert f"{ISSUE}: sent 4, failed 0, pending 0, unknown 1" in resumed.out
    assert Counter(statuses(run_cli).values()) == {"sent": 4, "unknown": 1}
    received = len(sink.received)
    with (due / "lists/subscribers.csv").open("a", encoding="utf-8") as handle:
        handle.write(f"{NEWCOMER},New Reader,en,\n")
    again = run_cli("run-due")
    assert again.code == 0, again.err
    assert again.out.startswith("run-due: nothing due at "), again.out
    assert again.err == ""  # cron mails any output: an old unknown is not said every run
    assert len(sink.received) == received
    assert NEWCOMER not in statuses(run_cli)

