"""``store migrate``: a project's SQLite tracking store copied into PostgreSQL, and the project
carrying on there as if nothing had happened.

A real PostgreSQL server (``support/postgres.py``), the real CLI in subprocesses, and the
sample project sent to aiosmtpd on 127.0.0.1 with a mix of every outcome: sent, failed (5xx),
unknown (the connection dropped after DATA), suppressed, invalid, withdrawn; web sign-ups
pending and confirmed; a hard bounce read by ``process-bounces``; a forgotten person's hashed
suppression. Then the failures: a target that holds a store, a running send, a journal left by
a SIGKILLed send, the connection lost mid-copy, the source written to mid-copy.
"""

from __future__ import annotations

import email
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from email import policy
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from helpers import SAMPLE_ISSUE, RunCli, edit, use_relay
from mirage_mailer.project.config import load_settings
from mirage_mailer.services.journal import issue_journals, lock_path
from mirage_mailer.services.signup import confirm, sign_up
from mirage_mailer.services.store_migrate import (
    TableCount,
    _compare,
    checked_target,
    migrate_store,
)
from mirage_mailer.store import MIGRATIONS, NewRecipient, Store, StoreUnavailable
from mirage_mailer.store.sqlite_snapshot import SqliteSnapshot
from mirage_mailer.util.database import PostgresUrl
from mirage_mailer.util.errors import InputError
from mirage_mailer.util.locks import Lock
from mirage_mailer.util.tokens import Signer, load_secret
from mirage_mailer.web.app import create_app
from support.postgres import PostgresServer
from support.processes import PEAK_CLI, wait_send_gone
from support.smtp_sink import SmtpSink, drop_in_data, refuse, store_then_stall
from test_bounces_e2e import bounce, drop

with warnings.catch_warnings():  # Starlette prefers httpx2; httpx is what the project ships
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ISSUE = "2021-10-partners-meeting"
MARIA, JEAN, AMINA, PETER, SOFIA = ("maria.georgiou@example.org", "jean.dupont@example.org",
                                    "amina.haddad@example.org", "peter.novak@example.org",
                                    "sofia.rossi@example.org")
LENA, OMAR = "lena.berg@example.org", "omar.said@example.org"
BASE = "http://127.0.0.1:8025"
BOUNCES = "\nbounces:\n  address: bounces@mirageproject.eu\n  mailbox: bouncebox\n"
CLI_ENV = {"MIRAGE_SMTP_USER": "", "MIRAGE_SMTP_PASSWORD": ""}

# the `sink` fixture (conftest.py), each test afresh: Peter refused, Amina's message dropped once
pytestmark = pytest.mark.smtp_fault(rules=[refuse(PETER), drop_in_data(address=AMINA)])


def use_verp_relay(project: Path, sink: SmtpSink, *, concurrency: int = 4) -> None:
    """The project sends to the test relay, VERP on, links at a local base URL."""
    config = use_relay(project, sink.url, concurrency=concurrency)
    edit(config, "  # base_url: https://news.mirageproject.eu", f"  base_url: {BASE}")
    config.write_text(config.read_text(encoding="utf-8") + BOUNCES, encoding="utf-8")
    for sub in ("new", "cur", "tmp"):
        (project / "bouncebox" / sub).mkdir(parents=True, exist_ok=True)


def switch_to(project: Path, url: str) -> None:
    edit(project / "mirage.yaml", "  database: .mirage/tracking.sqlite", f"  database: {url}")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pg_tables(url: str) -> dict[str, int]:
    """Each table of the database with its row count."""
    with psycopg.connect(url) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name")]
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # type: ignore[index]
                for name in names}


