"""Run ``python -m mirage_mailer ARGS`` with marks at the stages before the first message.

The child side of ``bench/startup.py --stages``: ``python bench/startup_marks.py send ISSUE
--yes``. Each stage boundary records the process's CPU time (since it started, interpreter
start-up included) and the wall clock, and calls ``os.getppid()``, which nothing else in a
send calls, so that callgrind's ``--dump-before=getppid`` cuts the instruction count there.
The marks go to standard error as JSON lines at exit. The functions are wrapped as their
modules finish loading (an import hook), so nothing is imported earlier than in a real run.

With ``MIRAGE_BENCH_UNBOUNDED=1`` the template sandbox's time budget is lifted the same way:
under valgrind a send runs some 50 times slower than the budget (8 s an issue) allows.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import runpy
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

MARKS: list[tuple[str, float, float]] = []
_seen: set[str] = set()


def mark(name: str) -> None:
    if name in _seen:
        return
    _seen.add(name)
    os.getppid()  # callgrind: --dump-before=getppid
    MARKS.append((name, time.process_time(), time.perf_counter()))


def _wrap(module: ModuleType, attr: str, *, before: str = "", after: str = "",
          is_async: bool = False) -> None:
    function = getattr(module, attr)
    wrapped: Callable[..., Any]
    if is_async:
        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            if before:
                mark(before)
            result = await function(*args, **kwargs)
            if after:
                mark(after)
            return result
    else:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if before:
                mark(before)
            result = function(*args, **kwargs)
            if after:
                mark(after)
            return result
    setattr(module, attr, wrapped)


# stage boundaries, in the order a send passes them (names as the bench prints them):
# module -> (function, mark before it runs, mark after it returns, a coroutine?)
WRAPS: dict[str, list[tuple[str, str, str, bool]]] = {
    "mirage_mailer.commands.send": [
        ("run_send", "imports: send command", "", False),
        ("open_project", "", "project: config, issue, lists", False),
        ("prepare", "", "render: both languages", False),
    ],
    "mirage_mailer.services.sending": [
        ("checked_store", "", "store: open, schema, guard", False),
        ("_plan_send", "", "plan: rows into the store", False),
    ],
    "mirage_mailer.delivery.pipelining": [
        ("envelope_commands", "connect: to the first MAIL FROM", "", False)],
    "mirage_mailer.delivery.connection": [
        ("_mail", "connect: to the first MAIL FROM", "", True)],
}


def _patch(name: str, module: ModuleType) -> None:
    if name == "mirage_mailer.cli":
        mark("imports: cli")
    elif name == "mirage_mailer.compose.sandbox" and os.environ.get("MIRAGE_BENCH_UNBOUNDED"):
        setattr(module, "MAX_SECONDS", 1e9)  # noqa: B010
        setattr(module, "MAX_TOTAL_SECONDS", 1e9)  # noqa: B010
    for attr, before, after, is_async in WRAPS.get(name, []):
        _wrap(module, attr, before=before, after=after, is_async=is_async)


PATCHED = {"mirage_mailer.cli", "mirage_mailer.compose.sandbox", *WRAPS}


class _Marker(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name not in PATCHED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _patch(name, module)
        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _report() -> None:
    sys.stderr.write("".join(json.dumps({"mark": name, "cpu": cpu, "wall": wall}) + "\n"
                             for name, cpu, wall in MARKS))


def main() -> None:
    sys.meta_path.insert(0, _Marker())
    mark("python started")
    sys.argv = ["mirage_mailer", *sys.argv[1:]]
    try:
        runpy.run_module("mirage_mailer", run_name="__main__", alter_sys=True)
    finally:
        _report()


if __name__ == "__main__":
    main()
