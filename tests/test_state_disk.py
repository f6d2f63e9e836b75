"""A full disk or an unwritable ``.mirage/``: one line naming the file and what to do, exit 3,
nothing lost (audit: ``internal error: OSError ...`` exit 70, or no file and no advice).

The disk is made full for real with a file size limit (``RLIMIT_FSIZE``, SIGXFSZ ignored: a
write past it fails with EFBIG, as one on a full disk fails with ENOSPC), in a wrapper around
the real CLI. A folder that cannot be written is a file standing where the folder goes, which
stops root too (CI runs as root, where ``chmod`` stops nothing); ``chmod`` is tried as well
where it bites. The journal filling up mid-send is a unit against a real SQLite store.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, Run, RunCli, edit, statuses, use_relay
from mirage_mailer import cli as cli_module
from mirage_mailer.services import shards
from mirage_mailer.services.journal import Journal, journal_path, read_journal
from mirage_mailer.services.recorder import SendRecorder
from mirage_mailer.store import NewRecipient, Store, StoreUnavailable, hashed_key
from mirage_mailer.util.locks import Lock
from mirage_mailer.util.statefault import StateWriteError
from support.smtp_sink import SmtpSink

ISSUE = "2021-10-partners-meeting"
LIMITED = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv = ["mirage-mailer", *sys.argv[2:]]
runpy.run_module("mirage_mailer", run_name="__main__")
"""
ROOT = os.geteuid() == 0


def run_limited(project: Path, limit: int, *args: str) -> Run:
    """The CLI with no file allowed past ``limit`` bytes: a disk with that much room."""
    proc = subprocess.run([sys.executable, "-c", LIMITED, str(limit), *args], cwd=project,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return Run(proc.returncode, proc.stdout, proc.stderr)


def problem_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning:" not in line
            and "no terminal and no --name" not in line]


def test_send_with_no_room_for_its_journal_says_so_sends_nothing_and_a_rerun_sends(
        project: Path, run_cli: RunCli) -> None:
    result = run_limited(project, 1_000_000, "send", SAMPLE_ISSUE, "--yes")  # journal: 1 MiB
    assert result.code == 3, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err
    assert problem_lines(result.err)[-1] == (
        f".mirage/journal/{ISSUE}.log: cannot write: File too large (raise this process's "
        "file size limit (ulimit -f) or free space; the tracking state is kept; a rerun "
        "resumes where this one stopped)")
    assert not list((project / "outbox/new").glob("*"))
    assert not (project / f".mirage/journal/{ISSUE}.log").exists()
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    assert set(statuses(run_cli).values()) == {"sent"}


@pytest.mark.parametrize(("room", "line"), [
    (20, ".mirage/secret: cannot write: File too large (raise this process's file size "
         "limit (ulimit -f) or free space)"),
    (5000, ".mirage/tracking.sqlite: cannot write to the tracking database: disk I/O error "
           "(free space on that disk, or make the folder writable by this user; a rerun "
           "resumes where this one stopped)"),
])
def test_a_new_project_with_no_room_for_its_secret_or_store_says_which(
        project: Path, room: int, line: str) -> None:
    result = run_limited(project, room, "send", SAMPLE_ISSUE, "--yes")
    assert result.code == 3, result.err
    assert problem_lines(result.err) == [line]
    assert not list((project / "outbox/new").glob("*"))


