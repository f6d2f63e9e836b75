"""Stop signals around the fork of a send's sending processes (``services/shards.py``).

In the moments between forking the sending processes and the parent's event loop taking
the signals, a SIGTERM to the parent was either raised inside ``os.fork``'s own hooks,
where Python swallows it ("Exception ignored", a traceback on stderr, and the run went on
to send everyone and exit 0), or raised the planning-time "nothing was sent" while its
children had already sent messages. Whenever a stop signal comes, the run must exit 143
(130 for Ctrl-C) and say what is true. Real CLI runs against an aiosmtpd relay on
127.0.0.1 that is slow to answer DATA.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, report, use_relay
from support.smtp_sink import Call, SmtpSink

READERS = 400  # two sending processes of 200 (``MIN_PER_PROCESS``)
CONCURRENCY = 4
# after the first fork is seen: inside the fork, before the parent's loop takes the
# signals, while the children start, and once they are sending
DELAYS = (0.0, 0.001, 0.002, 0.005, 0.008, 0.015, 0.04, 0.1, 0.25)


def _slow(call: Call) -> None:
    if call.stage == "DATA":
        time.sleep(0.01)  # the children are mid-send when the parent is stopped


pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                       reason="sending processes: Linux with two cores"),
    pytest.mark.smtp_fault(rules=[_slow]),
]


def _children(pid: int) -> list[int]:
    """The process's children, read fast enough to catch the fork (a scan of /proc is not)."""
    try:
        words = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(w) for w in words]


def _new_issue(project: Path, n: int) -> str:
    """A copy of the sample issue under its own id and number (no twin of another round)."""
    folder = project / "issues" / f"round-{n:02d}"
    shutil.copytree(project / SAMPLE_ISSUE, folder)
    edit(folder / "issue.yaml", "number: 4", f"number: {100 + n}")
    return f"issues/round-{n:02d}"


def _gone(pids: list[int], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{p}").exists() and _state(p) != "Z" for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_stop_at_any_moment_of_the_fork_exits_143_or_130_and_says_what_is_true(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    use_relay(project, sink.url, timeout=10, concurrency=CONCURRENCY, processes=2)
    lines = ["email,name,lang"] + [f"reader{n:04d}@example.org,Reader {n},en"
                                   for n in range(READERS)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    forked = 0
    for n, delay in enumerate(DELAYS):
        sig = signal.SIGINT if n % 3 == 2 else signal.SIGTERM  # to the parent only
        issue = _new_issue(project, n)
        before = len(sink.received)
        proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "send", issue, "--yes"],
                                cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        children: list[int] = []
        try:
            deadline = time.monotonic() + 60
            while not children and proc.poll() is None:
                assert time.monotonic() < deadline, "the send never forked"
                children = _children(proc.pid)
            if delay:
                time.sleep(delay)
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert _gone(children), "a sending process outlived the run"
        forked += bool(children)
        got = len(sink.received) - before
        where = f"round {n} (delay {delay * 1000:.1f} ms): {out!r} {err!r}"
        assert proc.returncode == 128 + sig, where
        assert "Traceback" not in err, where
        counts = report(run_cli, issue)["counts"]
        assert isinstance(counts, dict)
        # nobody lost: every reader is accounted for, at most the wire's worth unknown
        assert sum(counts[k] for k in ("sent", "failed", "pending", "unknown")) == READERS, where
        assert counts["unknown"] <= CONCURRENCY, where
        assert counts["sent"] <= got <= counts["sent"] + counts["unknown"], where
        if "nothing was sent" in err:
            assert got == 0 and counts["sent"] == counts["unknown"] == 0, where
            assert out == "", where
        else:  # the summary line, as the store has it
            head = re.match(r"round-\d+: sent (\d+), failed (\d+), pending (\d+), unknown (\d+)",
                            out)
            assert head is not None, where
            said = dict(zip(("sent", "failed", "pending", "unknown"),
                            map(int, head.groups()), strict=True))
            assert said == {k: counts[k] for k in said}, where
            name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
            assert f"stopped by {name}" in out, where
    assert forked == len(DELAYS)
