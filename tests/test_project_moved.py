"""A project moved to another machine with git has no ``.mirage/`` there (init's .gitignore
keeps it out: it holds the store, the secret and the ``sent`` marker), so it looks brand new:
``run-due`` there must not mail every reader again an issue that went out long ago, neither
on its first run nor after the new host has sent something. An issue due within the last 24
hours still goes (a new project's first cron run), and a person can still send by hand.
``init`` makes ``.mirage/`` (owner-only) so the documented cron line and DKIM key have a
folder from the start. CLI subprocesses, the Maildir outbox and a real SQLite store."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, edit

SEND_AT = "2021-10-29T09:00:00+02:00"
DOC = "docs/operations.md#moving-a-project-to-another-machine"
NEWS = "issues/2021-11-news"


def schedule(project: Path, send_at: str = SEND_AT) -> None:
    edit(project / SAMPLE_ISSUE / "issue.yaml", f"# send_at: {SEND_AT}", f"send_at: {send_at}")


def send_at_line(project: Path, issue: str = SAMPLE_ISSUE) -> int:
    lines = (project / issue / "issue.yaml").read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.startswith("send_at:"))


def mailed(project: Path) -> int:
    folder = project / "outbox/new"
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": warning: " not in line]


def clone(project: Path, target: Path) -> Path:
    """What ``git clone`` of the project gives: its files without what .gitignore lists."""
    ignored = [line.rstrip("/") for line in (project / ".gitignore").read_text().splitlines()
               if line and not line.startswith("#")]
    shutil.copytree(project, target, ignore=shutil.ignore_patterns(*ignored))
    return target


def never_sent_line(project: Path, issue: str = SAMPLE_ISSUE, send_at: str = SEND_AT) -> str:
    return (f"{issue}/issue.yaml:{send_at_line(project, issue)}: due at {send_at}, more than "
            "24 hours ago, and this project has never sent from here (no .mirage/sent, no "
            "recipient in its tracking database): not sent, as it may have gone out from "
            "another machine (if it was sent from another machine, copy that project's "
            f".mirage/ folder here, see {DOC}; to send it now, run 'mirage-mailer send "
            f"{issue}' by hand)")


def test_a_clone_without_mirage_does_not_send_an_old_issue_again(
        project: Path, run_cli: RunCli, tmp_path: Path) -> None:
    schedule(project)
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    assert mailed(project) == 5
    server = clone(project, tmp_path / "server")
    assert not (server / ".mirage").exists()
    due = run_cli("run-due", cwd=server)
    assert due.code == 2, due.err
    assert errors(due.err) == [never_sent_line(server)]
    # stdout, which a cron log may keep apart from stderr, does not say "nothing due"
    assert due.out.startswith("run-due: nothing sent at "), due.out
    assert due.out.rstrip().endswith(": 1 issue could not be handled (see the errors)")
    assert mailed(server) == 0
    # the fix the line names: that project's .mirage/, copied here
    shutil.copytree(project / ".mirage", server / ".mirage", dirs_exist_ok=True)
    moved = run_cli("run-due", cwd=server)
    assert moved.code == 0, moved.err
    assert moved.out.startswith("run-due: nothing due at "), moved.out
    assert mailed(server) == 0


def test_a_person_can_still_send_it_by_hand_as_the_line_says(
        project: Path, run_cli: RunCli) -> None:
    schedule(project)
    due = run_cli("run-due")
    assert due.code == 2 and mailed(project) == 0, due.err
    command = errors(due.err)[0].rsplit("run '", 1)[1].split("' by hand")[0]
    by_hand = run_cli(*shlex.split(command)[1:], "--yes")
    assert by_hand.code == 0, by_hand.err
    assert mailed(project) == 5
    again = run_cli("run-due")
    assert (again.code, errors(again.err)) == (0, []), again.err
    assert mailed(project) == 5


def test_a_new_project_s_first_run_sends_an_issue_due_within_24_hours(
        project: Path, run_cli: RunCli) -> None:
    schedule(project)
    late = run_cli("run-due", "--now", "2021-10-30T09:00:01+02:00")  # 24 h and a second
    assert late.code == 2 and mailed(project) == 0, late.err
    first = run_cli("run-due", "--now", "2021-10-30T09:00:00+02:00")  # 24 h exactly
    assert first.code == 0, first.err
    assert first.out.startswith("2021-10-partners-meeting: sent 5,"), first.out
    assert mailed(project) == 5


def test_an_old_issue_stays_held_back_after_the_new_host_sent_a_new_one(
        project: Path, run_cli: RunCli, tmp_path: Path) -> None:
    """The new host's first send writes .mirage/sent; an old issue it never recorded is
    still one that went out before, not one that is now due (nor after a send by hand)."""
    schedule(project)
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    server = clone(project, tmp_path / "server")
    shutil.copytree(server / SAMPLE_ISSUE, server / NEWS)
    edit(server / NEWS / "issue.yaml", "number: 4", "number: 5")
    edit(server / NEWS / "issue.yaml", f"send_at: {SEND_AT}", "send_at: 2026-11-29T09:00:00Z")
    first = run_cli("run-due", "--now", "2026-11-29T09:05:00Z", cwd=server)
    assert first.code == 2, first.err
    assert errors(first.err) == [never_sent_line(server)]
    assert first.out.startswith("2021-11-news: sent 5,"), first.out
    assert mailed(server) == 5
    later = run_cli("run-due", "--now", "2026-11-29T09:15:00Z", cwd=server)
    assert later.code == 2, later.err
    (line,) = errors(later.err)
    assert line.startswith(f"{SAMPLE_ISSUE}/issue.yaml:{send_at_line(server)}: due at "
                           f"{SEND_AT}, more than 24 hours before this project first sent "
                           "from here (.mirage/sent, 20"), line
    assert line.endswith(", and nothing of it is recorded: not sent, as it may have gone out "
                         "from another machine (if it was sent from another machine, remove "
                         f"send_at from its issue.yaml, see {DOC}; to send it now, run "
                         f"'mirage-mailer send {SAMPLE_ISSUE}' by hand)"), line
    assert mailed(server) == 5


def test_a_store_with_recipients_sends_a_late_issue_as_before(
        project: Path, run_cli: RunCli) -> None:
    """A project that has sent from here (its store holds recipients; the marker missing,
    as after an older version, is written again): an issue due since its first send is due
    however late cron runs (down for a week), though nothing of it is recorded yet."""
    schedule(project)
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    (project / ".mirage/sent").unlink()
    shutil.copytree(project / SAMPLE_ISSUE, project / NEWS)
    edit(project / NEWS / "issue.yaml", "number: 4", "number: 5")
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    edit(project / NEWS / "issue.yaml", f"send_at: {SEND_AT}",
         f"send_at: {tomorrow.isoformat(timespec='seconds')}")
    week_later = (tomorrow + timedelta(days=7)).isoformat(timespec="seconds")
    due = run_cli("run-due", "--now", week_later)
    assert due.code == 0, due.err
    assert due.out.startswith("2021-11-news: sent 5,"), due.out
    assert mailed(project) == 10


def test_a_secret_or_an_empty_store_is_not_having_sent(project: Path, run_cli: RunCli) -> None:
    """preview makes the secret and unsubscribe an empty store: neither records a send."""
    schedule(project)
    assert run_cli("preview", SAMPLE_ISSUE).code == 0
    assert run_cli("unsubscribe", "someone@example.org").code == 0
    assert (project / ".mirage/secret").exists() and (project / ".mirage/tracking.sqlite").exists()
    due = run_cli("run-due")
    assert due.code == 2, due.err
    assert errors(due.err) == [never_sent_line(project)]
    assert mailed(project) == 0


def test_init_makes_a_private_state_folder_and_ignores_it_and_the_venv(
        tmp_path: Path, run_cli: RunCli) -> None:
    made = run_cli("init", "news", cwd=tmp_path)
    assert made.code == 0, made.err
    state = tmp_path / "news/.mirage"
    assert "created news/.mirage" in made.out.splitlines()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    ignored = (tmp_path / "news/.gitignore").read_text(encoding="utf-8").splitlines()
    assert {".mirage/", ".venv/", "outbox/"} <= set(ignored)


def test_the_documented_cron_line_runs_in_a_new_project(tmp_path: Path, run_cli: RunCli) -> None:
    """operations.md's cron line appends to .mirage/run-due.log: the shell opens it before
    mirage-mailer starts, so the folder must be there from init on."""
    assert run_cli("init", "news", cwd=tmp_path).code == 0
    root = tmp_path / "news"
    venv = root / ".venv/bin"
    venv.mkdir(parents=True)
    (venv / "mirage-mailer").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m "
                                        "mirage_mailer \"$@\"\n")
    (venv / "mirage-mailer").chmod(0o755)
    line = f"cd {shlex.quote(str(root))} && .venv/bin/mirage-mailer run-due >> " \
           ".mirage/run-due.log 2>&1"
    cron = subprocess.run(["/bin/sh", "-c", line], env={**os.environ, "PYTHONUNBUFFERED": "1"},
                          capture_output=True, text=True, timeout=60)
    assert cron.returncode == 0, cron.stderr
    log = (root / ".mirage/run-due.log").read_text(encoding="utf-8")
    assert log.startswith("run-due: nothing due at "), log