def test_the_last_resort_names_a_state_file_that_cannot_be_written(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def full(**kw: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), ".mirage/held/a.json")

    monkeypatch.setattr(cli_module.cli, "main", full)
    with pytest.raises(SystemExit) as stopped:
        cli_module.main(["process-unsubscribes"])
    assert stopped.value.code == 3
    assert capsys.readouterr().err == (
        ".mirage/held/a.json: cannot use it: No space left on device (free "
        "space on that disk)\n")


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="sending processes: Linux with two cores")
def test_two_sending_processes_with_no_room_name_their_journals(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    use_relay(project, sink.url, processes=2)
    lines = ["email,name"] + [f"r{n:03d}@example.org,R {n}" for n in range(500)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_limited(project, 1_000_000, "send", SAMPLE_ISSUE, "--yes")
    assert result.code == 3, result.err
    assert "failed: OSError" not in result.err and "Traceback" not in result.err
    assert f".mirage/journal/{ISSUE}.log: cannot write: File too large (" in result.err
    assert "a rerun resumes where this one stopped" in result.err
    assert sink.received == []
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    assert len(sink.received) == 500


@pytest.mark.parametrize("command", [("send", SAMPLE_ISSUE, "--yes"), ("run-due",)])
def test_a_locks_folder_that_cannot_be_made_is_one_line_and_exit_3(
        project: Path, run_cli: RunCli, command: tuple[str, ...]) -> None:
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:00:00+02:00")
    assert (project / ".mirage").is_dir()  # init made it
    (project / ".mirage/locks").write_text("not a folder\n")
    result = run_cli(*command)
    assert result.code == 3, result.err
    assert ".mirage/locks: cannot write: File exists (a file stands where a folder is " \
        "expected: move it away; the tracking state is kept" in result.err
    assert "internal error" not in result.err
    assert not list((project / "outbox/new").glob("*"))


@pytest.mark.skipif(ROOT, reason="root writes into a folder chmod 0500")
def test_a_read_only_state_folder_is_one_line_and_exit_3(project: Path,
                                                        run_cli: RunCli) -> None:
    assert run_cli("send", SAMPLE_ISSUE, "--yes", "--limit", "1").code == 0
    state = project / ".mirage"
    for path in state.rglob("*"):
        if path.is_dir():
            path.chmod(0o500)
    state.chmod(0o500)
    try:
        result = run_cli("send", SAMPLE_ISSUE, "--yes")
        assert result.code == 3, result.err
        assert len(problem_lines(result.err)) == 1, result.err
        assert "make the folder writable by this user" in result.err
        assert "a rerun resumes where this one stopped" in result.err
        assert "internal error" not in result.err
        assert len(list((project / "outbox/new").iterdir())) == 1
        report = run_cli("report", SAMPLE_ISSUE, "--format", "json")
        assert report.code == 0, report.err
        assert '"sent": 1' in report.out
    finally:
        for path in [state, *state.rglob("*")]:
            if path.is_dir():
                path.chmod(0o700)


def test_a_lock_whose_file_cannot_be_written_names_it(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("mirage_mailer.util.locks.os.pwrite", full)
    lock = Lock(tmp_path / "locks/run-due.lock", "run-due")
    with pytest.raises(StateWriteError) as caught:
        lock.acquire()
    assert str(caught.value.problems[0]).endswith(
        "locks/run-due.lock: cannot write: No space left on device (free space on that disk; "
        "the tracking state is kept; a rerun resumes where this one stopped)")
    monkeypatch.undo()
    with Lock(tmp_path / "locks/run-due.lock", "run-due"):  # the failed one left no lock
        pass


# -- the journal filling up in the middle of a send ----------------------------------------


class _SmallJournal(Journal):
    SPAN = 4096


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / ".mirage/tracking.sqlite") as s:
        yield s


def _full_past(monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    """``posix_fallocate`` fails past ``room`` bytes, as on a disk with that much free."""
    real = os.posix_fallocate

    def fallocate(fd: int, offset: int, size: int) -> None:
        if offset + size > room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, offset, size)

    monkeypatch.setattr("mirage_mailer.services.journal.os.posix_fallocate", fallocate)


def _queue(store: Store, count: int) -> list[tuple[int, str]]:
    emails = [f"r{n:03d}@x.org" for n in range(count)]
    store.add_recipients(ISSUE, [NewRecipient(e, None, None, "main") for e in emails])
    return [(r.id, hashed_key(r.email)) for r in store.iter_pending(ISSUE)]


def _status(store: Store) -> dict[str, int]:
    return {k: v for k, v in store.counts(ISSUE).items() if v}


def test_a_journal_with_no_room_to_grow_hands_its_outcomes_to_the_store(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _full_past(monkeypatch, _SmallJournal.SPAN)
    journal = _SmallJournal(journal_path(tmp_path / ".mirage", ISSUE), ISSUE)
    rows = _queue(store, 60)  # ~60 claims and 60 outcomes: far more than 4 KiB of lines

    async def run() -> None:
        recorder = SendRecorder(store, journal)
        for key, who in rows:
            assert recorder.claim(key, who, 0, f"<{key}@x>")
            recorder.hold(key, who, 0, f"<{key}@x>", "sent", 250, "2.0.0 ok")
        assert recorder.failure is None
        recorder.close()

    asyncio.run(run())
    assert _status(store) == {"sent": 60}


class _FullStore:
    """The store on the same full disk: every commit refused."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def claimable(self, recipient_id: int) -> bool:
        return self.store.claimable(recipient_id)

    def stamp(self) -> str:
        return self.store.stamp()

    def record_batch(self, *args: object) -> None:
        raise StoreUnavailable("tracking.sqlite: cannot write: database or disk is full")


def test_a_full_journal_and_a_full_store_stop_the_run_and_lose_nobody(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _full_past(monkeypatch, _SmallJournal.SPAN)
    state = tmp_path / ".mirage"
    journal = _SmallJournal(journal_path(state, ISSUE), ISSUE)
    rows = _queue(store, 60)
    sent: list[int] = []

    async def run() -> None:
        recorder = SendRecorder(_FullStore(store), journal)  # type: ignore[arg-type]
        with pytest.raises(StateWriteError) as caught:
            for key, who in rows:
                recorder.claim(key, who, 0, f"<{key}@x>")
                sent.append(key)  # on the wire now
                recorder.hold(key, who, 0, f"<{key}@x>", "sent", 250, "2.0.0 ok")
        assert str(caught.value.problems[0]).endswith(
            f"journal/{ISSUE}.log: cannot write: No space left on device (free space on that "
            "disk; the tracking state is kept; a rerun resumes where this one stopped)")
        journal.close()  # the run ends; the store is still full, so the journal stays

    asyncio.run(run())
    assert 0 < len(sent) < 60  # it stopped taking recipients
    replay = read_journal(journal.path)
    known = {o[0] for o in replay.outcomes} | {c[0] for c in replay.claims}
    # every message that left is in the journal: sent, or at worst unknown; never pending
    assert set(sent[:-1]) <= {o[0] for o in replay.outcomes}
    assert sent[-1] in known


def test_a_sending_process_that_hits_a_full_disk_names_the_file(tmp_path: Path) -> None:
    target = str(tmp_path / ".mirage/held/x.json")

    def body(index: int, channel: shards.Channel, stop: shards.ChildStop) -> shards.ShardDone:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)

    started = shards.start(1, body)
    shards.run(started, None, lambda: None, asyncio.run)
    done = started[0].done
    assert done is not None and done.error is not None
    kind, problems = done.error
    assert kind == "delivery"
    assert [str(p) for p in problems] == [
        f"{target}: cannot write: No space left on device (free space on that disk; the "
        "tracking state is kept; a rerun resumes where this one stopped)"]


def test_report_with_no_room_beside_an_intact_store_says_why_and_exits_3(
        project: Path, run_cli: RunCli) -> None:
    """A reader of a WAL store makes its ``-shm`` index beside it; with no room for that,
    SQLite says "disk I/O error", which ``report`` blamed on the file, its permissions and
    tracking.database, with exit 2 (audit F5). It is the disk's state: exit 3, its fix."""
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0  # the Maildir outbox
    result = run_limited(project, 4096, "report", SAMPLE_ISSUE, "--format", "json")
    assert result.code == 3, result.err
    assert problem_lines(result.err) == [
        ".mirage/tracking.sqlite: cannot read the tracking database: disk I/O error (this "
        "process may not make files that large) (raise this process's file size limit "
        "(ulimit -f) or free space; the tracking state is intact, run the same command "
        "again then)"]
    assert result.out == ""
    assert set(statuses(run_cli).values()) == {"sent"}  # with room again: all there


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real disk, 8 MiB of tmpfs, to fill up: root only, where mounting is allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if not ROOT or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs",
                                   str(mount)], capture_output=True).returncode != 0:
        pytest.skip("needs root and mount for a real full disk")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_report_on_a_full_disk_names_it(full_disk: Path, run_cli: RunCli) -> None:
    project = full_disk / "proj"
    assert run_cli("init", str(project)).code == 0
    assert run_cli("send", SAMPLE_ISSUE, "--yes", cwd=project).code == 0
    with (full_disk / "filler").open("wb") as filler, pytest.raises(OSError):
        while True:  # until the disk is full
            filler.write(b"\0" * 65536)
            filler.flush()
    result = run_cli("report", SAMPLE_ISSUE, "--format", "json", cwd=project)
    assert result.code == 3, result.err
    assert problem_lines(result.err) == [
        ".mirage/tracking.sqlite: cannot read the tracking database: disk I/O error (the "
        "disk is full) (free space on that disk; the tracking state is intact, run the same "
        "command again then)"]
    (full_disk / "filler").unlink()
    assert run_cli("report", SAMPLE_ISSUE, cwd=project).code == 0
