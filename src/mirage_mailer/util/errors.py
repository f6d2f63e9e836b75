"""One base error for everything a user can get wrong, and the exit codes of the contract.

Every problem carries the file, the line (when there is one) and a hint, so the CLI can print
``path:line: message (hint)`` and never a traceback.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from mirage_mailer.util.database import PostgresUrl

MAX_PROBLEMS = 100  # fatal problems listed at once


class ExitCode(IntEnum):
    """Exit codes fixed by the contract (docs/design.md, "Exit codes")."""

    OK = 0
    PERMANENT_FAILURES = 1
    INVALID_INPUT = 2
    CANNOT_DELIVER = 3
    STOPPED_BY_SIGINT = 130  # 128 + SIGINT: the run did not finish, and cron must see it
    STOPPED_BY_SIGTERM = 143  # 128 + SIGTERM


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input. ``warning`` problems do not stop anything."""

    path: str
    line: int | None
    message: str
    hint: str = ""
    warning: bool = False

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        text = f"{where}: {'warning: ' if self.warning else ''}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


def shorten(value: object, limit: int = 60) -> str:
    """A value echoed in a message, cut with an ellipsis: a 200 KB name is not a message."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def display_path(path: Path | str | PostgresUrl) -> str:
    """Show paths relative to the current directory when they sit below it; a PostgreSQL
    store by its URL (which never holds a password)."""
    if isinstance(path, PostgresUrl):
        return str(path)
    return _relative(str(path), os.getcwd())


@functools.lru_cache(maxsize=512)
def _relative(path: str, cwd: str) -> str:
    """Cached by path and current folder: a file with 25,000 problems resolved its path (a
    few system calls a folder) for each, over half of ``validate``'s time."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path(cwd).resolve()))
    except ValueError:
        return str(p)


class StoppedEarly(BaseException):
    """SIGTERM before any message of a send was handed to the transport (raised by the
    handler ``commands.signals`` installs): a ``BaseException``, as Ctrl-C's
    ``KeyboardInterrupt`` is, so no ``except Exception`` takes it while it unwinds the
    store's transaction and the locks. ``signum``: the signal's number."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(name)
        self.signum, self.name = signum, name


class MirageError(Exception):
    """Base error: one or more problems, and the exit code they call for."""

    exit_code: ExitCode = ExitCode.INVALID_INPUT

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("mirage-mailer", None, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = problems
        super().__init__("\n".join(str(p) for p in problems))


class InputError(MirageError):
    """Invalid config, content, list or template: exit 2, nothing sent."""

    exit_code = ExitCode.INVALID_INPUT


class DeliveryError(MirageError):
    """Delivery could not proceed (unreachable, auth refused, lock held): exit 3, state kept."""

    exit_code = ExitCode.CANNOT_DELIVER


class Collector:
    """Gathers every problem of a load, so the user sees all of them at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(
        self,
        path: Path | str,
        line: int | None,
        message: str,
        hint: str = "",
        *,
        warning: bool = False,
    ) -> None:
        self.problems.append(Problem(display_path(path), line, message, hint, warning))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.warning]

    def raise_if_errors(self) -> None:
        if errors := capped(self.errors):
            raise InputError(errors)


def capped(errors: list[Problem]) -> list[Problem]:
    """At most ``MAX_PROBLEMS``, and a line saying how many more: a broken or hostile file
    (25,000 unknown keys) gets its first ones listed, which say enough."""
    if len(errors) <= MAX_PROBLEMS:
        return errors
    rest = len(errors) - MAX_PROBLEMS
    more = Problem(errors[-1].path, None, f"and {rest:,} more problems like these",
                   "fix the ones above first")
    return [*errors[:MAX_PROBLEMS], more]


def is_busy(exc: BaseException) -> bool:
    """SQLite's BUSY or LOCKED (another connection holds the file): a fault of the moment, not
    a bug. Told by the error code, so callers need not import sqlite3."""
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in (5, 6)
