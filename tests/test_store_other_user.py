"""The store read by someone who may not write it (audit 15j, r3): another user allowed to
read ``.mirage/``, a read-only mount, a backup. ``report`` and ``send --dry-run`` read it as
it is and write nothing beside it; ``validate`` checks the rest where it may not even read
``.mirage/``; a real send still refuses before anything leaves. And a ``-shm`` left read-only
by a database once ``chmod 400`` is named when it stops a write.

Real users and a real read-only mount: root runs the commands as ``nobody`` (``setpriv``) or
mounts the project read-only; elsewhere these are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, Run
from mirage_mailer.project.scaffold import init_project

NOBODY = 65534
ISSUE_ID = SAMPLE_ISSUE.rsplit("/", 1)[1]


def _as(uid: int | None, *args: str, cwd: Path) -> Run:
    """``python -m mirage_mailer ARGS`` in ``cwd``, as ``uid`` (None: as this user)."""
    command = [sys.executable, "-m", "mirage_mailer", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if uid is not None:  # a user of its own: no HOME, no environment of root's
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]
        env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A sample project in a folder every user may enter (pytest's own is its owner's)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command as another user")
    folder = Path(tempfile.mkdtemp(prefix="mirage-other-user-"))
    try:
        folder.chmod(0o755)
        probe = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                                "--clear-groups", sys.executable, "-c", "import mirage_mailer"],
                               capture_output=True, check=False)
        if probe.returncode != 0:
            pytest.skip("nobody cannot run this Python")
        init_project(folder / "p")
        for path in (folder / "p" / "lists").iterdir():  # init writes them owner-only (0600):
            path.chmod(0o644)  # the office grants its colleague the lists, as it would
        yield folder / "p"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _state(project: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (project / ".mirage").iterdir()}


def _sent(project: Path) -> int:
    outbox = project / "outbox"
    return sum(1 for p in outbox.rglob("*") if p.is_file()) if outbox.exists() else 0


def test_another_user_reads_the_report_and_the_dry_run_and_cannot_send(shared: Path) -> None:
    assert _as(None, "send", SAMPLE_ISSUE, "--yes", cwd=shared).code == 0
    with (shared / "lists/subscribers.csv").open("a", encoding="utf-8") as handle:
        handle.write("new@example.org,New,en,\n")
    subprocess.run(["chmod", "-R", "a+rX", str(shared / ".mirage")], check=True)
    before = _state(shared)
    result = _as(NOBODY, "report", SAMPLE_ISSUE, "--format", "json", cwd=shared)
    assert result.code == 0, result.err
    assert json.loads(result.out)["counts"]["sent"] == 5
    result = _as(NOBODY, "report", "--format", "csv", cwd=shared)  # every issue, as a table
    assert result.code == 0, result.err
    assert result.out.count(",sent,") == 5
    result = _as(NOBODY, "send", SAMPLE_ISSUE, "--dry-run", cwd=shared)
    assert result.code == 0, result.err
    assert "would send 1 (en: 1); already sent 5" in result.out
    assert _state(shared) == before  # nothing written beside the store, no -shm made
    result = _as(NOBODY, "send", SAMPLE_ISSUE, "--yes", cwd=shared)
    assert result.code == 3, result.err
    assert result.err.splitlines()[-1].startswith(
        ".mirage/locks/send-2021-10-partners-meeting.lock: cannot write: Permission denied")
    assert _sent(shared) == 5


def test_validate_by_another_user_of_an_owner_only_state_folder(shared: Path) -> None:
    assert _as(None, "send", SAMPLE_ISSUE, "--yes", cwd=shared).code == 0
    (shared / ".mirage").chmod(0o700)  # the default: nobody may not even look in
    result = _as(NOBODY, "validate", SAMPLE_ISSUE, cwd=shared)
    assert result.code == 0, result.err
    hint = "run validate as the user who sends, or let this user read .mirage/"
    assert result.err.splitlines()[1:] == [
        ".mirage/secret: warning: cannot read it: Permission denied; the signing secret "
        f"was not checked ({hint})",
        f".mirage/sent: cannot read it: Permission denied ({hint}) (recipient figures below "
        "ignore the tracking store)"]
    assert result.out == (f"{ISSUE_ID}: 0 error(s), 2 warning(s); languages en, fr; "
                          "5 recipient(s) (en: 3, fr: 2)\n")


def test_a_read_only_mount_is_reported_and_planned(shared: Path) -> None:
    assert _as(None, "send", SAMPLE_ISSUE, "--yes", cwd=shared).code == 0
    mount = shared.parent / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "--bind", str(shared), str(mount)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True)
        result = _as(None, "report", SAMPLE_ISSUE, "--format", "json", cwd=mount)
        assert result.code == 0, result.err
        assert json.loads(result.out)["counts"]["sent"] == 5
        for args in (("send", SAMPLE_ISSUE, "--dry-run"), ("validate", SAMPLE_ISSUE)):
            result = _as(None, *args, cwd=mount)
            assert result.code == 0, (args, result.err)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_shm_left_read_only_is_named(shared: Path) -> None:
    """SQLite makes the -shm with the database's mode: a reader of a database once chmod 400
    left one read-only, and after chmod 600 every write failed without naming it."""
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(shared)], check=True)
    assert _as(NOBODY, "send", SAMPLE_ISSUE, "--yes", cwd=shared).code == 0
    database = shared / ".mirage/tracking.sqlite"
    script = ("import sqlite3, sys; c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', "
              "uri=True); c.execute('SELECT count(*) FROM recipients').fetchone()")
    database.chmod(0o400)
    subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                    sys.executable, "-c", script, str(database)], check=True)
    database.chmod(0o600)
    assert Path(f"{database}-shm").stat().st_mode & 0o777 == 0o400
    result = _as(NOBODY, "unsubscribe", "maria.georgiou@example.org", cwd=shared)
    assert result.code == 3, result.err
    assert result.err.splitlines()[-1] == (
        ".mirage/tracking.sqlite-shm: cannot write to the tracking database: attempt to "
        "write a readonly database: this file beside it is read-only, as the database once "
        "was (make it writable by this user: chmod u+w .mirage/tracking.sqlite-shm; a rerun "
        "resumes where this one stopped)")
