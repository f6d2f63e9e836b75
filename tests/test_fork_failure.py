"""A sending process that cannot be forked (a process or memory limit: ``fork`` fails with
EAGAIN or ENOMEM) must not end a send with "internal error": the send goes on in one
process, every reader once. Before, the processes already forked sent their share while the
parent raised, so half the list went and the rest stayed pending behind a traceback-like
line, and the failed fork's pipe stayed open."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, edit
from mirage_mailer.services import shards

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked processes")


def _fork_failing_at(monkeypatch: pytest.MonkeyPatch, at: int) -> list[int]:
    """``os.fork`` that fails on its ``at``-th call, as under ``ulimit -u``."""
    real, calls = os.fork, []

    def fork() -> int:
        calls.append(1)
        if len(calls) == at:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real()
    monkeypatch.setattr(os, "fork", fork)
    return calls


@linux
def test_a_failed_fork_leaves_no_process_sending_and_no_pipe_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = tmp_path / "ran"

    def body(index: int, _channel: shards.Channel, _stop: shards.ChildStop) -> shards.ShardDone:
        ran.write_text(str(index))  # what a sending process does first: its share
        return shards.ShardDone(index)

    _fork_failing_at(monkeypatch, 2)
    before = sorted(os.listdir("/proc/self/fd"))
    started: list[shards.Shard] = []
    with pytest.raises(BlockingIOError):
        shards.start(2, body, started)
    shards.reap(started)
    assert len(started) == 1
    status = started[0].status
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert not ran.exists(), "a process forked before the failure sent its share"
    assert sorted(os.listdir("/proc/self/fd")) == before


@linux
def test_all_forks_made_then_every_process_runs(tmp_path: Path) -> None:
    """The control: with every fork made, each process gets its go and runs its share."""
    def body(index: int, _channel: shards.Channel, _stop: shards.ChildStop) -> shards.ShardDone:
        (tmp_path / f"ran-{index}").write_text("")
        return shards.ShardDone(index, counts=(index + 1, 0, 0, 0))

    started: list[shards.Shard] = []
    shards.start(3, body, started)
    shards.run(started, None, lambda: None, _run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ran-0", "ran-1", "ran-2"]
    assert [s.done.counts[0] for s in started if s.done is not None] == [1, 2, 3]


def _run(main: object) -> None:
    import asyncio

    asyncio.run(main)  # type: ignore[arg-type]


@linux
@pytest.mark.parametrize("failing", [1, 2], ids=["first-fork", "second-fork"])
def test_a_send_whose_fork_fails_goes_on_in_one_process(
        project: Path, monkeypatch: pytest.MonkeyPatch, failing: int) -> None:
    from mirage_mailer.services.loader import open_project
    from mirage_mailer.services.sending import SendOptions, prepare, send
    from support.smtp_sink import SmtpSink

    server = SmtpSink()
    with server.running_in_thread():
        config = project / "mirage.yaml"
        edit(config, "  url: maildir:outbox", f"  url: {server.url}")
        edit(config, "  starttls: always", "  starttls: never")
        edit(config, "  rate_per_second: 10", "  rate_per_second: null")
        edit(config, "  concurrency: 4", "  concurrency: 4\n  processes: 2")
        addresses = [f"reader{n:04d}@example.org" for n in range(500)]
        (project / "lists/subscribers.csv").write_text(
            "email\n" + "\n".join(addresses) + "\n", encoding="utf-8")
        opened = open_project(config, project / SAMPLE_ISSUE)
        calls = _fork_failing_at(monkeypatch, failing)
        outcome = send(prepare(opened, SendOptions()), SendOptions())
    assert len(calls) == failing  # it tried to fork, and stopped at the failure
    assert outcome.this_run.sent == 500
    assert sorted(server.recipients()) == addresses  # every reader once
    assert any(f"could not start sending process {failing} of 2 (Resource temporarily "
               "unavailable): sending in one process" in note
               for note in outcome.this_run.notes), outcome.this_run.notes
