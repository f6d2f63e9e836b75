"""A project that has sent and lost `.mirage/secret` is refused by every command that would
sign or check a link (exit 2, one line, no new key written): a new key would quietly break
the unsubscribe link of every message already sent. Restoring the file brings those links
back; `rotate-secret --replace-lost` starts over on purpose."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.project.scaffold import init_project
from web.web_support import free_port

SECRET = ".mirage/secret"


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": warning: " not in line]


def outbox(project: Path) -> list[Path]:
    folder = project / "outbox/new"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def assert_refused(project: Path, code: int, stderr: str) -> None:
    """Exit 2 with one line that names the file and both ways out; no new key."""
    assert code == 2, stderr
    lines = errors(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith(".mirage/secret: the signing secret is missing, but this "
                               "project has sent before (.mirage/sent)"), lines[0]
    assert "restore .mirage/secret from a backup" in lines[0]
    assert "mirage-mailer rotate-secret --replace-lost" in lines[0]
    assert not (project / SECRET).exists()


@pytest.fixture(scope="module")
def sent_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample project that sent its issue to one reader (made once: a send is seconds)."""
    root = tmp_path_factory.mktemp("sent") / "proj"
    init_project(root)
    first = subprocess.run([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE,
                            "--yes", "--limit", "1"], cwd=root, capture_output=True,
                           text=True, timeout=60, check=False, env=dict(os.environ))
    assert first.returncode == 0, first.stderr
    return root


@pytest.fixture
def lost(project: Path, sent_once: Path) -> tuple[Path, bytes]:
    """That project in this test's folder, its secret lost; returns it and the lost key."""
    shutil.rmtree(project)
    shutil.copytree(sent_once, project)
    assert len(outbox(project)) == 1
    key = (project / SECRET).read_bytes()
    (project / SECRET).unlink()
    return project, key


def unsubscribe_mail(project: Path) -> str:
    """A reply to the first message's List-Unsubscribe mailto, put in inbox/new."""
    message = outbox(project)[0].read_text()
    to = re.search(r"^To: .*<([^>]+)>", message, re.M)
    subject = re.search(r"^List-Unsubscribe: .*\?subject=([^>]+)>", message, re.M)
    assert to is not None and subject is not None, message
    for sub in ("new", "cur", "tmp"):
        (project / "inbox" / sub).mkdir(parents=True, exist_ok=True)
    (project / "inbox/new/1.reader.host").write_text(
        f"From: {to.group(1)}\r\nTo: info@mirageproject.eu\r\n"
        f"Subject: {unquote(subject.group(1))}\r\nMessage-ID: <r1@example.org>\r\n"
        "Date: Tue, 01 Dec 2026 13:50:00 +0000\r\n\r\nunsubscribe\r\n")
    return to.group(1)


@pytest.mark.parametrize("args", [
    ("send", SAMPLE_ISSUE, "--yes"),
    ("send", SAMPLE_ISSUE, "--dry-run"),
    ("send", SAMPLE_ISSUE, "--to", "test@example.org"),
    ("preview", SAMPLE_ISSUE, "--out", "pv"),
    ("validate", SAMPLE_ISSUE),
    ("run-due",),
    ("rotate-secret",),
    ("process-unsubscribes", "--maildir", "inbox"),
    ("serve", "--port", "PORT"),
])
def test_a_lost_secret_is_refused_and_never_replaced(lost: tuple[Path, bytes], run_cli: RunCli,
                                                     args: tuple[str, ...]) -> None:
    project, _ = lost
    if args[0] == "process-unsubscribes":
        unsubscribe_mail(project)
    args = tuple(str(free_port()) if arg == "PORT" else arg for arg in args)
    result = run_cli(*args, timeout=30)  # serve would otherwise listen until the timeout
    assert_refused(project, result.code, result.err)
    assert len(outbox(project)) == 1  # nothing sent, not even a test copy
    if args[0] == "process-unsubscribes":  # left for when the key is back
        assert len(list((project / "inbox/new").iterdir())) == 1


def test_process_bounces_with_verp_is_refused_too(lost: tuple[Path, bytes],
                                                  run_cli: RunCli) -> None:
    """Without the key every VERP token of a message already sent would look forged."""
    project, _ = lost
    config = project / "mirage.yaml"
    config.write_text(config.read_text() + "bounces:\n  address: bounces@mirageproject.eu\n"
                      "  mailbox: bouncebox\n")
    for sub in ("new", "cur", "tmp"):
        (project / "bouncebox" / sub).mkdir(parents=True)
    result = run_cli("process-bounces")
    assert_refused(project, result.code, result.err)


def test_restoring_the_secret_keeps_the_first_readers_link_working(
        lost: tuple[Path, bytes], run_cli: RunCli) -> None:
    project, key = lost
    reader = unsubscribe_mail(project)
    (project / SECRET).write_bytes(key)
    resumed = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert resumed.code == 0, resumed.err
    assert len(outbox(project)) == 5
    done = run_cli("process-unsubscribes", "--maildir", "inbox")
    assert done.code == 0, done.err
    assert f"unsubscribed {reader}" in done.out, done.out


def test_a_store_with_recipients_and_no_marker_counts_as_sent(
        lost: tuple[Path, bytes], run_cli: RunCli) -> None:
    """A project that sent with a version before `.mirage/sent`: its store says it has sent."""
    project, _ = lost
    (project / ".mirage/sent").unlink()
    result = run_cli("preview", SAMPLE_ISSUE, "--out", "pv")
    assert_refused(project, result.code, result.err)
    assert (project / ".mirage/sent").exists()


def test_replace_lost_starts_over_on_purpose(lost: tuple[Path, bytes], run_cli: RunCli) -> None:
    project, key = lost
    replaced = run_cli("rotate-secret", "--replace-lost")
    assert replaced.code == 0, replaced.err
    assert replaced.out == (".mirage/secret: new signing key in place of the lost one; "
                            "unsubscribe links in messages already sent no longer work "
                            "(restart 'serve' to use it)\n")
    new = (project / SECRET).read_bytes()
    assert len(new.split()) == 1 and new != key
    assert new.strip().decode() not in replaced.out + replaced.err
    again = run_cli("rotate-secret", "--replace-lost")
    assert again.code == 2 and errors(again.err) == [
        ".mirage/secret: --replace-lost: the signing secret is there; it only replaces a "
        "lost one (drop --replace-lost to rotate: the earlier keys are kept so links already "
        "sent keep working)"], again.err
    assert (project / SECRET).read_bytes() == new
    resumed = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert resumed.code == 0, resumed.err
    assert len(outbox(project)) == 5


def test_a_project_that_never_sent_still_gets_its_first_key(project: Path,
                                                            run_cli: RunCli) -> None:
    """validate writes nothing; the first command that signs makes the key, as before."""
    checked = run_cli("validate", SAMPLE_ISSUE)
    assert checked.code == 0, checked.err
    assert not (project / SECRET).exists()
    tried = run_cli("send", SAMPLE_ISSUE, "--dry-run")
    assert tried.code == 0, tried.err
    assert (project / SECRET).exists() and not (project / ".mirage/sent").exists()
