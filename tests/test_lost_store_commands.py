"""Once a project has sent, a lost store is refused by every command that opens it, not only
``send``: an ``unsubscribe`` taken into a new store vanished when the backup was put back over
it (operations.md#backups), and the reader got the next issue. Readers must not read a new
empty store as "nobody unsubscribed", nor write a schema into an emptied file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.project.scaffold import init_project
from mirage_mailer.store import Store

DB = ".mirage/tracking.sqlite"
JEAN = "jean.dupont@example.org"
HINT = ("(restore the database from the backup (docs/operations.md#backups), or start over on "
        "purpose with 'mirage-mailer send ISSUE_DIR --new-store')")
RECORDS = ("what this command records now would be lost when the backup is restored; nothing "
           "was changed")
READS = "every reader would look never sent and never unsubscribed; the store was left as it is"


def lost(what: str, outcome: str) -> str:
    return (f"{DB}: the tracking database {what}, but this project has sent before "
            f"(.mirage/sent): {outcome} {HINT}")


def lose_store(project: Path, how: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{project / DB}{suffix}").unlink(missing_ok=True)
    if how == "zero bytes":
        (project / DB).write_bytes(b"")


def store_left_alone(project: Path, how: str) -> bool:
    path = project / DB
    return (not path.exists()) if how == "missing" else path.stat().st_size == 0


@pytest.fixture(scope="module")
def sent_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample issue sent once for the module (a real send, in a subprocess)."""
    root = tmp_path_factory.mktemp("sent") / "proj"
    init_project(root)
    proc = subprocess.run([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE,
                           "--yes"], cwd=root, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def project(sent_template: Path, tmp_path: Path) -> Path:
    """A copy of the sent project (``run_cli`` runs in it)."""
    root = tmp_path / "proj"
    shutil.copytree(sent_template, root)
    return root


@pytest.fixture
def backup(project: Path, tmp_path: Path) -> Path:
    """The store copied aside, as operations.md says."""
    saved = tmp_path / "backup.sqlite"
    shutil.copy(project / DB, saved)
    return saved


@pytest.mark.parametrize("how", ["missing", "zero bytes"])
def test_an_unsubscribe_is_refused_not_lost_on_restore(project: Path, run_cli: RunCli,
                                                        backup: Path, how: str) -> None:
    lose_store(project, how)
    result = run_cli("unsubscribe", JEAN)
    what = "is missing" if how == "missing" else "is empty (zero bytes)"
    assert (result.code, result.out) == (2, "")
    assert result.err.splitlines() == [lost(what, RECORDS)]
    assert store_left_alone(project, how)
    shutil.copy(backup, project / DB)  # the restore, then the officer runs it again
    again = run_cli("unsubscribe", JEAN)
    assert (again.code, again.out.strip()) == (
        0, f"{JEAN}: unsubscribed; never sent to again, from any list"), again.err
    with Store(project / DB) as store:  # in the restored store, for the next issue
        assert store.is_suppressed(JEAN)


COMMANDS = [
    (("forget", "--yes", JEAN), RECORDS),
    (("process-unsubscribes", "--maildir", "inbox"), RECORDS),
    (("process-unsubscribes", "--maildir", "inbox", "--dry-run"), READS),
    (("process-bounces",), RECORDS),
    (("export", JEAN), READS),
    (("subscribers", "list", "--format", "json"), READS),
    (("subscribers", "export", "--list", "subscribers"), READS),
    (("subscribers", "count"), READS),
    (("subscribers", "count", "--issue", SAMPLE_ISSUE), READS),
    (("subscribers", "add", "subscribers", "new@example.org"), READS),
    (("subscribers", "import", "new.csv", "--list", "subscribers"), READS),
    (("archive", "--out", "site", "--base-url", "https://example.org"), READS),
]


@pytest.mark.parametrize(("args", "outcome"), COMMANDS, ids=[" ".join(c[0]) for c in COMMANDS])
def test_every_command_that_opens_the_store_refuses_a_lost_one(
        project: Path, run_cli: RunCli, backup: Path, args: tuple[str, ...],
        outcome: str) -> None:
    for folder in ("inbox/new", "inbox/cur", "inbox/tmp"):
        (project / folder).mkdir(parents=True)
    (project / "new.csv").write_text("email\nnew@example.org\n", encoding="utf-8")
    config = project / "mirage.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "\nbounces:\n  address: "
                      "bounces@mirageproject.eu\n  mailbox: inbox\n", encoding="utf-8")
    lists = (project / "lists/subscribers.csv").read_bytes()
    lose_store(project, "zero bytes")
    result = run_cli(*args)
    assert (result.code, result.out) == (2, ""), result.err
    assert result.err.splitlines() == [lost("is empty (zero bytes)", outcome)]
    assert store_left_alone(project, "zero bytes")  # no schema written over the evidence
    assert (project / "lists/subscribers.csv").read_bytes() == lists
    assert not (project / "site").exists()


def test_validate_names_the_lost_store_and_leaves_it_alone(project: Path, run_cli: RunCli,
                                                           backup: Path) -> None:
    lose_store(project, "zero bytes")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err  # validate checks the inputs; send refuses
    assert (f"{lost('is empty (zero bytes)', READS)} (recipient figures below ignore the "
            "tracking store)") in result.err.splitlines()
    assert store_left_alone(project, "zero bytes")


def test_a_project_that_never_sent_still_makes_its_store_on_unsubscribe(
        project: Path, run_cli: RunCli) -> None:
    (project / ".mirage/sent").unlink()  # as before its first send
    lose_store(project, "missing")
    result = run_cli("unsubscribe", JEAN)
    assert result.code == 0, result.err
    assert (project / DB).stat().st_size > 0
