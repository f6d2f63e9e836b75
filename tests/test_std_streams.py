"""The standard streams as cron leaves them: stdout or stdin closed (``>&-``, ``<&-``), stdout on
a full disk (``>/dev/full``). A run keeps its own exit code; only a lost output is said, once.
Real subprocesses through a shell, as cron runs them (``subprocess.DEVNULL`` is not closed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, statuses, use_relay
from support.faults import refuse
from support.smtp_sink import Gate, SmtpSink

SAMPLE = 5


def _shell(project: Path, redirect: str, *args: str) -> subprocess.Popen[str]:
    """``python -m mirage_mailer ARGS REDIRECT`` run by sh, stderr captured."""
    return subprocess.Popen(
        ["sh", "-c", f'exec "$0" -m mirage_mailer "$@" {redirect}', sys.executable, *args],
        cwd=project, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _run(project: Path, redirect: str, *args: str) -> tuple[int, str]:
    """The exit code and stderr, without the sample's warning about its French disclaimer."""
    proc = _shell(project, redirect, *args)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, "".join(line for line in err.splitlines(keepends=True)
                                    if "disclaimer;" not in line)


def _sent(project: Path) -> int:
    return len(list((project / "outbox/new").iterdir()))


def test_send_with_stdout_closed_exits_0(project: Path, run_cli: RunCli) -> None:
    """Was 70, "AttributeError: 'NoneType' object has no attribute 'flush'", after all 5 were
    sent: cron took a finished send for a crash."""
    code, err = _run(project, ">&-", "send", SAMPLE_ISSUE, "--yes")
    assert (code, err) == (0, ""), err
    assert _sent(project) == SAMPLE
    assert set(statuses(run_cli).values()) == {"sent"}
    code, err = _run(project, ">&-", "report", SAMPLE_ISSUE)  # was 70: isatty on None
    assert (code, err) == (0, "")


@pytest.mark.parametrize("args", [("send", SAMPLE_ISSUE, "--yes"), ("init", "fresh")])
def test_stdin_closed_is_no_terminal(project: Path, args: tuple[str, ...]) -> None:
    """Was 70 (isatty on None) for send --yes and init: a closed stdin is no terminal."""
    code, err = _run(project, "<&- >/dev/null", *args)
    assert code == 0, err
    assert "internal error" not in err
    if args[0] == "send":
        assert _sent(project) == SAMPLE
    else:
        assert (project / "fresh/mirage.yaml").is_file()


def test_full_stdout_is_named_once_and_the_send_is_recorded(project: Path,
                                                           run_cli: RunCli) -> None:
    """Was 120, "cannot use it: No space left on device" (stdout not named) and Python's
    "Exception ignored ... OSError". Now one line naming standard output, and 74: the send
    itself finished and every recipient is recorded, but the output asked for was lost."""
    code, err = _run(project, ">/dev/full", "send", SAMPLE_ISSUE, "--yes")
    assert code == 74, err
    assert err.splitlines() == [
        "mirage-mailer: standard output: cannot write to it: No space left on device (free "
        "space where the output goes, or send it elsewhere; what this run did is recorded, "
        "only its output from that point on is lost)"]
    assert _sent(project) == SAMPLE
    assert set(statuses(run_cli).values()) == {"sent"}  # a rerun sends nobody twice


@pytest.mark.smtp_fault(rules=[refuse("peter.novak@example.org")])
def test_full_stdout_keeps_a_code_that_is_not_0(project: Path, run_cli: RunCli,
                                                sink: SmtpSink) -> None:
    """A run that recorded a permanent failure keeps its 1 (was 120): it says more about the
    recipients than the lost output does. Stdout is still named."""
    use_relay(project, sink.url)
    code, err = _run(project, ">/dev/full", "send", SAMPLE_ISSUE, "--yes")
    assert code == 1, err
    assert "mirage-mailer: standard output: cannot write to it: No space left" in err
    assert sorted(statuses(run_cli).values()) == ["failed"] + ["sent"] * (SAMPLE - 1)


@pytest.mark.smtp_fault(rules=[Gate(after=1)])
def test_sigterm_with_stdout_closed_exits_143(project: Path, run_cli: RunCli,
                                              sink: SmtpSink) -> None:
    """Was 70 instead of 143: the stop was recorded, then the flush of a None stdout failed."""
    use_relay(project, sink.url, concurrency=1)
    gate = sink.rules[0]
    assert isinstance(gate, Gate)
    proc = _shell(project, ">&-", "send", SAMPLE_ISSUE, "--yes")
    try:
        deadline = time.monotonic() + 30
        while not sink.received and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)  # the handler sets the stop before the message at the gate ends
        gate.open()
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "internal error" not in err
    assert 1 <= len(sink.received) < SAMPLE
    assert "pending" in statuses(run_cli).values()
