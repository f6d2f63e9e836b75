"""``init`` makes ``.mirage/`` (owner-only) so the documented cron line and DKIM key have a
folder from the start, and its .gitignore keeps out the venv the docs put in the project.
CLI subprocesses."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

from helpers import RunCli


def test_init_makes_a_private_state_folder_and_ignores_it_and_the_venv(
        tmp_path: Path, run_cli: RunCli) -> None:
    made = run_cli("init", "news", cwd=tmp_path)
    assert made.code == 0, made.err
    state = tmp_path / "news/.mirage"
    assert "created news/.mirage" in made.out.splitlines()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    ignored = (tmp_path / "news/.gitignore").read_text(encoding="utf-8").splitlines()
    assert {".mirage/", ".venv/", "outbox/"} <= set(ignored)


def test_the_documented_cron_line_runs_in_a_new_project(tmp_path: Path, run_cli: RunCli) -> None:
    """operations.md's cron line appends to .mirage/run-due.log: the shell opens it before
    mirage-mailer starts, so the folder must be there from init on."""
    assert run_cli("init", "news", cwd=tmp_path).code == 0
    root = tmp_path / "news"
    venv = root / ".venv/bin"
    venv.mkdir(parents=True)
    (venv / "mirage-mailer").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m "
                                        "mirage_mailer \"$@\"\n")
    (venv / "mirage-mailer").chmod(0o755)
    line = f"cd {shlex.quote(str(root))} && .venv/bin/mirage-mailer run-due >> " \
           ".mirage/run-due.log 2>&1"
    cron = subprocess.run(["/bin/sh", "-c", line], env={**os.environ, "PYTHONUNBUFFERED": "1"},
                          capture_output=True, text=True, timeout=60)
    assert cron.returncode == 0, cron.stderr
    log = (root / ".mirage/run-due.log").read_text(encoding="utf-8")
    assert log.startswith("run-due: nothing due at "), log
