"""``run-due`` without a terminal writes one line per issue and no progress lines, while
``send`` without a terminal keeps its timestamped progress lines (docs/guide/sending.md):
cron mails whatever run-due prints, and a line every 10 s of a long send was about 200 lines
an issue. Real CLI subprocesses (output to pipes, so not a terminal) on the sample project's
Maildir outbox and SQLite store; the 10 s interval is set to 0 in the subprocess, so every
update may print a line and the test needs no slow relay."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import SAMPLE_ISSUE, Run, edit

ISSUE_ID = SAMPLE_ISSUE.rsplit("/", 1)[1]
PROGRESS = re.compile(rf"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ {ISSUE_ID}: \d+/\d+ done ",
                      re.MULTILINE)
# The CLI as `python -m mirage_mailer` runs it, with the progress interval at 0 seconds.
NO_INTERVAL = ("import sys\n"
               "import mirage_mailer.commands.send as send\n"
               "send._LOG_EVERY = 0.0\n"
               "from mirage_mailer.__main__ import main\n"
               "sys.argv[0] = 'mirage-mailer'\n"
               "main()\n")


def _run(project: Path, *args: str) -> Run:
    proc = subprocess.run([sys.executable, "-c", NO_INTERVAL, *args], cwd=project,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return Run(proc.returncode, proc.stdout, proc.stderr)


def test_send_without_a_terminal_logs_progress_lines(project: Path) -> None:
    """The control: the same seam makes ``send`` print its documented lines."""
    result = _run(project, "send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    assert PROGRESS.search(result.err), result.err


def test_run_due_without_a_terminal_prints_no_progress_line(project: Path) -> None:
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:00:00+02:00")
    # an hour after send_at: an issue due long before a project's first send is held back
    result = _run(project, "run-due", "--now", "2021-10-29T10:00:00+02:00")
    assert result.code == 0, result.err
    assert not PROGRESS.search(result.err + result.out), result.err
    assert all(": warning: " in line for line in result.err.splitlines()), result.err
    lines = result.out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{ISSUE_ID}: sent 5, failed 0,"), result.out
