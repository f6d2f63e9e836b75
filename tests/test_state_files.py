"""`.mirage/` on a brand-new project: commands started at the same moment agree on one secret
and one database (no exit 70), and everything in it is owner-only (0700 / 0600)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.project.scaffold import init_project
from mirage_mailer.store import Store
from mirage_mailer.util.tokens import load_secret

PAIRS = 8


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mirage_mailer", *args], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("race") / "proj"
    init_project(root)
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    edit(root / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         f"send_at: {an_hour_ago}")  # a new project's run-due sends the last 24 hours' issues
    return root


def test_commands_started_at_once_on_a_new_project_share_one_secret(template: Path,
                                                                    tmp_path: Path) -> None:
    for n in range(PAIRS):
        root = tmp_path / f"p{n}"
        shutil.copytree(template, root)
        if n % 2:
            procs = [start(root, "run-due"), start(root, "run-due")]
            allowed = {0, 3}  # the second may find the first holding the run-due lock
        else:
            procs = [start(root, "send", SAMPLE_ISSUE, "--yes"), start(root, "preview",
                                                                        SAMPLE_ISSUE)]
            allowed = {0}
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode in allowed, f"pair {n}: exit {proc.returncode}: {out}{err}"
            assert "internal error" not in err and "Traceback" not in err, err
        keys = (root / ".mirage/secret").read_text().split()
        assert len(keys) == 1 and len(keys[0]) >= 32
        assert sorted(p.name for p in (root / ".mirage").iterdir() if p.name.endswith(".tmp")
                      ) == []
        assert len(list((root / "outbox/new").iterdir())) == 5, f"pair {n}"


def _first_use(state: Path, barrier: Any, results: Any) -> None:
    barrier.wait(timeout=30)
    try:
        key = bytes(load_secret(state, None))
        with Store(state / "tracking.sqlite") as store:
            store.counts("x")
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put(f"{type(exc).__name__}: {exc}")
        return
    results.put(key.decode())


def test_first_use_in_lockstep_agrees_on_one_secret_and_one_database(tmp_path: Path) -> None:
    """Processes released by one barrier: a far narrower window than starting commands."""
    ctx = multiprocessing.get_context("fork")
    workers = 4
    for n in range(30):  # the lock-upgrade race hit about one run in four at 10 rounds
        state = tmp_path / f"r{n}" / ".mirage"
        barrier, results = ctx.Barrier(workers), ctx.Queue()
        procs = [ctx.Process(target=_first_use, args=(state, barrier, results))
                 for _ in range(workers)]
        for proc in procs:
            proc.start()
        keys = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
        assert len(set(keys)) == 1, keys
        assert (state / "secret").read_text().split() == [keys[0]]


def test_state_is_owner_only(project: Path, run_cli: RunCli) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    state = project / ".mirage"
    assert mode(state) == 0o700
    assert mode(state / "locks") == 0o700
    for path in [state / "secret", state / "tracking.sqlite", *(state / "locks").iterdir()]:
        assert mode(path) == 0o600, path
    with Store(state / "tracking.sqlite") as store:
        store.counts("x")
        for suffix in ("-wal", "-shm"):
            assert mode(state / f"tracking.sqlite{suffix}") == 0o600


def test_a_too_open_state_folder_is_tightened(project: Path, run_cli: RunCli) -> None:
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    state = project / ".mirage"
    state.chmod(0o755)
    (state / "locks").chmod(0o755)
    for path in [state / "secret", state / "tracking.sqlite", *(state / "locks").iterdir()]:
        path.chmod(0o644)
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    assert mode(state) == 0o700 and mode(state / "locks") == 0o700
    for path in [state / "secret", state / "tracking.sqlite", *(state / "locks").iterdir()]:
        assert mode(path) == 0o600, path
