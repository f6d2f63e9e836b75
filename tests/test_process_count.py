"""``transport.processes``: ``auto`` by default, and how many sending processes a send then
forks (``services/sending_processes.process_count``); in process, no network."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, edit
from mirage_mailer.project.config import load_settings
from mirage_mailer.services.sending import SendOptions
from mirage_mailer.services.sending_processes import process_count
from mirage_mailer.util.errors import InputError


def _settings(project: Path, *, rate: str = "null", processes: str | None = None,
              url: str = "smtp://127.0.0.1:2525") -> Path:
    config = project / "mirage.yaml"
    edit(config, "  url: maildir:outbox", f"  url: {url}")
    edit(config, "  rate_per_second: 10", f"  rate_per_second: {rate}")
    if processes is not None:
        edit(config, "  concurrency: 4", f"  concurrency: 4\n  processes: {processes}")
    return config


def test_auto_is_the_default_and_a_number_is_kept(project: Path) -> None:
    assert load_settings(_settings(project)).transport.processes is None  # auto
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: 4\n  processes: 3")
    assert load_settings(project / "mirage.yaml").transport.processes == 3


@pytest.mark.parametrize("value", ["0", "17", "two", "true", "1.5"])
def test_a_wrong_value_is_one_line_that_names_auto(project: Path, value: str) -> None:
    config = _settings(project, processes=value)
    with pytest.raises(InputError) as caught:
        load_settings(config)
    said = [str(p) for p in caught.value.problems]
    assert len(said) == 1 and "'transport.processes' must be auto or a whole number from 1 to " \
        "16" in said[0], said
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1)
                if "processes:" in text)
    assert said[0].startswith(f"{config.name}:{line}:") or f"mirage.yaml:{line}:" in said[0]


linux_two_cores = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="sending processes: Linux with two cores")


@linux_two_cores
@pytest.mark.parametrize(("rate", "processes", "options", "to_send", "expected"), [
    ("null", None, SendOptions(), 400, 2),  # auto: two, where there are the cores
    ("null", None, SendOptions(), 399, 1),  # fewer than 200 messages a process
    ("null", None, SendOptions(limit=1000), 5000, 1),  # --limit: the plan's first N, in order
    ("null", None, SendOptions(concurrency=1), 5000, 1),  # never more than the connections
    ("10", None, SendOptions(), 5000, 1),  # auto: one keeps up with a slow configured pace
    ("null", None, SendOptions(rate=50), 5000, 1),  # ... set with --rate too
    ("500", None, SendOptions(), 5000, 2),  # a fast one is shared
    ("10", "2", SendOptions(), 5000, 2),  # a number is taken with any rate: the pace is shared
    ("null", "1", SendOptions(), 5000, 1),
    ("null", "16", SendOptions(), 5000, 2),  # never more than the cores or connections
])
def test_how_many_sending_processes_a_send_forks(project: Path, rate: str,
                                                 processes: str | None, options: SendOptions,
                                                 to_send: int, expected: int) -> None:
    settings = load_settings(_settings(project, rate=rate, processes=processes))
    if processes == "16":
        expected = min(len(os.sched_getaffinity(0)), 4)  # the cores, at most 4 connections
    assert process_count(settings, options, to_send) == expected


def test_the_maildir_outbox_and_an_hourly_cap_under_200_a_second_keep_one(
        project: Path) -> None:
    maildir = load_settings(_settings(project, url="maildir:outbox"))
    assert process_count(maildir, SendOptions(), 5000) == 1
    edit(project / "mirage.yaml", "  url: maildir:outbox", "  url: smtp://127.0.0.1:2525")
    edit(project / "mirage.yaml", "  rate_per_hour: null", "  rate_per_hour: 36000")
    assert process_count(load_settings(project / "mirage.yaml"), SendOptions(), 5000) == 1


@linux_two_cores
def test_without_shared_memory_a_send_stays_in_one_process(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No memory to share (a file limit met): the send goes on in one process, on one pace,
    rather than failing or forking processes that would pace apart."""
    from mirage_mailer.services import sending_processes, shards
    from mirage_mailer.services.loader import open_project
    from mirage_mailer.services.sending import prepare, send
    from support.smtp_sink import SmtpSink

    def no_memory(**_kwargs: object) -> None:
        raise OSError(24, "Too many open files")

    def no_fork(*_args: object) -> None:
        pytest.fail("a sending process was forked without a shared pace")

    monkeypatch.setattr(sending_processes, "SharedState", no_memory)
    monkeypatch.setattr(shards, "start", no_fork)
    server = SmtpSink()
    with server.running_in_thread():
        config = _settings(project, url=server.url)
        edit(config, "  starttls: always", "  starttls: never")
        addresses = [f"reader{n:04d}@example.org" for n in range(400)]
        (project / "lists/subscribers.csv").write_text(
            "email\n" + "\n".join(addresses) + "\n", encoding="utf-8")
        opened = open_project(config, project / SAMPLE_ISSUE)
        assert process_count(opened.settings, SendOptions(), 400) == 2
        outcome = send(prepare(opened, SendOptions()), SendOptions())
    assert outcome.this_run.sent == 400
    assert sorted(server.recipients()) == addresses
