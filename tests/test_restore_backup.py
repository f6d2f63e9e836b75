"""A tracking store restored from an older backup, as docs/operations.md#backups says to
take and put back one, must not re-mail anyone: `.mirage/ledger` (outside the backup set)
says how far each issue got and every suppression recorded; the store is compared with it
when a command opens it. An issue sent further than the store knows is refused (exit 2, one
line) by send and run-due until `send --accept-restore`; `report` warns; whoever unsubscribed
or was erased since the backup is suppressed again (real CLI runs, real SQLite files)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from helpers import RunCli, edit
from mirage_mailer.store import open_store
from mirage_mailer.util.database import Database

DB = ".mirage/tracking.sqlite"
READERS = [f"r{i}@example.org" for i in range(10)]
REFUSED = (".mirage/ledger: issue 2027-02: this project sent it to more readers than the "
           "tracking database knows (.mirage/tracking.sqlite was restored from an older "
           "backup?): they would get it again; nothing was sent (restore a newer backup of "
           "the database (docs/operations.md#backups), or send it again to the readers the "
           "database does not know on purpose with 'mirage-mailer send issues/2027-02 "
           "--accept-restore')")


def newsletter(project: Path) -> None:
    """Ten readers, two monthly issues due by run-due, no pacing (each send is quick)."""
    edit(project / "mirage.yaml", "  rate_per_second: 10", "  rate_per_second: null")
    shutil.rmtree(project / "issues")
    rows = "".join(f"{a},R {i},en\n" for i, a in enumerate(READERS))
    (project / "lists/subscribers.csv").write_text("email,name,lang\n" + rows)
    for month in ("01", "02"):
        folder = project / f"issues/2027-{month}"
        folder.mkdir(parents=True)
        (folder / "issue.yaml").write_text(
            f"subject: News 2027-{month}\nlist: subscribers\narticles: [a.md]\n"
            f"send_at: 2027-{month}-15T09:00:00+01:00\n")
        (folder / "a.md").write_text(f"---\ntitle: Article {month}\n---\nText.\n")


def back_up(project: Path, to: Path) -> None:
    """Exactly docs/operations.md#backups: SQLite's online backup, then secret and sent."""
    to.mkdir()
    source = sqlite3.connect(project / DB)
    target = sqlite3.connect(to / "tracking.sqlite")
    source.backup(target)
    target.close()
    source.close()
    for name in ("secret", "sent"):
        shutil.copy2(project / ".mirage" / name, to / name)


def restore(project: Path, backup: Path) -> None:
    """Put the three files back (mode 0600), as the docs say; nothing else is touched."""
    for suffix in ("-wal", "-shm"):
        Path(f"{project / DB}{suffix}").unlink(missing_ok=True)
    for name in ("tracking.sqlite", "secret", "sent"):
        shutil.copy2(backup / name, project / ".mirage" / name)
        (project / ".mirage" / name).chmod(0o600)


def copies(project: Path, subject: str) -> Counter[str]:
    """How many messages with ``subject`` each reader has in the Maildir outbox."""
    got: Counter[str] = Counter()
    for path in (project / "outbox/new").iterdir():
        head = path.read_bytes().split(b"\n\n", 1)[0].decode()
        if f"\nSubject: {subject}\n" in f"\n{head}\n":
            got.update(line.split("<")[-1].rstrip(">") for line in head.splitlines()
                       if line.startswith("To: "))
    return got


def suppressed(project: Path) -> set[str]:
    conn = sqlite3.connect(project / DB)
    try:
        return {str(e) for (e,) in conn.execute("SELECT email FROM suppressions")}
    finally:
        conn.close()


def named(project: Path, address: str) -> int:
    """Rows and events of the store that still name ``address`` (0 once erased)."""
    conn = sqlite3.connect(project / DB)
    try:
        return sum(conn.execute(f"SELECT count(*) FROM {table} WHERE email = ?",
                                (address,)).fetchone()[0] for table in ("recipients", "events"))
    finally:
        conn.close()


