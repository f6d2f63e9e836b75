"""Processes of a CLI run under test: its children, its own peak memory, and the moment a
killed send is gone."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mirage_mailer.services.journal import lock_path, settle_all
from mirage_mailer.store import Store
from mirage_mailer.util.errors import DeliveryError
from mirage_mailer.util.locks import Lock


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc: no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def wait_send_gone(project: Path, issue: str, *, timeout: float = 10.0) -> None:
    """Wait until every process of a killed send let go of its issue's send lock: its
    sending processes die with it (``PR_SET_PDEATHSIG``) a moment later, holding it."""
    lock = Lock(lock_path(project / ".mirage", issue), "test")
    deadline = time.monotonic() + timeout
    while True:
        try:
            lock.acquire()
        except DeliveryError:
            assert time.monotonic() < deadline, "the killed send's processes live on"
            time.sleep(0.01)
        else:
            lock.release()
            return


# ``python -c PEAK_CLI OUT ARGS...`` runs the CLI with ARGS and writes its own peak resident
# memory (KiB) to OUT: VmHWM belongs to the memory the program got at exec, where rusage's
# maxrss would also count a larger parent it was forked from (a test process).
PEAK_CLI = """
import atexit, re, sys
from pathlib import Path
def peak():
    status = Path("/proc/self/status").read_text()
    Path(sys.argv[1]).write_text(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))
atexit.register(peak)
from mirage_mailer.cli import main
main(sys.argv[2:])
"""


def states_after_kill(project: Path, issue: str) -> dict[str, str]:
    """Each reader's status once a killed send is gone, as ``report`` would say it (read in
    process: ``report`` replays a journal the same way)."""
    wait_send_gone(project, issue)
    with Store(project / ".mirage" / "tracking.sqlite") as store:
        settle_all(store, project / ".mirage")
        return {r["email"]: r["status"] for r in store.recipients(issue)}


def send_killed_after(project: Path, issue_dir: str, received: Callable[[], int], target: int,
                      rng: random.Random, *, poll: float = 0.001) -> bool:
    """``send ISSUE_DIR --yes`` killed (SIGKILL) a random moment under 10 ms after the relay
    has ``target`` messages in all (``received``); False when it ended before the kill."""
    proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "send", issue_dir,
                             "--yes"], cwd=project, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while received() < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(poll)
    time.sleep(rng.random() * 0.01)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    return killed