def unsubscribed(project: Path) -> None:
    """A store that holds one unsubscription (and its event), made directly."""
    with Store(project / ".mirage" / "tracking.sqlite") as store:
        store.suppress(SOFIA, source="cli", reason="mirage-mailer unsubscribe")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def target(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database's URL, as a user types it after --to."""
    return postgres_server.new_database()


@pytest.fixture
def second_url(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database()


def lived_in(project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """The sample project after a season: every status, sign-ups, a bounce, an erasure."""
    use_verp_relay(project, sink)
    lists = project / "lists" / "subscribers.csv"
    lists.write_text(lists.read_text(encoding="utf-8")
                     + f"{LENA},Lena Berg,en,\n{OMAR},Omar Said,fr,\nnot-an-address,Bad Row,en,\n",
                     encoding="utf-8")
    assert run_cli("unsubscribe", SOFIA).code == 0
    assert run_cli("send", SAMPLE_ISSUE, "--yes", "--limit", "1", env=CLI_ENV).code == 0
    edit(lists, f"{JEAN},Jean Dupont,fr,Association Accueil\n", "")  # left before their turn
    settings = load_settings(project / "mirage.yaml")
    signer = Signer(load_secret(settings.state_dir, settings.tracking.secret_env))
    sign_up(settings, signer, "subscribers", "nina@example.net", name="Nina", lang="en")
    sign_up(settings, signer, "subscribers", "karl@example.net", name=None, lang="fr")
    confirm(settings, "subscribers", signer.subject_id("karl@example.net"))
    sent = run_cli("send", SAMPLE_ISSUE, "--yes", env=CLI_ENV)
    assert sent.code == 1, sent.err  # Peter's 550
    (omar,) = [r for r in sink.received if r.recipients == (OMAR,)]
    message_id = email.message_from_bytes(omar.data, policy=policy.default)["Message-ID"]
    drop(project / "bouncebox", "postfix", bounce("postfix.eml", verp=omar.sender, rcpt=OMAR,
                                                  message_id=str(message_id)))
    assert run_cli("process-bounces").code == 0
    assert run_cli("forget", "--yes", JEAN).code == 0


def test_the_project_carries_on_in_postgresql_as_it_was(
        project: Path, run_cli: RunCli, sink: SmtpSink, target: str) -> None:
    lived_in(project, run_cli, sink)
    before = run_cli("report", "--format", "json")
    readers = run_cli("subscribers", "list", "--format", "json")
    assert before.code == 0 and readers.code == 0
    found = {r["status"] for r in json.loads(before.out)[0]["recipients"]}
    assert found == {"sent", "failed", "unknown", "suppressed", "invalid", "withdrawn"}
    database = project / ".mirage" / "tracking.sqlite"
    kept = digest(database)

    done = run_cli("store", "migrate", "--to", target)
    assert done.code == 0, done.err
    with SqliteSnapshot(database) as snapshot:
        expected = {name: snapshot.count(name) for name in snapshot.tables()}
    assert expected["subscribers"] == 2 and expected["bounce_mail"] == 1
    assert expected["suppressions"] == 3  # Sofia, Omar's bounce, Jean's hashed erasure
    copied = pg_tables(target)
    assert {k: v for k, v in copied.items() if k != "schema_migrations"} == expected
    shown = " ".join(re.sub(r"[│┃|]", " ", done.out).split())
    for name, n in expected.items():
        assert f"{name} {n:,} {n:,}" in shown, done.out
    assert f"database: {target}" in done.out and "backup" in done.out
    assert digest(database) == kept  # read, never written

    switch_to(project, target)
    assert run_cli("report", "--format", "json").out == before.out
    assert run_cli("subscribers", "list", "--format", "json").out == readers.out
    received = len(sink.received)
    again = run_cli("send", SAMPLE_ISSUE, "--yes", env=CLI_ENV)
    assert again.code == 0, again.err
    assert len(sink.received) == received  # nobody had it twice
    # a link sent before the move still unsubscribes, now in PostgreSQL
    (message,) = [r.data for r in sink.received if r.recipients == (LENA,)]
    header = str(email.message_from_bytes(message, policy=policy.default)["List-Unsubscribe"])
    (link,) = [u for u in re.findall(r"<([^>]+)>", header) if u.startswith(f"{BASE}/u/")]
    app = create_app(load_settings(project / "mirage.yaml"))
    with TestClient(app, base_url=BASE) as client:
        clicked = client.post(link.removeprefix(BASE), content=b"List-Unsubscribe=One-Click",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert clicked.status_code == 200, clicked.text
    assert run_cli("unsubscribe", LENA).out.strip() == f"{LENA}: already unsubscribed"
    assert pg_tables(target)["suppressions"] == 4
    with Store(PostgresUrl(target)) as moved_store:  # the erased person, by the hash alone
        held = moved_store.export(JEAN)
        assert held["suppressed"]["hashed"] and not held["deliveries"] and not held["events"]
    # new rows numbered by PostgreSQL come after the copied ones (events above, sign-ups here)
    moved = load_settings(project / "mirage.yaml")
    signer = Signer(load_secret(moved.state_dir, moved.tracking.secret_env))
    assert sign_up(moved, signer, "subscribers", "late@example.net", name=None, lang="en")
    assert pg_tables(target)["subscribers"] == 3
    assert digest(database) == kept  # the old file is a backup now: nothing writes to it


def test_a_database_that_holds_a_store_is_refused(project: Path, run_cli: RunCli,
                                                  target: str) -> None:
    unsubscribed(project)
    assert run_cli("store", "migrate", "--to", target).code == 0
    held = pg_tables(target)
    again = run_cli("store", "migrate", "--to", target)
    assert again.code == 2
    assert "already holds a mirage-mailer store (1 in events, 1 in suppressions)" \
        in one_line(again.err)
    assert "stores are never merged" in again.err
    assert pg_tables(target) == held


def test_a_password_in_the_url_is_refused_and_never_printed(project: Path, run_cli: RunCli,
                                                            target: str) -> None:
    unsubscribed(project)
    with_password = target.replace("postgres@", "postgres:s3cret@")
    refused = run_cli("store", "migrate", "--to", with_password)
    assert refused.code == 2 and "holds a password" in one_line(refused.err)
    assert "s3cret" not in refused.err + refused.out
    with pytest.raises(InputError, match="is not a PostgreSQL URL"):
        checked_target("mysql://x@y/z", None)
    switch_to(project, target)  # already moved: the SQLite file must be named
    with pytest.raises(InputError, match="already names a PostgreSQL database"):
        migrate_store(load_settings(project / "mirage.yaml"), target)
    unset = run_cli("store", "migrate", "--to", target, "--password-env", "MIRAGE_NO_SUCH_VAR")
    assert unset.code == 2 and "MIRAGE_NO_SUCH_VAR is not set" in one_line(unset.err)
    missing = run_cli("store", "migrate", "--to", target, "--from", "nowhere.sqlite")
    assert missing.code == 2 and "no tracking database to migrate" in one_line(missing.err)
    assert pg_tables(target) == {}


def test_the_password_variable_goes_into_the_lines_for_mirage_yaml(
        project: Path, run_cli: RunCli, target: str) -> None:
    unsubscribed(project)
    done = run_cli("store", "migrate", "--to", target, "--password-env", "MIRAGE_PG_PASSWORD",
                   env={"MIRAGE_PG_PASSWORD": "not-printed"})  # trust on 127.0.0.1: unused
    assert done.code == 0, done.err
    assert f"    database: {target}\n    password_env: MIRAGE_PG_PASSWORD\n" in done.out
    assert "not-printed" not in done.out + done.err


def _old_store(path: Path, version: int) -> None:
    """A store as an older mirage-mailer left it: only the first ``version`` migrations."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                   "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        for number, (name, script) in enumerate(MIGRATIONS[:version], start=1):
            db.executescript(script)
            db.execute("INSERT INTO schema_migrations VALUES (?, ?, '2024-01-01')",
                       (number, name))
        db.execute("INSERT INTO recipients (id, issue, email, email_key, list_name, status, "
                   "created_at) VALUES (7, 'old', 'A@x.org', 'a@x.org', 'main', 'sent', 'then')")


def test_an_older_store_is_upgraded_first_and_copied_whole(project: Path, run_cli: RunCli,
                                                           target: str) -> None:
    database = project / ".mirage" / "tracking.sqlite"
    _old_store(database, 5)  # before 'withdrawn', bounces and relays
    done = run_cli("store", "migrate", "--to", target)
    assert done.code == 0, done.err
    assert f"(schema version {len(MIGRATIONS)})" in done.out
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == \
            (len(MIGRATIONS),)
        assert conn.execute("SELECT id, email, status, relay FROM recipients").fetchall() == \
            [(7, "A@x.org", "sent", None)]


def test_a_column_without_a_place_in_postgresql_stops_the_copy(project: Path, run_cli: RunCli,
                                                               target: str) -> None:
    """A column a SQLite migration added and the PostgreSQL one forgot is never dropped."""
    database = project / ".mirage" / "tracking.sqlite"
    unsubscribed(project)
    with sqlite3.connect(database) as db:
        db.execute("ALTER TABLE suppressions ADD COLUMN note TEXT")
        db.execute("CREATE TABLE newer (id INTEGER PRIMARY KEY)")
    refused = run_cli("store", "migrate", "--to", target)
    assert refused.code == 2
    assert "no place for newer, suppressions.note of the SQLite store" in one_line(refused.err)
    _no_store(target)


def test_a_nul_character_postgresql_cannot_store_is_replaced_and_named(
        project: Path, run_cli: RunCli, target: str) -> None:
    """SQLite keeps a NUL in text (a hostile bounce's diagnostic, a relay's reply);
    PostgreSQL's text cannot: the copy goes on with U+FFFD there, and says where."""
    unsubscribed(project)
    database = project / ".mirage" / "tracking.sqlite"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE events SET detail = ?", ("before\0after",))
        (event,) = db.execute("SELECT id FROM events").fetchone()
    done = run_cli("store", "migrate", "--to", target)
    assert done.code == 0, done.err
    assert one_line(done.err) == (f"events.detail (id {event}): warning: held a NUL character, "
                                  "which PostgreSQL cannot store; copied with U+FFFD in its "
                                  "place")
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT detail FROM events").fetchall() == [("before\ufffdafter",)]


def test_a_running_send_refuses_the_migration(project: Path, run_cli: RunCli,
                                              target: str) -> None:
    unsubscribed(project)
    lock = Lock(lock_path(project / ".mirage", ISSUE), "test")
    lock.acquire()
    try:
        refused = run_cli("store", "migrate", "--to", target)
    finally:
        lock.release()
    assert refused.code == 3
    line = one_line(refused.err)
    assert f"a send of {ISSUE} is already running (pid {os.getpid()}); nothing was copied" \
        in line
    assert pg_tables(target) == {}


def test_a_killed_sends_journal_is_replayed_before_the_copy(project: Path, run_cli: RunCli,
                                                            target: str) -> None:
    """The relay keeps each message and never answers: the send's claims exist only in its
    journal when it is killed. Copied without the replay, those rows would be ``pending``
    in PostgreSQL, and the next send would mail them again."""
    stall = SmtpSink(rules=[store_then_stall(1.0, seconds=30)])
    with stall.running_in_thread():
        use_verp_relay(project, stall, concurrency=2)
        proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE,
                                 "--yes"], cwd=project, env={**os.environ, **CLI_ENV},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while len(stall.received) < 2:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.005)
        finally:
            proc.kill()
            proc.wait(timeout=10)
        on_the_wire = {r.recipients[0] for r in stall.received}
    wait_send_gone(project, ISSUE)
    assert issue_journals(project / ".mirage", ISSUE)
    done = run_cli("store", "migrate", "--to", target)
    assert done.code == 0, done.err
    assert "replayed" in done.out and "journal" in done.out
    assert not issue_journals(project / ".mirage", ISSUE)
    with psycopg.connect(target) as conn:
        after: dict[str, str] = dict(conn.execute("SELECT email, status FROM recipients"))
    assert len(after) == 5
    assert {a for a, s in after.items() if s == "sending"} == on_the_wire  # reported unknown
    assert all(s == "pending" for a, s in after.items() if a not in on_the_wire)


@pytest.fixture
def queued(project: Path) -> Path:
    """A store with a few thousand rows in two tables, made directly."""
    database = project / ".mirage" / "tracking.sqlite"
    with Store(database) as store:
        store.add_recipients(ISSUE, (NewRecipient(f"r{i}@example.org", None, None, "main")
                                     for i in range(3_000)))
        store.suppress("gone@example.org", source="test")
    return database


def _no_store(url: str) -> None:
    assert pg_tables(url) == {}, "the target kept part of a failed copy"


def test_a_connection_lost_mid_copy_leaves_the_target_empty(project: Path, queued: Path,
                                                            target: str) -> None:
    settings = load_settings(project / "mirage.yaml")

    def cut(table: str, done: int, total: int) -> None:
        with psycopg.connect(target, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "application_name = 'mirage-mailer store migrate'")

    with pytest.raises(StoreUnavailable) as lost:
        migrate_store(settings, target, on_progress=cut)
    (problem,) = lost.value.problems
    assert "connection to PostgreSQL failed during the migration" in problem.message
    assert "nothing was kept there" in problem.message
    _no_store(target)


def test_a_source_written_to_mid_copy_is_not_kept(project: Path, queued: Path,
                                                  target: str) -> None:
    settings = load_settings(project / "mirage.yaml")

    def web_host_unsubscribes(table: str, done: int, total: int) -> None:
        with Store(queued) as store:
            store.suppress(f"{table}@example.org", source="web")

    with pytest.raises(StoreUnavailable) as changed:
        migrate_store(settings, target, on_progress=web_host_unsubscribes)
    assert "changed while it was copied" in changed.value.problems[0].message
    _no_store(target)


def test_a_store_opened_on_the_target_meanwhile_waits_and_finds_the_copy(
        project: Path, queued: Path, target: str) -> None:
    """A web host started on the new URL too early would create the schema itself; it waits
    for the migration's transaction instead, then opens the store the migration made."""
    settings = load_settings(project / "mirage.yaml")
    seen: list[object] = []

    def open_target() -> None:
        try:
            with Store(PostgresUrl(target), timeout=30) as store:
                seen.append(store.counts(ISSUE)["pending"])
        except Exception as exc:
            seen.append(exc)

    opener = threading.Thread(target=open_target)

    def meanwhile(table: str, done: int, total: int) -> None:
        if not opener.is_alive() and not seen:
            opener.start()
            time.sleep(0.5)  # long enough to reach the store's schema step

    migrate_store(settings, target, on_progress=meanwhile)
    opener.join(timeout=30)
    assert seen == [3_000]


def test_any_difference_in_the_counts_undoes_the_copy() -> None:
    _compare("pg", [TableCount("events", 3, 3)], {("i", "sent"): 2}, {("i", "sent"): 2})
    with pytest.raises(StoreUnavailable, match=r"events: 3 in SQLite, 2 in PostgreSQL"):
        _compare("pg", [TableCount("events", 3, 2)], {}, {})
    with pytest.raises(StoreUnavailable, match=r"i unknown: 1 in SQLite, 0 in PostgreSQL"):
        _compare("pg", [], {("i", "unknown"): 1}, {})


def _schema(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        def rows(query: str) -> list[tuple[Any, ...]]:
            return sorted(conn.execute(query).fetchall())
        return {
            "columns": rows("SELECT table_name, column_name, data_type, collation_name, "
                            "column_default, is_nullable, is_identity FROM "
                            "information_schema.columns WHERE table_schema = current_schema()"),
            "indexes": rows("SELECT indexname, indexdef FROM pg_indexes "
                            "WHERE schemaname = current_schema()"),
            "checks": rows("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                           "WHERE connamespace = current_schema()::regnamespace"),
            "migrations": rows("SELECT version, name FROM schema_migrations"),
            "functions": rows("SELECT proname FROM pg_proc "
                              "WHERE pronamespace = current_schema()::regnamespace"),
        }


def test_the_migrated_schema_is_the_one_the_store_makes_and_every_table_has_a_side(
        project: Path, queued: Path, target: str, second_url: str) -> None:
    """A table (or column) on one side only would be dropped, or left empty, by a copy."""
    settings = load_settings(project / "mirage.yaml")
    migrate_store(settings, target)
    with Store(PostgresUrl(second_url)):  # the store's own migrations, on an empty database
        pass
    assert _schema(target) == _schema(second_url)
    with SqliteSnapshot(queued) as snapshot:
        sqlite_side = {name: sorted(columns) for name, columns in snapshot.tables().items()}
    with psycopg.connect(target) as conn:
        pg_side: dict[str, list[str]] = {}
        for table, column in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name <> 'schema_migrations'"):
            pg_side.setdefault(table, []).append(column)
    assert sqlite_side == {name: sorted(columns) for name, columns in pg_side.items()}


def _peak_rss_kib(project: Path, out: Path, *args: str) -> int:
    """The peak resident memory of one ``mirage-mailer`` run, in KiB."""
    proc = subprocess.run([sys.executable, "-c", PEAK_CLI, str(out), *args], cwd=project,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return int(out.read_text())


def test_memory_stays_flat_whatever_the_stores_size(project: Path, tmp_path: Path,
                                                    target: str, second_url: str) -> None:
    """50,000 rows take no more memory than 2,000: rows stream from page to COPY."""
    sizes = {}
    for n, url in ((2_000, target), (50_000, second_url)):
        database = tmp_path / f"{n}.sqlite"
        with Store(database) as store:
            store.add_recipients(ISSUE, (NewRecipient(
                f"reader{i}@example.org", f"Reader number {i}", "en", "main",
                {"organisation": "An organisation with a fairly long name " * 3})
                for i in range(n)))
        sizes[n] = _peak_rss_kib(project, tmp_path / f"{n}.peak", "store", "migrate", "--to",
                                 url, "--from", str(database))
        assert pg_tables(url)["recipients"] == n
    assert sizes[50_000] - sizes[2_000] < 12 * 1024, sizes

