"""Two project folders whose ``tracking.database`` names the same SQLite file take the same
send and run-due locks (kept beside that file), so the same issue is never sent from both at
once: real CLI subprocesses, a gated aiosmtpd relay on 127.0.0.1 holding the first run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, use_relay
from support.faults import Gate
from support.smtp_sink import SmtpSink

ISSUE = "2021-10-partners-meeting"
FIRST_HOUR = "2021-10-29T10:00:00+02:00"  # an hour after the sample's send_at
SECRET = {"MIRAGE_TEST_SECRET": "0123456789abcdef" * 4}


def shared_folders(project: Path, sink: SmtpSink, rows: int) -> tuple[Path, Path, Path]:
    """The sample project (A) and a copy of it (B), both on one store outside either."""
    database = project.parent / "shared" / "shared.sqlite"
    database.parent.mkdir()
    use_relay(project, sink.url, concurrency=1)
    edit(project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         f"  database: {database}\n  secret_env: MIRAGE_TEST_SECRET")
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:00:00+02:00")
    lines = ["email,name,lang"] + [f"reader{n:03d}@example.org,Reader {n},en"
                                   for n in range(rows)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    other = project.parent / "copy"
    shutil.copytree(project, other)
    return project, other, database


@pytest.mark.parametrize("first", [["send", SAMPLE_ISSUE, "--yes"],
                                   ["run-due", "--now", FIRST_HOUR]],
                         ids=["send", "run-due"])
@pytest.mark.smtp_fault(rules=[Gate(after=1)])
def test_a_second_folder_on_the_same_store_cannot_send_the_issue_meanwhile(
        project: Path, run_cli: RunCli, sink: SmtpSink, first: list[str]) -> None:
    one, two, database = shared_folders(project, sink, rows=6)
    gate = sink.rules[0]
    assert isinstance(gate, Gate)
    running = subprocess.Popen([sys.executable, "-m", "mirage_mailer", *first], cwd=one,
                               env={**os.environ, **SECRET}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not sink.received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.received, "the first run sent nothing"
        second = run_cli("send", SAMPLE_ISSUE, "--yes", cwd=two, env=SECRET)
    finally:
        gate.open()
        _out, errors = running.communicate(timeout=60)
    assert running.returncode == 0, errors
    assert second.code == 3, second.err
    lock = database.parent / "shared.sqlite.locks" / f"send-{ISSUE}.lock"
    assert f"{lock}: a send of {ISSUE} is already running (pid {running.pid})" in second.err
    assert Counter(sink.recipients()).most_common(1)[0][1] == 1  # nobody got it twice
    assert len(sink.recipients()) == 6
    assert not (one / ".mirage" / "locks" / "run-due.lock").exists()  # kept with the store


def test_the_default_store_keeps_its_locks_in_the_state_folder(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    assert (project / ".mirage" / "locks" / f"send-{ISSUE}.lock").exists()
    assert not list(project.glob(".mirage/*.locks"))


def test_every_project_naming_one_file_finds_the_same_locks(tmp_path: Path) -> None:
    """The place follows the database alone: another project's default store, a file
    elsewhere, and that file under another name (a symbolic link)."""
    from mirage_mailer.util.locks import lock_dir

    one, two = tmp_path / "a" / ".mirage", tmp_path / "b" / ".mirage"
    one.mkdir(parents=True)
    assert lock_dir(one, one / "tracking.sqlite") == one / "locks"
    assert lock_dir(two, one / "tracking.sqlite") == one / "locks"
    shared = tmp_path / "srv" / "shared.sqlite"
    shared.parent.mkdir()
    shared.touch()
    (tmp_path / "link.sqlite").symlink_to(shared)
    assert lock_dir(one, shared) == lock_dir(two, tmp_path / "link.sqlite") \
        == tmp_path / "srv" / "shared.sqlite.locks"
