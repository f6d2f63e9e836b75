"""The store is the only memory of who has an issue: once a project has sent, a missing,
zero-byte, emptied or damaged store stops `send` and `run-due` (exit 2, one line, nothing
sent) instead of sending everyone the issue again; `send --new-store` starts over on purpose.
A store damaged in the middle is exit 2 with one line for every command, never exit 70."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, copy_project, edit
from mirage_mailer.store import Store

DB = ".mirage/tracking.sqlite"


def outbox_count(project: Path) -> int:
    folder = project / "outbox/new"
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": warning: " not in line]


def write_list(project: Path, count: int) -> None:
    lines = ["email,name,lang"] + [f"reader{n:04d}@example.org,Reader {n},en"
                                   for n in range(count)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def sent(project: Path, sample_sent: Path) -> Path:
    copy_project(sample_sent, project)  # the module's one real send
    assert outbox_count(project) == 5
    return project


def remove_store(project: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{project / DB}{suffix}").unlink(missing_ok=True)


def damage_middle(path: Path) -> None:
    """Overwrite the middle third of the file with garbage (the first page stays intact)."""
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third:2 * third] = b"\xab" * third
    path.write_bytes(bytes(data))


def assert_refused(result_code: int, stderr: str, *words: str) -> None:
    assert result_code == 2, stderr
    lines = errors(stderr)
    assert len(lines) == 1, stderr
    assert "tracking.sqlite" in lines[0]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("how", ["deleted", "zero bytes", "emptied", "re-created"])
def test_a_lost_store_refuses_send_and_new_store_starts_over(sent: Path, run_cli: RunCli,
                                                            how: str) -> None:
    if how == "deleted":
        remove_store(sent)
    elif how == "zero bytes":
        remove_store(sent)
        (sent / DB).write_bytes(b"")
    elif how == "re-created":  # deleted, then a new one made by an unsubscription (of a
        remove_store(sent)     # version before 'unsubscribe' refused a lost store too)
        with Store(sent / DB) as store:
            store.suppress("someone@example.org", source="cli", reason="test")
    else:
        with sqlite3.connect(sent / DB) as raw:
            for table in ("recipients", "events", "suppressions", "subscribers"):
                raw.execute(f"DELETE FROM {table}")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert_refused(result.code, result.err, "--new-store")
    assert outbox_count(sent) == 5

    again = run_cli("send", SAMPLE_ISSUE, "--yes", "--new-store")
    assert again.code == 0, again.err
    assert outbox_count(sent) == 10
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0  # the new store remembers
    assert outbox_count(sent) == 10


def test_run_due_refuses_a_lost_store(sent: Path, run_cli: RunCli) -> None:
    edit(sent / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:00:00+02:00")
    remove_store(sent)
    result = run_cli("run-due")
    assert_refused(result.code, result.err, "--new-store")
    assert outbox_count(sent) == 5


def test_a_store_damaged_in_the_middle_is_exit_2_for_every_command(project: Path,
                                                                    run_cli: RunCli) -> None:
    write_list(project, 300)
    assert run_cli("unsubscribe", "reader0007@example.org").code == 0
    first = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert first.code == 0, first.err
    assert outbox_count(project) == 299
    damage_middle(project / DB)
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:00:00+02:00")
    for args in (("send", SAMPLE_ISSUE, "--yes"), ("run-due",),
                 ("report", SAMPLE_ISSUE, "--format", "json"), ("report",),
                 ("unsubscribe", "reader0150@example.org"), ("export", "reader0150@example.org")):
        result = run_cli(*args)
        assert_refused(result.code, result.err, "damaged")
    assert outbox_count(project) == 299

    fresh = run_cli("send", SAMPLE_ISSUE, "--yes", "--new-store")
    assert fresh.code == 0, fresh.err
    assert outbox_count(project) == 598  # still not the one who unsubscribed
    assert list((project / ".mirage").glob("tracking.sqlite.damaged-*"))  # kept, not deleted


def test_init_preview_send_on_a_brand_new_project(project: Path, run_cli: RunCli) -> None:
    assert run_cli("preview", SAMPLE_ISSUE).code == 0
    assert (project / ".mirage/secret").exists()
    assert run_cli("send", SAMPLE_ISSUE, "--dry-run").code == 0
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    assert outbox_count(project) == 5


def test_new_store_does_not_discard_a_healthy_store(sent: Path, run_cli: RunCli) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--yes", "--new-store")
    assert_refused(result.code, result.err, "--new-store: the tracking database is intact")
    assert outbox_count(sent) == 5


def test_a_store_from_before_the_marker_is_still_protected(sent: Path, run_cli: RunCli) -> None:
    """Projects that sent with an older version have no marker: a healthy run adds it."""
    (sent / ".mirage/sent").unlink(missing_ok=True)
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    remove_store(sent)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert_refused(result.code, result.err, "--new-store")
    assert outbox_count(sent) == 5


def test_a_store_damaged_near_its_schema_is_said_damaged_by_report(sent: Path,
                                                                    run_cli: RunCli) -> None:
    """Garbage on page 2 made the store's upgrade check fail with an ordinary error ("table
    issues_as_sent already exists"), so report and unsubscribe said "check tracking.database"
    while send said "damaged": the same file, told two ways, one of them no help."""
    path = sent / DB
    for suffix in ("-wal", "-shm"):  # the send checkpointed: the file holds everything
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")  # the file's page size (its header, offset 16)
    # page 2 (the migrations' table), where its cells are: they fill a page from its end
    data[2 * page - 3192:2 * page - 192] = b"\xff" * 3000
    path.write_bytes(bytes(data))
    for args in (("report",), ("report", SAMPLE_ISSUE, "--format", "json"),
                 ("unsubscribe", "someone@example.org"), ("send", SAMPLE_ISSUE, "--yes")):
        result = run_cli(*args)
        assert_refused(result.code, result.err, "damaged")
    assert outbox_count(sent) == 5
