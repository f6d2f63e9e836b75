"""A claim journal lost, damaged or of another store never causes an unreported duplicate.

Audit 15i: a send killed mid-run, then its journal garbled, cut or deleted (F1), or replaced
by another project's (F3): the next send mailed again readers the relay already had and
recorded them ``sent``, or recorded ``sent`` readers it never mailed. Real CLI runs against
an SMTP relay on 127.0.0.1, killed with SIGKILL at a message count.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, statuses, use_relay
from support.processes import wait_send_gone
from support.smtp_sink import Call, SmtpSink

ISSUE = "2021-10-partners-meeting"
READERS = 150


def _slow(call: Call) -> None:
    if call.stage == "DATA":
        time.sleep(0.003)  # the send runs long enough to be killed in the middle


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink(rules=[_slow])
    with server.running_in_thread():
        yield server


def with_readers(project: Path, url: str) -> list[str]:
    use_relay(project, url, timeout=2, concurrency=3)
    addresses = [f"reader{n:04d}@example.org" for n in range(READERS)]
    lines = ["email,name,lang"] + [f"{a},Reader {n},en" for n, a in enumerate(addresses)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return addresses


def killed_send(project: Path, sink: SmtpSink, at: int) -> None:
    """``send --yes`` killed (SIGKILL, its whole process group) once the relay has ``at``
    messages, well before its end."""
    proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE,
                             "--yes"], cwd=project, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while len(sink.received) < at and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the send ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    wait_send_gone(project, ISSUE)
    assert len(sink.received) < READERS


def damage(project: Path, how: str) -> None:
    folder = project / ".mirage" / "journal"
    logs = sorted(folder.rglob("*.log"))
    assert logs, "the killed send left no journal"
    for log in logs:
        if how == "garble":  # its first bytes overwritten
            with log.open("r+b") as f:
                f.write(b"XXXXXX")
        elif how == "trunc":
            os.truncate(log, 30)
    if how == "del":
        shutil.rmtree(folder)


@pytest.mark.parametrize("how", ["garble", "trunc", "del"])
def test_a_lost_or_damaged_journal_leaves_what_may_have_gone_unknown(
        project: Path, run_cli: RunCli, sink: SmtpSink, how: str) -> None:
    addresses = with_readers(project, sink.url)
    killed_send(project, sink, 40)
    damage(project, how)
    rerun = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert rerun.code == 0, rerun.err
    received = Counter(sink.recipients())
    states = statuses(run_cli)
    twice = {a for a, n in received.items() if n > 1}
    assert {a: states[a] for a in twice if states[a] != "unknown"} == {}
    assert "journal" in rerun.err and "unknown" in rerun.err  # said, not silent
    unknown = {a for a, s in states.items() if s == "unknown"}
    assert unknown  # the journal's loss is reported as what it is
    assert {a for a, s in states.items() if s not in ("sent", "unknown")} == set()
    if how != "del":  # kept for a look, never deleted quietly
        assert list((project / ".mirage" / "journal").rglob("*.damaged"))
    # the reported ones are sent again only when asked: then everyone has it
    assert run_cli("send", SAMPLE_ISSUE, "--yes", "--resend-unknown").code == 0
    assert set(sink.recipients()) == set(addresses)
    doubled = {a for a, n in Counter(sink.recipients()).items() if n > 1}
    assert doubled <= unknown


def test_report_after_a_crash_never_deletes_a_damaged_journal(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    with_readers(project, sink.url)
    killed_send(project, sink, 40)
    damage(project, "garble")
    states = statuses(run_cli)  # report settles the stopped send's journal first
    received = set(sink.recipients())
    assert {a for a in received if states[a] not in ("sent", "unknown")} == set()
    assert list((project / ".mirage" / "journal").rglob("*.damaged"))


def test_a_journal_of_another_store_is_set_aside_not_replayed(
        project: Path, run_cli: RunCli, tmp_path: Path) -> None:
    """Two folders of the same project (same issue, same readers) each killed mid-send;
    the first one's journal copied over the second's must not record, in the second's
    store, readers the second never mailed."""
    other = tmp_path / "copy"
    shutil.copytree(project, other)
    first, second = SmtpSink(rules=[_slow]), SmtpSink(rules=[_slow])
    with first.running_in_thread(), second.running_in_thread():
        with_readers(project, first.url)
        addresses = with_readers(other, second.url)
        killed_send(project, first, 90)
        killed_send(other, second, 25)
        shutil.rmtree(other / ".mirage" / "journal")
        shutil.copytree(project / ".mirage" / "journal", other / ".mirage" / "journal")
        rerun = run_cli("send", SAMPLE_ISSUE, "--yes", cwd=other)
        assert rerun.code == 0, rerun.err
        states = statuses_in(run_cli, other)
        got = Counter(second.recipients())
        # nobody is 'sent' in this store without this store's relay having it
        assert {a for a, s in states.items() if s == "sent" and not got[a]} == set()
        assert ".foreign" in rerun.err
        assert list((other / ".mirage" / "journal").glob("*.foreign"))
        assert run_cli("send", SAMPLE_ISSUE, "--yes", "--resend-unknown", cwd=other).code == 0
        got = Counter(second.recipients())
        assert set(got) == set(addresses)
        unknown = {a for a, s in states.items() if s == "unknown"}
        assert {a for a, n in got.items() if n > 1} <= unknown


def statuses_in(run_cli: RunCli, folder: Path) -> dict[str, str]:
    report = run_cli("report", SAMPLE_ISSUE, "--format", "json", cwd=folder)
    assert report.code == 0, report.err
    return {r["email"]: r["status"] for r in json.loads(report.out)["recipients"]}


def test_folders_sharing_a_store_share_its_journal(project: Path, run_cli: RunCli,
                                                   sink: SmtpSink, tmp_path: Path) -> None:
    """Audit 15i F2: two project folders on one store outside ``.mirage/``; a send killed in
    the first, then a send from the second replays the first's journal (it lives beside the
    store), so only the messages on the wire at the kill are ``unknown``."""
    shared = tmp_path / "shared" / "tracking.sqlite"
    shared.parent.mkdir()
    edit(project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         f"  database: {shared}")
    addresses = with_readers(project, sink.url)
    other = tmp_path / "second"
    shutil.copytree(project, other)
    killed_send(project, sink, 40)
    assert list((shared.parent / "tracking.sqlite.mirage" / "journal").glob("*.log"))
    (other / ".mirage").mkdir(exist_ok=True)
    for name in ("secret", "sent"):  # the project's, as its operator shares them
        if (project / ".mirage" / name).exists():
            shutil.copy2(project / ".mirage" / name, other / ".mirage" / name)
    rerun = run_cli("send", SAMPLE_ISSUE, "--yes", cwd=other)
    assert rerun.code == 0, rerun.err
    states = statuses_in(run_cli, other)
    unknown = {a for a, s in states.items() if s == "unknown"}
    assert len(unknown) <= 3  # the concurrency: the journal was found and replayed whole
    received = Counter(sink.recipients())
    assert {a for a, n in received.items() if n > 1} <= unknown
    assert set(addresses) - unknown <= set(received)


def test_a_run_still_alive_elsewhere_is_left_alone_and_a_dead_one_is_ended(
        tmp_path: Path) -> None:
    """Another folder's send sharing the store is running: its run and its reserved rows are
    not touched; once its process is gone, the rows it reserved are ``unknown``."""
    from mirage_mailer.services.journal import settle
    from mirage_mailer.store import NewRecipient, Store
    from mirage_mailer.store.journal_runs import PREFIX, _started

    state = tmp_path / ".mirage"
    with Store(state / "tracking.sqlite") as store:
        store.add_recipients(ISSUE, [NewRecipient(f"r{n}@x.org", None, None, "main")
                                     for n in range(3)])
        ids = [r.id for r in store.iter_pending(ISSUE)]
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            store.register_journal(ISSUE, "elsewhere")
            store.reserve("elsewhere", ids[:2])
            with store._write() as conn:  # registered by that process, as its send does
                conn.execute("UPDATE senders SET pid = ?, expires_at = ? WHERE owner = ?",
                             (other.pid, _started(other.pid), PREFIX + "elsewhere"))
            assert settle(store, state, ISSUE) is not None
            assert store.journal_runs(ISSUE) == {"elsewhere"}
            assert store.counts(ISSUE)["pending"] == 3
        finally:
            other.kill()
            other.wait(10)
        done = settle(store, state, ISSUE)
        assert done is not None and done.unknown == 2
        assert store.journal_runs(ISSUE) == set()
        assert store.counts(ISSUE)["unknown"] == 2 and store.counts(ISSUE)["pending"] == 1


@pytest.mark.parametrize(("how", "fmt", "said"), [("garble", "json", "damaged"),
                                                  ("del", "csv", "missing")])
def test_report_says_what_its_settling_found(project: Path, run_cli: RunCli, sink: SmtpSink,
                                             how: str, fmt: str, said: str) -> None:
    """``report`` settles a crashed send's journal before counting: a journal damaged or
    lost is said on stderr as ``send`` says it (stdout stays clean JSON or CSV), once."""
    with_readers(project, sink.url)
    killed_send(project, sink, 40)
    damage(project, how)
    first = run_cli("report", SAMPLE_ISSUE, "--format", fmt)
    assert first.code == 0, first.err
    warned = [line for line in first.err.splitlines() if line.startswith("warning: ")]
    assert any(said in line for line in warned), first.err
    assert any("are now 'unknown'" in line for line in warned), first.err
    if fmt == "json":
        rows = json.loads(first.out)["recipients"]
    else:
        rows = list(csv.DictReader(first.out.splitlines()))
    assert {r["status"] for r in rows} >= {"unknown"}
    again = run_cli("report", SAMPLE_ISSUE)  # settled: nothing more to say
    assert again.code == 0 and "warning: " not in again.err, again.err


def test_serve_logs_what_its_settling_found(project: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """A report page settles as ``report`` does: a stopped send whose journal is gone is
    said in the server's log, not only turned ``unknown``."""
    from mirage_mailer.project.config import load_settings
    from mirage_mailer.store import NewRecipient, Store
    from mirage_mailer.web.stores import KeptStores

    settings = load_settings(project / "mirage.yaml")
    with Store(settings.tracking.database) as store:  # a run that died, its journal gone
        store.add_recipients(ISSUE, [NewRecipient("r@x.org", None, None, "main")])
        store.register_journal(ISSUE, "gone")
        store.reserve("gone", [r.id for r in store.iter_pending(ISSUE)])
    with caplog.at_level("WARNING", logger="mirage_mailer.web.stores"), \
            KeptStores(settings).existing() as opened:
        assert opened is not None and opened.counts(ISSUE)["unknown"] == 1
    said = [r.getMessage() for r in caplog.records if r.name == "mirage_mailer.web.stores"]
    assert any("is missing" in line for line in said), said
    assert any("are now 'unknown'" in line for line in said), said
