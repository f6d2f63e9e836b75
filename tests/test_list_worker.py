"""A long CSV list read by a child process gives exactly what reading it here gives: the
same rows in the same order, the same row problems, the same fatal error at the same row."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mirage_mailer.project import list_worker, lists
from mirage_mailer.project.lists import RowProblem, Subscriber, iter_list
from mirage_mailer.util.errors import InputError
from mirage_mailer.util.fieldsjson import fields_json
from mirage_mailer.util.tokens import Signer
from support.processes import children_of


def _rows(path: Path, *, parallel: bool, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every row of ``path`` (and the fatal error's text, if any) by one of the two ways."""
    monkeypatch.setattr(list_worker, "PARALLEL_BYTES", 0 if parallel else 1 << 60)
    monkeypatch.setattr(list_worker, "_BATCH", 7)  # many batches, one cut mid-way
    out: list[object] = []
    try:
        for row in iter_list(path, "subscribers"):
            if isinstance(row, Subscriber):
                out.append((row.email, row.name, row.lang, row.fields, row.list_name,
                            row.path, row.line))
            else:
                assert isinstance(row, RowProblem)
                out.append(row)
    except InputError as exc:
        out.append(("fatal", str(exc)))
    return out


def _tricky_list(path: Path, *, tail: str = "") -> None:
    rnd = random.Random(13)
    lines = ["\ufeffEmail;Name;Language;;Org"]
    for n in range(300):
        pick = rnd.random()
        if pick < 0.05:
            lines.append(f"bad{n}@@example.org;Bad;en;x;Org")
        elif pick < 0.08:
            lines.append(f"p{n}@example.org;Bad lang;xx-yy-zz;x;Org")
        elif pick < 0.1:
            lines.append(f'q{n}@example.org;"Two\nlines";fr;;"Org ; quoted"')
        elif pick < 0.12:
            lines.append(";;;;")
        else:
            lines.append(f"Person{n}@Example{n % 7}.ORG;Zoë {n};{rnd.choice(['en', 'EN', ''])}"
                         f";x{n};Org {n}")
    path.write_text("\n".join(lines) + "\n" + tail, encoding="utf-8")


def test_the_child_reads_exactly_what_this_process_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "subscribers.csv"
    _tricky_list(path)
    here = _rows(path, parallel=False, monkeypatch=monkeypatch)
    there = _rows(path, parallel=True, monkeypatch=monkeypatch)
    assert len(here) > 250
    assert any(isinstance(r, RowProblem) for r in here)
    assert there == here