def test_restoring_the_documented_backup_refuses_the_issue_and_keeps_suppressions(
        project: Path, run_cli: RunCli, tmp_path: Path) -> None:
    newsletter(project)
    assert run_cli("run-due", "--now", "2027-01-15T09:05:00+01:00").code == 0
    back_up(project, tmp_path / "backup")
    assert run_cli("run-due", "--now", "2027-02-15T09:05:00+01:00").code == 0
    assert run_cli("unsubscribe", "r1@example.org").code == 0
    assert run_cli("forget", "r2@example.org", "--yes").code == 0
    before = copies(project, "News 2027-02")
    assert before == Counter(READERS)
    restore(project, tmp_path / "backup")

    report = run_cli("report")
    assert report.code == 0, report.err
    assert ("warning: .mirage/ledger: issue 2027-02: this project sent it to more readers "
            "than the tracking database knows") in report.err
    due = run_cli("run-due", "--now", "2027-02-15T09:15:00+01:00")
    assert due.code == 2, due.out + due.err
    assert f"2027-02: {REFUSED}" in due.err.splitlines(), due.err
    assert copies(project, "News 2027-02") == before  # nobody mailed
    # the unsubscribe and the erasure made after the backup are back in the restored store
    assert "r1@example.org" in suppressed(project)
    assert any(e.startswith("sha256:") for e in suppressed(project))
    assert named(project, "r2@example.org") == 0

    # the documented way to accept: readers the store does not know get the issue again,
    # except those who unsubscribed or were erased since
    again = run_cli("send", "issues/2027-02", "--accept-restore", "--yes")
    assert again.code == 0, again.err
    after = copies(project, "News 2027-02")
    assert after == Counter({a: 1 if a in ("r1@example.org", "r2@example.org") else 2
                             for a in READERS})
    assert run_cli("run-due", "--now", "2027-02-15T09:20:00+01:00").code == 0
    assert copies(project, "News 2027-02") == after
    assert "warning" not in run_cli("report").err


def test_a_backup_taken_mid_issue_is_refused_too(project: Path, run_cli: RunCli,
                                                 tmp_path: Path) -> None:
    newsletter(project)
    assert run_cli("send", "issues/2027-01", "--yes", "--limit", "3").code == 0
    back_up(project, tmp_path / "backup")
    assert run_cli("send", "issues/2027-01", "--yes").code == 0
    sent = copies(project, "News 2027-01")
    assert sent == Counter(READERS)
    restore(project, tmp_path / "backup")

    for asked in ((), ("--yes",)):  # refused before the question, and at the send
        refused = run_cli("send", "issues/2027-01", *asked)
        assert refused.code == 2
        assert refused.err.startswith(".mirage/ledger: issue 2027-01: this project sent it "
                                      "to more readers than the tracking database knows")
        assert len(refused.err.splitlines()) == 1, refused.err
    assert copies(project, "News 2027-01") == sent


def test_an_unsubscribe_lost_with_the_backup_is_reapplied_without_refusing(
        project: Path, run_cli: RunCli, tmp_path: Path) -> None:
    """A backup newer than every send, older than an unsubscribe: nothing to refuse, the
    unsubscribe is written again before the next issue goes out."""
    newsletter(project)
    assert run_cli("send", "issues/2027-01", "--yes").code == 0
    back_up(project, tmp_path / "backup")
    assert run_cli("unsubscribe", "r3@example.org").code == 0
    restore(project, tmp_path / "backup")
    assert "r3@example.org" not in suppressed(project)

    report = run_cli("report")
    assert report.code == 0 and "warning" not in report.err, report.err
    sent = run_cli("send", "issues/2027-02", "--yes")
    assert sent.code == 0, sent.err
    assert copies(project, "News 2027-02") == Counter(a for a in READERS
                                                      if a != "r3@example.org")
    assert "r3@example.org" in suppressed(project)


KILL_AFTER_COMMIT = """
import os, signal, sys
from mirage_mailer.store import ledger
from mirage_mailer.__main__ import main

def append(self, records, *, sync=False):  # the store has the batch; the ledger never will
    if any(record.get("k") == "sent" for record in records):
        os.kill(os.getpid(), signal.SIGKILL)
    return keep(self, records, sync=sync)

keep = ledger.Ledger.append
ledger.Ledger.append = append
sys.argv = ["mirage-mailer", *sys.argv[1:]]
main()
"""


