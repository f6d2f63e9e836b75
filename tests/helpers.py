"""Test helpers shared by the test modules (imported as `helpers`)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SAMPLE_ISSUE = "issues/2021-10-partners-meeting"


@dataclass
class Run:
    code: int
    out: str
    err: str


RunCli = Callable[..., Run]


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """CLI subprocesses started inside the block inherit ``mask``."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def file_mode(path: Path) -> int:
    """``path``'s permission bits."""
    return stat.S_IMODE(path.stat().st_mode)


def copy_project(template: Path, project: Path) -> Path:
    """Replace ``project`` by a copy of ``template`` (its store, secret and outbox too)."""
    shutil.rmtree(project)
    shutil.copytree(template, project, symlinks=True)
    return project


def edit(path: Path, old: str, new: str) -> None:
    """Replace exactly one occurrence, so a test fails loudly when the sample changes."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def use_relay(project: Path, url: str, *, paced: bool = False, timeout: int | None = None,
              concurrency: int | None = None, processes: int | None = None,
              extra: str = "") -> Path:
    """Point the sample project at a test relay (an SmtpSink) at ``url``, in clear: the sink
    offers no STARTTLS unless asked. Unpaced unless ``paced`` (the sample's 10 a second); where
    given, another command timeout, concurrency or process count; ``extra`` is more transport
    lines (``"\n  key: value"``), set after rate_per_second. Returns mirage.yaml's path."""
    config = project / "mirage.yaml"
    edit(config, "  url: maildir:outbox", f"  url: {url}")
    edit(config, "  starttls: always", "  starttls: never")
    if not paced or extra:
        rate = "10" if paced else "null"
        edit(config, "  rate_per_second: 10", f"  rate_per_second: {rate}{extra}")
    if timeout is not None:
        edit(config, "  timeout: 30", f"  timeout: {timeout}")
    if concurrency is not None or processes is not None:
        lines = f"  concurrency: {4 if concurrency is None else concurrency}"
        if processes is not None:
            lines += f"\n  processes: {processes}"
        edit(config, "  concurrency: 4", lines)
    return config


def report(run_cli: RunCli, issue: str = SAMPLE_ISSUE) -> dict[str, object]:
    """The contract's JSON report of one issue."""
    result = run_cli("report", issue, "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert isinstance(data, dict)
    return data


def statuses(run_cli: RunCli, issue: str = SAMPLE_ISSUE) -> dict[str, str]:
    """Each recipient's status in the report."""
    recipients = report(run_cli, issue)["recipients"]
    assert isinstance(recipients, list)
    return {r["email"]: r["status"] for r in recipients}


class Clock:
    """A settable UTC clock, so timestamps can be asserted exactly."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)
