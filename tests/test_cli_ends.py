"""How the command ends when the world around it stops: the reader of its output goes away
(``report | head``), or Ctrl-C arrives while Python is still importing. Real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import SAMPLE_ISSUE


def _spawn(project: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mirage_mailer", *args], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_a_reader_that_stops_reading_gives_141_not_1(project: Path) -> None:
    """click's answer to EPIPE was a silent exit 1, which the contract reserves for
    permanent failures; the shell's code for a process ended by SIGPIPE is 141."""
    for fmt in ("csv", "json"):
        proc = _spawn(project, "report", SAMPLE_ISSUE, "--format", fmt)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # like `head` after its lines, before we write anything
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141, err
        assert err == ""


def test_a_reader_that_reads_everything_gives_0(project: Path) -> None:
    proc = _spawn(project, "report", SAMPLE_ISSUE, "--format", "csv")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.decode().startswith("issue,")


def _loaded(pid: int, marker: str) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return True  # gone already: nothing left to wait for


def test_ctrl_c_while_importing_ends_quietly(project: Path) -> None:
    """SIGINT while the command line's modules load (libuuid is mapped as click loads, about
    0.1 s before the imports end) ends with 130 and one line, no traceback."""
    proc = _spawn(project, "validate", SAMPLE_ISSUE)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while not _loaded(proc.pid, "libuuid") and time.monotonic() < deadline:
        time.sleep(0.0005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "Traceback" not in err.decode()
    assert "interrupted" in err.decode()
