"""Test helpers shared by the test modules (imported as `helpers`)."""

from __future__ import annotations

from collections.abc import Callable
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


def edit(path: Path, old: str, new: str) -> None:
    """Replace exactly one occurrence, so a test fails loudly when the sample changes."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


class Clock:
    """A settable UTC clock, so timestamps can be asserted exactly."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)
