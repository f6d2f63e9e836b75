"""Property: whatever an officer (or a broken sync, or an attacker) does to the project files,
``validate`` answers with exit 0 or 2, never a traceback, never exit 70, and quickly.

Hypothesis mutates mirage.yaml, issue.yaml, an article's front matter and the CSV list of a
project made by ``init``: it deletes, duplicates and swaps lines, inserts YAML tokens, control
characters, random unicode and bytes, huge numbers, and swaps values for other types. Most
examples run the CLI in-process (``main``) for speed, under an alarm; a few run the real
console command in a subprocess with a timeout. The example count is bounded so the file
stays within about a minute; set ``MIRAGE_FUZZ_EXAMPLES`` to fuzz longer (random seed then).
Every crash found became a deterministic test in ``test_hardening_inputs``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import SAMPLE_ISSUE
from mirage_mailer.cli import main
from mirage_mailer.project.scaffold import init_project
from mirage_mailer.util import kept

EXAMPLES = int(os.environ.get("MIRAGE_FUZZ_EXAMPLES", "0"))
IN_PROCESS = EXAMPLES or 50  # per target
SUBPROCESS = max(EXAMPLES // 10, 8)
SECONDS = 20  # per run: a hang, not a slow machine

TARGETS = {
    "config": "mirage.yaml",
    "issue": f"{SAMPLE_ISSUE}/issue.yaml",
    "article": f"{SAMPLE_ISSUE}/partners-meeting.md",
    "list": "lists/subscribers.csv",
    "template": "templates/newsletter.html.j2",
}
TOKENS = [
    "&a ", "*a", "&a [x, *a]", "{", "}", "[", "]", ":", ": ", "- ", "? ", "\t", "\x00", "\x1b",
    "\r", "\r\n", "\u2028", "\ufeff", "\x85", "#", "|", ">", "'", '"', ",", ";", "---", "...",
    "<<: *a", "!!python/object/apply:os.system ['id']", "!!binary x", "!!set {a}", "%YAML 1.1",
    "9" * 5000, "-" + "9" * 50, "1e999", ".nan", "0x" + "f" * 60, "1:2:3:4:5:6:7:8:9",
    "=?utf-8?q?X=0D=0ABcc:_x@y.org?=", "{{ ", "{% ", "../../../etc/passwd", "/etc/passwd",
    "a@b@c", "x" * 3000, "email", "email,email", '"a""b"', "é", "\U0001f600", "\ud7ff",
]
JINJA = [
    "{{ ", " }}", "{% ", " %}", "{% endif %}", "{% for x in articles %}", "{% endfor %}",
    "{{ t.why|truncate(-1) }}", "{{ t.why|wordwrap(0) }}", "{{ t.why|center(-5) }}",
    "{{ articles|batch(0)|list }}", "{{ [1]|slice(0)|list }}", "{{ t.why|indent('x') }}",
    "{{ t.why|int(base=99) }}", "{{ t.why|round(2, 'up') }}", "{{ t.why|filesizeformat }}",
    "{{ t.why|urlize(-1) }}", "{{ t.why|xmlattr }}", "{{ t.why|tojson(indent=-1) }}",
    "{{ articles|map('upper')|list }}", "{{ articles|groupby('x') }}", "{{ t|items }}",
    "{{ t.why.split(None, -1) }}", "{{ t.why.format(t) }}", "{{ '%c' % 10**9 }}",
    "{{ 1 / 0 }}", "{{ 2.0 ** 99999 }}", "{{ 'x' * -1 }}", "{{ [] * 10**7 }}",
    "{{ range(-10**9, 10**9, 10**5)|list|length }}", "{% include 'nope' %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "{{ caller() }}", "{{ super() }}",
    "{{ loop.cycle() }}", "{{ namespace(a=1).a }}", "{{ cycler(1).next() }}",
    "{{ dict(a=1)|dictsort(reverse=1) }}", "{{ joiner()() }}", "{% set x = 1 %}{{ x.y.z }}",
]
VALUES = [
    "null", "~", "''", '""', "[]", "{}", "[1, 2]", "{a: 1}", "true", "no", "-1", "0",
    "0.0", ".nan", ".inf", "-.inf", "1.0e-300", "1e9", "9" * 41, "2021-13-45",
    "2021-10-29T09:00:00", "smtp://u:p@h", "maildir:/tmp", "x" * 300, "- a\n- b",
]

line_index = st.integers(min_value=0, max_value=80)
mutation = st.one_of(
    st.tuples(st.just("delete"), line_index),
    st.tuples(st.just("duplicate"), line_index),
    st.tuples(st.just("swap"), line_index, line_index),
    st.tuples(st.just("insert"), line_index, st.integers(0, 60), st.sampled_from(TOKENS)),
    st.tuples(st.just("insert"), line_index, st.integers(0, 60), st.sampled_from(JINJA)),
    st.tuples(st.just("insert"), line_index, st.integers(0, 60), st.text(max_size=12)),
    st.tuples(st.just("bytes"), line_index, st.integers(0, 60), st.binary(max_size=8)),
    st.tuples(st.just("value"), line_index, st.sampled_from(VALUES)),
)


def mutate(data: bytes, steps: list[tuple[object, ...]]) -> bytes:
    """Apply line-level mutations to file bytes (bytes, so invalid UTF-8 is possible)."""
    lines = data.split(b"\n")
    for step in steps:
        kind, at = step[0], int(step[1]) % max(len(lines), 1)  # type: ignore[call-overload]
        if kind == "delete" and lines:
            del lines[at]
        elif kind == "duplicate" and lines:
            lines.insert(at, lines[at])
        elif kind == "swap" and lines:
            other = int(step[2]) % len(lines)  # type: ignore[call-overload]
            lines[at], lines[other] = lines[other], lines[at]
        elif kind in ("insert", "bytes") and lines:
            col = int(step[2]) % (len(lines[at]) + 1)  # type: ignore[call-overload]
            raw = step[3] if isinstance(step[3], bytes) else str(step[3]).encode("utf-8",
                                                                                 "surrogatepass")
            lines[at] = lines[at][:col] + raw + lines[at][col:]
        elif kind == "value" and lines:
            key, sep, _ = lines[at].partition(b": ")
            if sep:
                lines[at] = key + sep + str(step[2]).encode()
    return b"\n".join(lines)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The project every example mutates a copy of. The render's derived values are kept
    (``util.kept``, as every CLI process keeps them) for the module: an example whose
    templates are untouched then validates in half the time, and a mutated template is a
    new key, parsed afresh."""
    root = tmp_path_factory.mktemp("fuzz") / "pristine"
    init_project(root)
    kept.install(root.parent / "kept")
    try:
        yield root
    finally:
        kept.uninstall()


