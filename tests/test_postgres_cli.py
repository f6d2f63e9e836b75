"""The CLI end to end with tracking.database on a real PostgreSQL server: the sample issue sent
to the Maildir outbox, reported as on SQLite, never sent twice; unsubscribe; the lost-store
guard; and a server that is not there (exit 3, one line, the URL without a password)."""

from __future__ import annotations

from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, edit, report
from mirage_mailer.project.scaffold import init_project
from mirage_mailer.util.database import PostgresUrl
from support.ports import RefusingPorts
from support.postgres import raw

DB_LINE = "  database: .mirage/tracking.sqlite"


def use_postgres(project: Path, url: PostgresUrl | str) -> None:
    edit(project / "mirage.yaml", DB_LINE, f"  database: {url}")


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": warning: " not in line]


def outbox_count(project: Path) -> int:
    folder = project / "outbox/new"
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def comparable(data: dict[str, object]) -> dict[str, object]:
    """A report without what differs from run to run (message ids, times, file names)."""
    rows = data["recipients"]
    assert isinstance(rows, list)
    return {"counts": data["counts"], "recipients": sorted(
        (r["email"], r["status"], r["attempts"], r["smtp_code"]) for r in rows)}


def test_send_report_rerun_and_unsubscribe_on_postgresql(
        project: Path, run_cli: RunCli, pg_url: PostgresUrl, tmp_path: Path) -> None:
    use_postgres(project, pg_url)
    first = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert first.code == 0, first.err
    assert "sent 5" in first.out
    assert outbox_count(project) == 5
    assert not (project / ".mirage/tracking.sqlite").exists()  # the server holds it all
    assert raw(pg_url, "SELECT count(*) FROM recipients WHERE status = 'sent'") == [(5,)]

    on_postgres = report(run_cli)
    lite = tmp_path / "lite"
    init_project(lite)
    assert run_cli("send", SAMPLE_ISSUE, "--yes", cwd=lite).code == 0
    assert comparable(on_postgres) == comparable(_report_in(run_cli, lite))

    again = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert again.code == 0, again.err
    assert outbox_count(project) == 5  # nobody twice

    assert run_cli("unsubscribe", "Jean.Dupont@example.org").code == 0
    assert raw(pg_url, "SELECT email, source FROM suppressions") == [
        ("jean.dupont@example.org", "cli")]
    listed = run_cli("report", "--format", "json")
    assert listed.code == 0, listed.err


def _report_in(run_cli: RunCli, root: Path) -> dict[str, object]:
    import json

    result = run_cli("report", SAMPLE_ISSUE, "--format", "json", cwd=root)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert isinstance(data, dict)
    return data


def test_a_lost_postgresql_store_refuses_send_and_new_store_starts_over(
        project: Path, run_cli: RunCli, pg_url: PostgresUrl) -> None:
    use_postgres(project, pg_url)
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    raw(pg_url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public", script=True)  # restored
    # from the wrong backup, or a new database behind the same URL
    refused = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert refused.code == 2, refused.err
    [line] = errors(refused.err)
    assert line.startswith(f"{pg_url.url}: the tracking database has none of mirage-mailer's")
    assert "--new-store" in line
    assert outbox_count(project) == 5

    fresh = run_cli("send", SAMPLE_ISSUE, "--yes", "--new-store")
    assert fresh.code == 0, fresh.err
    assert outbox_count(project) == 10
    raw(pg_url, "DELETE FROM recipients")
    emptied = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert emptied.code == 2
    assert "is empty (no recipient recorded)" in emptied.err
    assert outbox_count(project) == 10


def test_a_server_that_is_not_there_stops_every_command_with_exit_3(
        project: Path, run_cli: RunCli, refusing_port: RefusingPorts) -> None:
    port = refusing_port()
    url = f"postgresql://mirage@127.0.0.1:{port}/news"
    use_postgres(project, url)
    for args in (("send", SAMPLE_ISSUE, "--yes"), ("report", SAMPLE_ISSUE),
                 ("unsubscribe", "someone@example.org")):
        result = run_cli(*args)
        assert result.code == 3, (args, result.err)
        [line] = errors(result.err)
        assert line.startswith(f"{url}: cannot connect to the tracking database: "), line
    assert outbox_count(project) == 0
