"""``rate_per_hour`` holds across the issues of one ``run-due`` and across a stopped run and
its rerun: real CLI subprocesses, a real SQLite store, an aiosmtpd relay on 127.0.0.1.

Why: the hourly window started from zero for every issue and every run (audit: two due
issues of 60 under ``rate_per_hour: 100`` put 120 messages on the relay in 3.3 s; a run
stopped at 100 and its rerun, 120 within a minute). Each run below would wait about an hour,
so the test stops it (Ctrl-C) once it is waiting and counts what reached the relay; the
waits themselves are checked with a fake clock in tests/delivery/test_delivery_pace_ledger.py.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from helpers import SAMPLE_ISSUE, RunCli, edit, use_relay
from mirage_mailer.store import open_store
from mirage_mailer.util.database import PostgresUrl
from support.smtp_sink import SmtpSink
from test_postgres_cli import DB_LINE
from test_send import write_list

DUE = "send_at: 2021-10-29T09:00:00+02:00"
NOW = "2021-10-29T10:00:00+02:00"  # an hour after send_at (see test_run_due_output.py)
WAITING = "within the last hour (rate_per_hour)"


def _start(project: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mirage_mailer", *args], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stop_when_waiting(proc: subprocess.Popen[bytes], sink: SmtpSink, *,
                       budget: int) -> tuple[int, str]:
    """Ctrl-C once the run says it waits for the hour (a warning said at once), or once the
    relay has more than ``budget`` messages, or the run ended; returns the exit code and all
    it printed."""
    assert proc.stderr is not None and proc.stdout is not None
    said: list[str] = []
    waiting = threading.Event()

    def read(stream: IO[bytes]) -> None:
        for line in stream:
            said.append(line.decode())
            if WAITING in said[-1]:
                waiting.set()

    readers = [threading.Thread(target=read, args=(s,)) for s in (proc.stdout, proc.stderr)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 30
    while (not waiting.is_set() and len(sink.received) <= budget and proc.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.01)
    time.sleep(0.3)  # a run that would go on sending has had time to
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()
        for reader in readers:
            reader.join(timeout=30)
    return proc.returncode, "".join(said)


def test_two_issues_of_one_run_due_share_the_hour(project: Path, sink: SmtpSink) -> None:
    edit(use_relay(project, sink.url), "rate_per_hour: null", "rate_per_hour: 6")
    edit(project / SAMPLE_ISSUE / "issue.yaml", f"# {DUE}", DUE)
    second = project / "issues/2021-11-second"
    shutil.copytree(project / SAMPLE_ISSUE, second)
    edit(second / "issue.yaml", "number: 4", "number: 5")
    proc = _start(project, "run-due", "--now", NOW)
    code, said = _stop_when_waiting(proc, sink, budget=6)
    assert len(sink.received) == 6, said  # 5 of the first issue, 1 of the second: the hour
    assert code == 130, said
    assert WAITING in said


def test_a_rerun_right_after_a_stop_waits_for_the_hour(project: Path, sink: SmtpSink) -> None:
    edit(use_relay(project, sink.url), "rate_per_hour: null", "rate_per_hour: 5")
    write_list(project, 8)
    code, said = _stop_when_waiting(_start(project, "send", SAMPLE_ISSUE, "--yes"), sink,
                                    budget=5)
    assert code == 130 and len(sink.received) == 5, said
    code, said = _stop_when_waiting(_start(project, "send", SAMPLE_ISSUE, "--yes"), sink,
                                    budget=5)
    assert len(sink.received) == 5, said  # the rerun waits for the hour, too
    assert code == 130, said
    assert WAITING in said
    assert (project / ".mirage/pace.bin").exists()


def test_a_postgresql_sender_warns_when_another_host_sends_the_issue(
        project: Path, run_cli: RunCli, pg_url: PostgresUrl, sink: SmtpSink) -> None:
    """The pace ledger is a file under .mirage/: senders on other hosts do not share it, so
    each holds the rates for itself and the officer is told to split them."""
    use_relay(project, sink.url, paced=True)  # rate_per_second: 10
    edit(project / "mirage.yaml", DB_LINE, f"  database: {pg_url}")
    issue = SAMPLE_ISSUE.rsplit("/", 1)[1]
    with open_store(pg_url) as store:  # a live sender of the issue on another host
        store.register_sender("elsewhere", issue, "mailer-b.example", 4242, 600)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    assert len(sink.received) == 5
    warned = [line for line in result.err.splitlines() if "other host(s)" in line]
    assert warned == ["warning: 1 other host(s) are sending this issue now (mailer-b.example): "
                      "rate_per_second and rate_per_hour hold per host, so the relay may see up "
                      "to 2 times them; set each host's rates to the provider's figure / 2 "
                      "(docs/guide/several-senders.md)"], result.err