def test_the_child_computes_each_rows_subject_id_as_this_process_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The keyed hash the store keeps for a row's address is made by the reader child when
    asked (the same key, forked); without the function, and in this process, it is None."""
    path = tmp_path / "subscribers.csv"
    _tricky_list(path)
    signer = Signer(b"k" * 32)
    monkeypatch.setattr(list_worker, "_BATCH", 7)
    monkeypatch.setattr(list_worker, "PARALLEL_BYTES", 0)
    there = [r for r in iter_list(path, "s", subject=signer.subject_id)
             if isinstance(r, Subscriber)]
    assert len(there) > 250
    assert all(r.subject == signer.subject_id(r.email) for r in there)
    # and the fields as the store keeps them, written there too
    assert any(r.fields for r in there)
    assert all(r.fields_text == fields_json(r.fields) for r in there)
    assert all(r.subject is None and r.fields_text is None
               for r in iter_list(path, "s") if isinstance(r, Subscriber))
    monkeypatch.setattr(list_worker, "PARALLEL_BYTES", 1 << 60)
    assert all(r.subject is None and r.fields_text is None
               for r in iter_list(path, "s", subject=signer.subject_id)
               if isinstance(r, Subscriber))


@pytest.mark.parametrize("tail", ['late@example.org;"never closed\n',
                                  "fine@example.org;Fine;en;;Org\n"])
def test_a_fatal_error_stops_both_at_the_same_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tail: str) -> None:
    path = tmp_path / "subscribers.csv"
    _tricky_list(path, tail=tail)
    with path.open("ab") as handle:  # bytes that are no UTF-8, after the tail
        handle.write(b"broken\xff@example.org;x;en;;Org\n")
    here = _rows(path, parallel=False, monkeypatch=monkeypatch)
    there = _rows(path, parallel=True, monkeypatch=monkeypatch)
    assert isinstance(here[-1], tuple) and here[-1][0] == "fatal"
    assert there == here


def test_a_reader_that_stops_early_ends_the_child(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "subscribers.csv"  # far more than a pipe holds: the child blocks
    path.write_text("email\n" + "".join(f"p{n}@example.org\n" for n in range(40_000)),
                    encoding="utf-8")
    monkeypatch.setattr(list_worker, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(list_worker, "_BATCH", 3)
    rows = iter_list(path, "subscribers")
    first = next(rows)
    assert isinstance(first, Subscriber | RowProblem)
    rows.close()  # the generator's clean-up ends and reaps the child
    import multiprocessing

    assert multiprocessing.active_children() == []


def test_small_lists_and_yaml_stay_in_this_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "subscribers.csv"
    path.write_text("email\na@example.org\n", encoding="utf-8")
    called: list[Path] = []
    monkeypatch.setattr(list_worker, "iter_in_child",
                        lambda *a, **_kw: called.append(a[0]) or iter(()))
    assert [r.email for r in iter_list(path, "s") if isinstance(r, Subscriber)] \
        == ["a@example.org"]
    assert called == []
    monkeypatch.setattr(list_worker, "PARALLEL_BYTES", 0)
    assert list(iter_list(path, "s")) == []  # the (stubbed) child path was taken
    assert called == [path]
    assert lists.file_size(tmp_path / "missing.csv") == 0


def test_a_killed_validate_leaves_no_reader_behind(project: Path) -> None:
    """SIGKILL the command while its child reads a long list: the child's next write fails
    and it exits (no orphan keeps reading)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers import SAMPLE_ISSUE

    rows = "".join(f"p{n}@example{n % 97}.org,Person {n},en,\n" for n in range(120_000))
    with (project / "lists/subscribers.csv").open("a", encoding="utf-8") as handle:
        handle.write(rows)
    assert (project / "lists/subscribers.csv").stat().st_size >= list_worker.PARALLEL_BYTES
    proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "validate", SAMPLE_ISSUE],
                            cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        children: list[int] = []
        while not children and time.monotonic() < deadline and proc.poll() is None:
            children = children_of(proc.pid)
            time.sleep(0.02)
        assert children, "the list was not read by a child"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        alive = children
        while alive and time.monotonic() < deadline:
            alive = [c for c in alive if Path(f"/proc/{c}").exists()
                     and "Z" not in (Path(f"/proc/{c}/stat").read_text().rsplit(")", 1)[1]
                                     .split()[:1])]
            time.sleep(0.05)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ``python -c KILLED_READER ARGS...``: the CLI with every list read by a child that is killed
# (SIGKILL, as the OOM killer does) before it says anything.
KILLED_READER = """
import os, signal, sys
from mirage_mailer.project import list_worker
list_worker.PARALLEL_BYTES = 0
list_worker._child = lambda *_: os.kill(os.getpid(), signal.SIGKILL)
from mirage_mailer.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("command", [["validate"], ["send", "--yes"]])
def test_a_killed_reader_is_exit_3_with_its_signal(project: Path, command: list[str]) -> None:
    """The OOM killer's SIGKILL of the reader child is the machine's state, not a bug: exit
    3, one line naming the list and the signal, nothing sent (it was exit 70, "please
    report it", with the exit code read before the child was joined: None)."""
    import subprocess
    import sys

    from helpers import SAMPLE_ISSUE

    proc = subprocess.run([sys.executable, "-c", KILLED_READER, command[0], SAMPLE_ISSUE,
                           *command[1:]], cwd=project, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 3, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "list reader" in line]
    assert lines == ["lists/subscribers.csv: the list reader was killed by SIGKILL (out of "
                     "memory?); nothing was sent (rerun)"], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project / "outbox" / "new").exists() or not any(
        (project / "outbox" / "new").iterdir())


def test_a_reader_that_cannot_be_forked_reads_here_instead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process or memory limit refuses the fork (EAGAIN): the list is read in this process,
    the same rows and problems, instead of an "internal error" before the first row."""
    import os

    path = tmp_path / "subscribers.csv"
    _tricky_list(path)
    here = _rows(path, parallel=False, monkeypatch=monkeypatch)
    forks: list[int] = []

    def no_fork() -> int:
        forks.append(1)
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(os, "fork", no_fork)
    assert _rows(path, parallel=True, monkeypatch=monkeypatch) == here
    assert forks, "the child's way was not taken"
