"""A send on several processes (``services/shards.py``): the crash contract holds for each.

Each sending process keeps its own claim journal; one killed mid-run leaves its journal for
the parent to replay, the run ends with exit 3, and a rerun finishes without duplicates
outside the reported ``unknown``. A stop signal to the parent stops every process. Against an
aiosmtpd relay on 127.0.0.1 whose DATA is slowed, so the run is still going when it is hit.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, report, statuses, use_relay
from mirage_mailer.services.journal import Journal, journal_path, settle, settle_all
from mirage_mailer.store import NewRecipient, Store, hashed_key
from support.processes import children_of
from support.smtp_sink import Call, Greylist, SmtpSink, Throttle, TokenBucket

ISSUE = "2021-10-partners-meeting"
CONCURRENCY = 4
READERS = 600


def _slow(call: Call) -> None:
    if call.stage == "DATA":
        time.sleep(0.005)  # about 150 messages a second: the run lasts a few seconds


def _setup(project: Path, url: str, readers: int = READERS) -> list[str]:
    use_relay(project, url, timeout=10, processes=2)  # 10 s: no pushback from a busy machine
    addresses = [f"reader{n:04d}@example.org" for n in range(readers)]
    lines = ["email,name,lang"] + [f"{a},Reader {n},en" for n, a in enumerate(addresses)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return addresses


def _start(project: Path, sink: SmtpSink, received: int) -> tuple[subprocess.Popen[str], list[int]]:
    """A send, running on its sending processes, once the relay has ``received`` messages."""
    proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE,
                             "--yes"], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(sink.received) < received and proc.poll() is None:
        assert time.monotonic() < deadline, "the send never got going"
        time.sleep(0.005)
    return proc, children_of(proc.pid)


pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                       reason="sending processes: Linux with two cores"),
    pytest.mark.smtp_fault(rules=[_slow]),  # the `sink` fixture (conftest.py)
]


def test_a_killed_sending_process_loses_nobody_and_the_run_says_so(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    addresses = _setup(project, sink.url)
    proc, children = _start(project, sink, 40)
    assert len(children) == 2  # transport.processes: 2
    os.kill(children[1], signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    assert "was killed by SIGKILL" in err and "run the same command again" in err
    assert "Traceback" not in err
    assert not list((project / ".mirage" / "journal").rglob("*.log"))  # the parent replayed it
    states = statuses(run_cli)
    assert set(states.values()) <= {"sent", "pending", "unknown"}
    unknown = {a for a, s in states.items() if s == "unknown"}
    assert len(unknown) <= CONCURRENCY // 2  # what the killed process had on the wire
    assert "pending" in states.values()  # its share stopped; its sibling finished its own
    have = set(sink.recipients())
    assert {a for a in have if states[a] not in ("sent", "unknown")} == set()
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    assert {a for a, s in statuses(run_cli).items() if s != "sent"} == unknown
    assert run_cli("send", SAMPLE_ISSUE, "--yes", "--resend-unknown").code == 0
    received = Counter(sink.recipients())
    assert set(received) == set(addresses)  # every recipient accounted for
    assert {a for a, n in received.items() if n > 1} <= unknown  # doubles only if reported
    assert set(statuses(run_cli).values()) == {"sent"}


def test_sigterm_stops_every_sending_process_and_exits_143(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    _setup(project, sink.url)
    proc, children = _start(project, sink, 40)
    assert len(children) == 2
    os.kill(proc.pid, signal.SIGTERM)  # the parent only, as cron's timeout would
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (out, err)
    assert "Traceback" not in err
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)
    data = report(run_cli)
    counts = data["counts"]
    assert isinstance(counts, dict)
    assert counts["pending"] > READERS // 3  # both processes stopped taking recipients
    assert counts["unknown"] == 0  # the messages on the wire finished and were recorded
    assert counts["sent"] == len(sink.recipients()) == len(set(sink.recipients()))


def test_every_journal_of_an_issue_is_replayed(tmp_path: Path) -> None:
    """The second process's journal (``journal/1/<issue>.log``) is found and applied, by the
    next send (``settle``) and by ``report`` (``settle_all``)."""
    state = tmp_path / ".mirage"
    with Store(state / "tracking.sqlite") as store:
        store.add_recipients(ISSUE, [NewRecipient(e, None, None, "main")
                                     for e in ("a@x.org", "b@x.org")])
        ids = {r.email: r.id for r in store.iter_pending(ISSUE)}
        first = Journal(journal_path(state, ISSUE), ISSUE)
        second = Journal(journal_path(state, ISSUE, 1), ISSUE)
        assert second.path == state / "journal" / "1" / f"{ISSUE}.log"
        first.outcome(ids["a@x.org"], hashed_key("a@x.org"), 0, "sent", 250, "ok", "<a@x>",
                      "2026-11-30T10:00:00.000+00:00")
        second.claim(ids["b@x.org"], hashed_key("b@x.org"), 0, "<b@x>",
                     "2026-11-30T10:00:00.000+00:00")
        first.close()
        second.close()
        settle_all(store, state)
        assert not first.path.exists() and not second.path.exists()
        got = {r["email"]: r["status"] for r in store.recipients(ISSUE)}
        assert got == {"a@x.org": "sent", "b@x.org": "unknown"}  # its claim: on the wire
        assert settle(store, state, ISSUE) is None  # nothing left to replay
        # the first process ended cleanly (its journal removed); the second was killed
        second = Journal(journal_path(state, ISSUE, 1), ISSUE)
        second.outcome(ids["b@x.org"], hashed_key("b@x.org"), 0, "sent", 250, "ok", "<b@x>",
                       "2026-11-30T10:00:01.000+00:00")
        second.close()
        settle_all(store, state)
        assert {r["email"]: r["status"] for r in store.recipients(ISSUE)} == {
            "a@x.org": "sent", "b@x.org": "sent"}


def test_the_sending_processes_die_with_a_killed_parent(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """No orphan keeps sending after SIGKILL of the parent: a rerun would meet rows it is
    still sending. At most ``concurrency`` recipients are left ``unknown``."""
    _setup(project, sink.url)
    proc, children = _start(project, sink, 40)
    assert len(children) == 2
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in children):
        assert time.monotonic() < deadline, "a sending process outlived its parent"
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(sink.received) < READERS // 2
    states = statuses(run_cli)  # report replays both journals
    unknown = {a for a, s in states.items() if s == "unknown"}
    assert len(unknown) <= CONCURRENCY
    assert {a for a in sink.recipients() if states[a] not in ("sent", "unknown")} == set()


def test_greylisting_leaves_both_processes_sending(project: Path, run_cli: RunCli) -> None:
    """A 4xx for a few recipients is about them, not the pace: both processes go on to the
    end (the pace they share is not slowed), and everyone is sent once, the greylisted after
    their retry."""
    greylist = Greylist(0.02)
    server = SmtpSink(rules=[greylist, _slow])
    with server.running_in_thread():
        addresses = _setup(project, server.url)
        proc, children = _start(project, server, 1)
        assert len(children) == 2
        deadline = time.monotonic() + 60
        while len(server.received) < READERS // 2 or not greylist.deferred:
            assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
            time.sleep(0.002)
        assert sorted(children_of(proc.pid)) == sorted(children)  # neither gave up its share
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        received = Counter(server.recipients())
        assert set(received) == set(addresses) and set(received.values()) == {1}
        assert set(statuses(run_cli).values()) == {"sent"}


def _paced(project: Path, url: str, rate: str, readers: int) -> list[str]:
    """Two processes (set in the config), a send of ``readers`` paced at ``rate``."""
    addresses = _setup(project, url)[:readers]
    edit(project / "mirage.yaml", "  rate_per_second: null", f"  rate_per_second: {rate}")
    lines = ["email,name,lang"] + [f"{a},Reader {n},en" for n, a in enumerate(addresses)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return addresses


def test_a_configured_rate_holds_for_both_processes_together(project: Path,
                                                             run_cli: RunCli) -> None:
    """``rate_per_second: 100`` with two processes, to a relay that allows 100 a second
    (a rolling window) and refuses with rate words above it: the processes start on one
    grid, so the relay has next to nothing to refuse (1 to 4 of 400 measured; pacing apart,
    each at 100, it refused 103), and nobody is left pending."""
    throttle = Throttle(100, disconnect_every=0)
    server = SmtpSink(rules=[throttle])
    with server.running_in_thread():
        addresses = _paced(project, server.url, "100", 400)
        proc, children = _start(project, server, 1)
        assert len(children) == 2  # a number set in the config is taken with a rate
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        received = Counter(server.recipients())
        assert set(received) == set(addresses) and set(received.values()) == {1}
        assert throttle.refused <= len(addresses) // 20, throttle.refused
    assert set(statuses(run_cli).values()) == {"sent"}


def test_a_throttling_relay_is_learnt_once_for_both_processes(project: Path,
                                                              run_cli: RunCli) -> None:
    """No rate set; the relay allows 100 msg/s with bursts of 10 and answers 451 above it.
    The two processes learn its pace together: refusals stay within one process's bound
    (tests/delivery/test_delivery_pacing.py: under 0.3 of the messages; measured 115 and 124
    of 400 for one process, 111 and 115 for two, 120 of 600), and nobody is left pending."""
    bucket = TokenBucket(100, burst=10)
    server = SmtpSink(rules=[bucket])
    with server.running_in_thread():
        addresses = _paced(project, server.url, "null", READERS)
        proc, children = _start(project, server, 1)
        assert len(children) == 2
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        received = Counter(server.recipients())
        assert set(received) == set(addresses) and set(received.values()) == {1}
        assert 0 < bucket.refused < 0.3 * len(addresses), bucket.refused
    assert set(statuses(run_cli).values()) == {"sent"}


def test_each_sending_process_signs_its_share(project: Path, run_cli: RunCli) -> None:
    """With ``dkim:``, every message of a two-process send reaches the relay signed and
    verifies: the key, loaded by the parent, signs in each forked process."""
    from test_dkim_config import ENV, add_dkim, pem
    from test_dkim_signer import rsa_key
    from test_dkim_signer import verify as verify_for

    server = SmtpSink()
    with server.running_in_thread():
        addresses = _setup(project, server.url)
        add_dkim(project, f"  domain: example.org\n  selector: news2026\n  key_env: {ENV}\n")
        result = run_cli("send", SAMPLE_ISSUE, "--yes", env={ENV: pem(rsa_key())},
                         timeout=120)
        assert result.code == 0, result.err
        assert sorted(server.recipients()) == sorted(addresses)
        for message in server.received:
            assert verify_for(message.data, rsa_key(), "example.org", "news2026")


def test_each_sending_process_gives_every_message_its_own_return_path(
        project: Path, run_cli: RunCli) -> None:
    """With ``bounces:`` (VERP), a two-process send's envelope senders are per recipient,
    signed tokens the bounce processing will recognise, as in one process."""
    server = SmtpSink()
    with server.running_in_thread():
        addresses = _setup(project, server.url)
        edit(project / "mirage.yaml", "# bounces:\n#   address: bounces@mirageproject.eu",
             "bounces:\n  address: bounces@mirageproject.eu")
        result = run_cli("send", SAMPLE_ISSUE, "--yes", timeout=120)
        assert result.code == 0, result.err
        assert sorted(server.recipients()) == sorted(addresses)
        senders = [m.sender for m in server.received]
        assert len(set(senders)) == len(addresses)
        assert all(s.startswith("bounces+") and s.endswith("@mirageproject.eu") for s in senders)


# the CLI with its sending processes' store waiting 0.3 s for a lock instead of 10 s: the
# lock a test holds then outlasts the processes' patience, not the parent's (10 s)
SHORT_WAIT_CLI = """
import functools, sys
from mirage_mailer.services import sending_processes
sending_processes.open_store = functools.partial(sending_processes.open_store, timeout=0.3)
from mirage_mailer.cli import main
main(sys.argv[1:])
"""


def test_a_store_locked_under_the_sending_processes_exits_3_and_keeps_the_state(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """Another process holds the tracking store's write lock longer than the sending
    processes wait: they stop, and the run ends as a one-process send does, exit 3 (a lock
    held, state kept), not 2 ("invalid input, nothing sent") after hundreds went out."""
    _setup(project, sink.url, readers=400)  # the least that two processes are forked for
    proc = subprocess.Popen([sys.executable, "-c", SHORT_WAIT_CLI, "send", SAMPLE_ISSUE,
                             "--yes"], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(sink.received) < 40 and proc.poll() is None:
        assert time.monotonic() < deadline, "the send never got going"
        time.sleep(0.005)
    children = children_of(proc.pid)
    assert len(children) == 2  # transport.processes: 2
    holder = sqlite3.connect(project / ".mirage" / "tracking.sqlite", timeout=10,
                             isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:  # until both sending processes have given up and been reaped
        while children_of(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, (out, err)
    assert "cannot write to the tracking database: database is locked" in err
    assert "Traceback" not in err
    states = statuses(run_cli)  # what went out is recorded; the rest is left for a rerun
    assert "pending" in states.values()
    assert {a for a in sink.recipients() if states[a] not in ("sent", "unknown")} == set()
    assert len([s for s in states.values() if s == "unknown"]) <= CONCURRENCY
