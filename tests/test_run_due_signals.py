"""A SIGTERM that reaches ``run-due`` outside an issue's send (while it suppresses bounces,
looks for due issues, or after an issue's summary) stops the run with exit 143 and one line,
as DESIGN.md promises for a stopped run, instead of the default action killing the process
(which cron sees as "killed by signal 15", not 143, and which prints nothing).

Real CLI subprocesses on the sample project: a seam in the child sends the process its own
SIGTERM at the moment under test, so the timing is exact without sleeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from helpers import SAMPLE_ISSUE, Run, edit

# an hour after the sample issue's send_at (one due long before a first send is held back)
NOW = "2021-10-29T10:00:00+02:00"
# The CLI as `python -m mirage_mailer` runs it, with a SIGTERM sent at one seam of run-due.
CHILD = ("import os, signal, sys\n"
         "import mirage_mailer.commands.send as send\n"
         "seam = sys.argv.pop(1)\n"
         "def kill():\n"
         "    os.kill(os.getpid(), signal.SIGTERM)\n"
         "if seam == 'bounces':\n"
         "    def bounces_first(settings):\n"
         "        kill()\n"
         "        return None, []\n"
         "    send.bounces_first = bounces_first\n"
         "else:\n"
         "    real = send._send_due\n"
         "    def _send_due(*args, **kwargs):\n"
         "        code = real(*args, **kwargs)\n"
         "        kill()\n"
         "        return code\n"
         "    send._send_due = _send_due\n"
         "from mirage_mailer.__main__ import main\n"
         "sys.argv[0] = 'mirage-mailer'\n"
         "main()\n")


def _run_due(project: Path, seam: str) -> Run:
    proc = subprocess.run([sys.executable, "-c", CHILD, seam, "run-due", "--now", NOW],
                          cwd=project, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return Run(proc.returncode, proc.stdout, proc.stderr)


def _sent(project: Path) -> int:
    outbox = project / "outbox" / "new"
    return len(list(outbox.iterdir())) if outbox.is_dir() else 0


def test_sigterm_before_any_issue_exits_143_and_sends_nothing(project: Path) -> None:
    result = _run_due(project, "bounces")
    assert result.code == 128 + signal.SIGTERM, (result.code, result.err)
    assert "run-due: stopped by SIGTERM before the next issue: 0 issue(s) handled" \
        in result.err, result.err
    assert _sent(project) == 0


def test_sigterm_after_an_issue_exits_143_and_keeps_what_went(project: Path) -> None:
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:00:00+02:00")
    result = _run_due(project, "after-issue")
    assert result.code == 128 + signal.SIGTERM, (result.code, result.err)
    assert "run-due: stopped by SIGTERM before the next issue: 1 issue(s) handled" \
        in result.err, result.err
    issue = SAMPLE_ISSUE.rsplit("/", 1)[1]
    assert f"{issue}: sent 5" in result.out, result.out  # that issue's own summary line
    assert _sent(project) == 5