def test_a_kill_between_the_store_commit_and_the_ledger_is_no_false_refusal(
        project: Path, run_cli: RunCli) -> None:
    newsletter(project)
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_COMMIT, "send",
                             "issues/2027-01", "--yes"], cwd=project, capture_output=True,
                            text=True, timeout=60, check=False, env=dict(os.environ))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ledger = project / ".mirage/ledger"  # the kill came before it heard of the batch
    assert not ledger.exists() or '"k":"sent"' not in ledger.read_text()
    assert run_cli("report", "--format", "json").code == 0  # the store has the batch

    rerun = run_cli("send", "issues/2027-01", "--yes")
    assert rerun.code == 0, rerun.err
    assert copies(project, "News 2027-01") == Counter(READERS)
    assert run_cli("run-due", "--now", "2027-02-15T09:05:00+01:00").code == 0
    assert copies(project, "News 2027-02") == Counter(READERS)


def test_a_new_project_and_a_new_store_are_never_refused(project: Path, run_cli: RunCli,
                                                         tmp_path: Path) -> None:
    newsletter(project)
    assert not (project / ".mirage/ledger").exists()
    first = run_cli("send", "issues/2027-01", "--yes")
    assert first.code == 0, first.err
    assert (project / ".mirage/ledger").stat().st_mode & 0o777 == 0o600
    assert run_cli("unsubscribe", "r4@example.org").code == 0

    # the store lost with no backup: started over on purpose, as the docs say
    (project / DB).unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{project / DB}{suffix}").unlink(missing_ok=True)
    over = run_cli("send", "issues/2027-02", "--yes", "--new-store")
    assert over.code == 0, over.err
    assert "r4@example.org" in suppressed(project)  # the ledger kept the promise
    assert copies(project, "News 2027-02") == Counter(a for a in READERS
                                                      if a != "r4@example.org")
    again = run_cli("send", "issues/2027-02", "--yes")
    assert again.code == 0, again.err
    assert "warning" not in run_cli("report").err


def test_the_ledger_finds_an_older_store_on_both_backends(store_url: Database,
                                                          tmp_path: Path) -> None:
    """The comparison runs on what both backends hold (the events' ids and times, the
    suppressions): a store whose newer rows are gone, as after a restore (``pg_dump`` or a
    SQLite backup), gets its suppressions back and names the issue it knows less of."""
    state = tmp_path / "state"
    with open_store(store_url, state_dir=state) as store:
        store.suppress("before@example.org", source="cli")
        backup = store.latest_mark()
        assert backup is not None
        store.suppress("after@example.org", source="web")
        store.note_sent("2027-02")
        with store._write() as conn:  # what the older picture lacks
            conn.execute("DELETE FROM events WHERE id > ?", (backup[0],))
            conn.execute("DELETE FROM suppressions WHERE email = 'after@example.org'")
    with open_store(store_url, state_dir=state) as store:
        assert store.restored.behind == {"2027-02"}
        assert store.is_suppressed("after@example.org")
        store.accept_restore("2027-02")
    with open_store(store_url, state_dir=state) as store:
        assert store.restored.behind == set()
    assert (state / "ledger").stat().st_mode & 0o777 == 0o600


def test_forget_leaves_only_the_hash_in_the_ledger(tmp_path: Path) -> None:
    """An erased person's earlier unsubscribe line goes from the ledger with them: it keeps
    no more of them than the store does (the hash)."""
    state = tmp_path / ".mirage"
    with open_store(state / "tracking.sqlite", state_dir=state) as store:
        store.suppress("Jean@Example.org", source="web")
        store.suppress("other@example.org", source="cli")
        store.forget("jean@example.org")
    text = (state / "ledger").read_text()
    assert "jean" not in text.lower() and "other@example.org" in text
    assert '"k":"forget","h":"sha256:' in text