@contextlib.contextmanager
def fresh_copy(pristine: Path, target: str, steps: list[tuple[object, ...]]) -> Iterator[Path]:
    work = pristine.parent / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pristine, work, symlinks=True)
    path = work / TARGETS[target]
    path.write_bytes(mutate(path.read_bytes(), steps))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hang(f"validate ran longer than {SECONDS} s")


def run_in_process(project: Path) -> tuple[int, str]:
    """``mirage-mailer validate`` through ``main``, with its exit code and all its output."""
    out = io.StringIO()
    old_cwd = Path.cwd()
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, SECONDS)
    code: int | str | None = None
    try:
        os.chdir(project)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                main(["validate", SAMPLE_ISSUE])
            except SystemExit as exc:
                code = exc.code
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        os.chdir(old_cwd)
    return (code if isinstance(code, int) else 0 if code is None else 1), out.getvalue()


def check(code: int, output: str, elapsed: float) -> None:
    assert "Traceback" not in output, output[-3000:]
    assert "internal error" not in output, output[-3000:]
    assert code in (0, 2), (code, output[-3000:])
    assert elapsed < SECONDS, elapsed


FUZZ = settings(max_examples=IN_PROCESS, deadline=None, derandomize=not EXAMPLES,
                database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])


@pytest.mark.parametrize("target", sorted(TARGETS))
@FUZZ
@given(steps=st.lists(mutation, min_size=1, max_size=4))
def test_validate_survives_mutations(pristine: Path, target: str,
                                     steps: list[tuple[object, ...]]) -> None:
    with fresh_copy(pristine, target, steps) as project:
        started = time.monotonic()
        code, output = run_in_process(project)
        check(code, output, time.monotonic() - started)


@settings(FUZZ, max_examples=SUBPROCESS)
@given(target=st.sampled_from(sorted(TARGETS)), steps=st.lists(mutation, min_size=1,
                                                                max_size=4))
def test_console_command_survives_mutations(pristine: Path, target: str,
                                            steps: list[tuple[object, ...]]) -> None:
    with fresh_copy(pristine, target, steps) as project:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "mirage_mailer", "validate", SAMPLE_ISSUE],
                              cwd=project, capture_output=True, text=True, errors="replace",
                              timeout=SECONDS, check=False)
        check(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started)
