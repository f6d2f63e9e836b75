"""Hostile values and a hostile network on the PostgreSQL store: what SQLite takes as it is
must be recorded on PostgreSQL too (a NUL character becomes U+FFFD), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, report, use_relay
from mirage_mailer.store import NewRecipient, Store, StoreError, hashed_key
from mirage_mailer.store.pg import nul_free
from mirage_mailer.util.database import Database, PostgresUrl, parse_postgres
from mirage_mailer.util.errors import ExitCode
from support.faults import refuse
from support.postgres import raw
from support.smtp_sink import SmtpSink
from test_postgres_cli import use_postgres

NUL_REPLY = "5.1.1 <r1@example.org>\x00 unknown\x00"


def test_nul_free_leaves_clean_parameters_as_they_are() -> None:
    clean = ("a", 1, None, b"\x00")  # bytes are bytea, which holds NUL
    assert nul_free(clean) is clean
    assert nul_free(("a\x00b", 2, "\x00")) == ["a\ufffdb", 2, "\ufffd"]


def test_a_nul_in_any_recorded_text_is_kept_on_both_backends(store_url: Database) -> None:
    """A relay's reply, a bounce's diagnostic, a name and a list field with NUL: every
    outcome is recorded (SQLite as it came, PostgreSQL with U+FFFD)."""
    on_pg = isinstance(store_url, PostgresUrl)
    expect = NUL_REPLY.replace("\x00", "\ufffd") if on_pg else NUL_REPLY
    with Store(store_url) as store:
        store.reconcile("2024-05", [
            NewRecipient(f"r{n}@example.org", f"R\x00{n}", "en", "main", {"org": "A\x00B"},
                         subject=f"s{n}") for n in range(4)])
        rows = list(store.iter_pending("2024-05"))
        assert rows[0].name == ("R\ufffd0" if on_pg else "R\x000")
        store.record([], [(r.id, f"<{r.id}@x>") for r in rows])
        store.record([(rows[0].id, "failed", 550, NUL_REPLY)])  # execute
        store.record_batch([(rows[1].id, hashed_key(rows[1].email), 0, "failed", 550,
                             NUL_REPLY, f"<{rows[1].id}@x>", store.stamp())])  # executemany
        bounce = store.bounce_row(rows[2].email, f"<{rows[2].id}@x>")
        assert bounce is not None
        store.record_bounce("mid:<b\x00@x>", bounce, kind="bounced", detail=NUL_REPLY)
        store.suppress("r3@example.org", source="cli", reason=NUL_REPLY)
        by_email = {r["email"]: r for r in store.recipients("2024-05")}
        assert by_email["r0@example.org"]["smtp_response"] == expect
        assert by_email["r1@example.org"]["smtp_response"] == expect
        assert by_email["r1@example.org"]["status"] == "failed"
        details = [e["detail"] for e in store.events()]
        assert f"550 {expect}" in details
        assert any(expect in str(d) for d in details if d and "bounced" not in str(d))
        reasons = [s["reason"] for s in store.suppressions()]
        assert expect in reasons


def _tables(url: PostgresUrl) -> list[tuple[object, ...]]:
    return raw(url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")


def test_read_only_commands_leave_an_empty_database_empty(
        project: Path, run_cli: RunCli, pg_url: PostgresUrl) -> None:
    """As on SQLite, where a reader never creates the file: validate, a dry run, a report
    and a preview read an empty database as no store, and create no table in it."""
    use_postgres(project, pg_url)
    for args in (("validate", SAMPLE_ISSUE), ("send", SAMPLE_ISSUE, "--dry-run"),
                 ("report", SAMPLE_ISSUE), ("preview", SAMPLE_ISSUE)):
        result = run_cli(*args)
        assert result.code == 0, (args, result.err)
        assert _tables(pg_url) == [], args
    dry = run_cli("send", SAMPLE_ISSUE, "--dry-run")
    assert "5" in dry.out  # planned as a new store: everyone
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    assert _tables(pg_url) != []


@pytest.mark.parametrize("url", ["postgresql://mirage@db.example.org:99999/news",
                                 "postgresql://mirage@[::1/news"])
def test_a_malformed_url_is_told_how_to_write_one_not_about_passwords(
        project: Path, run_cli: RunCli, url: str) -> None:
    edit(project / "mirage.yaml", "  database: .mirage/tracking.sqlite", f"  database: {url}")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    [line] = [x for x in result.err.splitlines() if "tracking.database" in x]
    assert line.startswith("mirage.yaml:34: 'tracking.database' ")
    assert "is not a valid PostgreSQL URL" in line
    assert "postgresql://USER@HOST:PORT/DATABASE" in line and "PGPASSWORD" not in line


def test_password_env_naming_an_unset_variable_is_refused(
        pg_url: PostgresUrl, monkeypatch: pytest.MonkeyPatch) -> None:
    """tracking.password_env naming a variable this host does not set: one line (exit 2)
    naming it, before any login, even where PGPASSWORD is set: a host must never log in
    with another credential than the one the configuration names."""
    url = parse_postgres(pg_url.url, "MIRAGE_PG_UNSET")
    monkeypatch.delenv("MIRAGE_PG_UNSET", raising=False)
    monkeypatch.setenv("PGPASSWORD", "some-other-credential")  # trust auth: would connect
    with pytest.raises(StoreError) as caught:
        Store(url)
    assert "tracking.password_env names MIRAGE_PG_UNSET, which is not set" in str(caught.value)
    assert caught.value.exit_code == ExitCode.INVALID_INPUT
    monkeypatch.setenv("MIRAGE_PG_UNSET", "anything")  # set: the server decides (trust here)
    with Store(url) as store:
        assert store.schema_version > 0


@pytest.mark.smtp_fault(rules=[refuse("peter.novak@example.org",
                                      "550 5.1.1 bad\x00 byte \udcff here")])
def test_a_relay_reply_with_a_nul_and_bytes_not_utf8_is_recorded(
        project: Path, run_cli: RunCli, store_url: Database, sink: SmtpSink) -> None:
    """A relay's refusal carrying a NUL and a byte that is not UTF-8: the refusal is
    recorded (exit 1, one failed), on SQLite and PostgreSQL, never a traceback."""
    use_relay(project, sink.url)
    if isinstance(store_url, PostgresUrl):
        use_postgres(project, store_url)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 1, result.err
    assert "sent 4, failed 1" in result.out
    [failed] = [r for r in report(run_cli)["recipients"]  # type: ignore[union-attr]
                if r["status"] == "failed"]
    assert failed["smtp_code"] == 550
    assert failed["smtp_response"].startswith("5.1.1 bad")
    assert "here" in failed["smtp_response"]
