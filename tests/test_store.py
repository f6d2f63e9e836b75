"""The tracking store against a real SQLite file in tmp_path and a real PostgreSQL database
(``store_url``: both backends, one test each); the clock is the only thing faked."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import mirage_mailer
from helpers import Clock
from mirage_mailer.store import (
    MIGRATIONS,
    NewRecipient,
    Store,
    StoreError,
    StoreUnavailable,
    finished,
)
from mirage_mailer.store.pg_schema import PG_MIGRATIONS
from mirage_mailer.store.recipients import INFLIGHT_WORDS
from mirage_mailer.util.database import Database, PostgresUrl
from mirage_mailer.util.errors import ExitCode
from support.postgres import raw

COUNT_KEYS = {"sent", "failed", "pending", "suppressed", "invalid", "unknown", "withdrawn"}
REPORT_KEYS = {
    "email",
    "status",
    "attempts",
    "message_id",
    "smtp_code",
    "smtp_response",
    "last_attempt_at",
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "project" / ".mirage" / "tracking.sqlite"


@pytest.fixture
def store(store_url: Database, clock: Clock) -> Iterator[Store]:
    with Store(store_url, clock=clock) as s:
        yield s


def migrations_of(database: Database) -> tuple[tuple[str, str], ...]:
    return PG_MIGRATIONS if isinstance(database, PostgresUrl) else MIGRATIONS


def sub(
    email: str,
    name: str | None = None,
    *,
    lang: str | None = None,
    list_name: str = "main",
    status: str = "pending",
    detail: str | None = None,
) -> NewRecipient:
    return NewRecipient(email, name, lang, list_name, {}, status, detail)


def expected_counts(**nonzero: int) -> dict[str, int]:
    return {**dict.fromkeys(COUNT_KEYS, 0), **nonzero}


def by_email(store: Store, issue: str) -> dict[str, dict[str, object]]:
    return {r["email"]: r for r in store.recipients(issue)}


def pending_ids(store: Store, issue: str) -> list[int]:
    return [r.id for r in store.iter_pending(issue)]


# -- opening and migrations --------------------------------------------------------------------


def test_open_creates_parent_dirs_uses_wal_and_applies_all_migrations(db_path: Path) -> None:
    assert not db_path.parent.exists()
    with Store(db_path) as s:
        assert s.schema_version == len(MIGRATIONS) == 12
    assert db_path.is_file()
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    versions = raw.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
    assert versions == [(1, "initial"), (2, "lookup-indexes"), (3, "subscribers-subjects"),
                        (4, "no-status-index"), (5, "events-engagement-index"),
                        (6, "withdrawn-status"), (7, "bounces"), (8, "relays"),
                        (9, "leases"), (10, "sending-index"), (11, "issue-plans"),
                        (12, "issues-as-sent")]
    raw.close()


def test_engagement_counts_use_an_index_that_sends_never_write(db_path: Path) -> None:
    """The web report's opens/clicks stay index lookups; a recorded send updates no index
    of the events table (only the partial one, which holds opens and clicks alone)."""
    from mirage_mailer.store.engagement import _ENGAGEMENT

    with Store(db_path):
        pass
    raw = sqlite3.connect(db_path)
    for kind in ("opened", "clicked"):
        plan = raw.execute("EXPLAIN QUERY PLAN SELECT count(*) FROM events"
                           f" WHERE issue = ? AND {_ENGAGEMENT} AND kind = ?",
                           ("i", kind)).fetchall()
        assert "USING COVERING INDEX events_engagement" in str(plan), plan
    indexes = raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                          " AND tbl_name = 'events' AND sql IS NOT NULL").fetchall()
    # every index of events is partial on kinds a send never writes (opens and clicks;
    # bounces and complaints, from process-bounces)
    assert sorted(name for name, _ in indexes) == ["events_bounces", "events_engagement",
                                                   "events_soft_bounces"]
    where = {name: sql.partition("WHERE")[2].split() for name, sql in indexes}
    assert where["events_engagement"] == ["kind", "IN", "('opened',", "'clicked')"]
    assert where["events_bounces"] == ["kind", "IN", "('bounced',", "'soft-bounced',",
                                       "'complained')"]
    assert where["events_soft_bounces"] == ["kind", "=", "'soft-bounced'"]
    raw.close()


def test_recovering_inflight_rows_reads_only_the_rows_on_the_wire(db_path: Path) -> None:
    """Every send starts and ends with ``recover_inflight``: its statements find the issue's
    'sending' rows through the partial index, not by reading every row of the issue (0.7 s
    a statement at a million rows)."""
    with Store(db_path) as s:
        s.add_recipients("i", [sub(f"r{n}@example.org") for n in range(50)])
        first, second, *_ = pending_ids(s, "i")
        assert s.mark_sending(first, "<a@x>") and s.mark_sending(second, "<b@x>")
        statements: list[str] = []
        s._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        assert s.recover_inflight("i") == 2
        s._conn.set_trace_callback(None)  # type: ignore[attr-defined]
    touching = [sql for sql in statements if "status = 'sending'" in sql]
    assert len(touching) == 2, statements
    raw = sqlite3.connect(db_path)
    for sql in touching:
        plan = str(raw.execute("EXPLAIN QUERY PLAN " + sql).fetchall())
        assert "recipients_sending" in plan, (sql, plan)
    where = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'recipients_sending'"
                        ).fetchone()[0].partition("WHERE")[2].split()
    assert where == ["status", "=", "'sending'"]
    raw.close()


def test_reopening_does_not_rerun_migrations(store_url: Database, clock: Clock) -> None:
    with Store(store_url, clock=clock) as s:
        s.add_recipients("2024-05", [sub("a@example.org")])
    first = raw(store_url, "SELECT * FROM schema_migrations ORDER BY version")
    clock.tick(3600)
    with Store(store_url, clock=clock) as s:
        assert s.schema_version == len(MIGRATIONS)
        assert [r["email"] for r in s.recipients("2024-05")] == ["a@example.org"]
    again = raw(store_url, "SELECT * FROM schema_migrations ORDER BY version")
    assert again == first  # same rows, same applied_at: nothing re-ran
    assert {row[2] for row in again} == {"2024-05-01T10:00:00.000+00:00"}


def test_v1_database_is_upgraded_in_place(store_url: Database) -> None:
    if isinstance(store_url, Path):
        store_url.parent.mkdir(parents=True)
    raw(store_url, (
        "CREATE TABLE schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);"
        + migrations_of(store_url)[0][1]
        + ";INSERT INTO schema_migrations VALUES (1, 'initial', '2023-01-01T00:00:00+00:00');"
        "INSERT INTO recipients (id, issue, email, email_key, list_name, status, created_at)"
        " VALUES (1, 'old', 'Old@Example.org', 'old@example.org', 'main', 'pending', 'x');"
        "INSERT INTO recipients (id, issue, email, email_key, list_name, status, attempts,"
        " smtp_code, created_at) VALUES (2, 'old', 'done@example.org', 'done@example.org',"
        " 'main', 'sent', 1, 250, 'x');"), script=True)

    with Store(store_url) as s:
        assert s.schema_version == len(MIGRATIONS)
        assert s.counts("old") == expected_counts(pending=1, sent=1)
        assert [r.email for r in s.iter_pending("old")] == ["Old@Example.org"]
        assert s.suppress("OLD@example.org", source="cli") is True
        assert s.counts("old")["suppressed"] == 1

    indexes = {r[0] for r in raw(store_url, INDEXES_SQL[type(store_url).__name__])}
    assert {"recipients_issue", "recipients_email_key", "events_engagement"} <= indexes
    assert "events_issue" not in indexes
    assert raw(store_url, "SELECT applied_at FROM schema_migrations WHERE version = 1") == [
        ("2023-01-01T00:00:00+00:00",)]


INDEXES_SQL = {"PosixPath": "SELECT name FROM sqlite_master WHERE type = 'index'",
               "PostgresUrl": "SELECT indexname FROM pg_indexes"
                              " WHERE schemaname = current_schema()"}


def test_newer_schema_is_refused_with_a_hint(store_url: Database) -> None:
    Store(store_url).close()
    raw(store_url, "INSERT INTO schema_migrations VALUES (99, 'future', 'x')")
    with pytest.raises(StoreError) as info:
        Store(store_url)
    assert info.value.exit_code == ExitCode.INVALID_INPUT
    assert "schema version 99" in str(info.value)
    assert "upgrade mirage-mailer" in str(info.value)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "tracking.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="tracking database"):
        Store(path)


# -- queueing ----------------------------------------------------------------------------------


def test_duplicates_first_wins_case_insensitively(store: Store) -> None:
    rows = [
        sub("Anna@Example.org", "First", lang="fr"),
        sub("bob@example.org", "Bob"),
        sub("anna@EXAMPLE.ORG", "Second", lang="de"),
    ]
    assert store.add_recipients("2024-05", rows) == 2
    pending = list(store.iter_pending("2024-05"))
    assert [(r.email, r.name, r.lang) for r in pending] == [
        ("Anna@Example.org", "First", "fr"),
        ("bob@example.org", "Bob", None),
    ]
    # Across batches too, and the same address may be queued for another issue.
    assert store.add_recipients("2024-05", [sub("ANNA@example.org", "Third")], batch=1) == 0
    assert store.add_recipients("2024-06", [sub("ANNA@example.org", "Third")]) == 1
    assert len(store.events("2024-05")) == 2


def test_fields_and_list_name_round_trip(store: Store) -> None:
    row = NewRecipient("a@example.org", "Ä", "pt-BR", "partners", {"org": "Ñandú e.V.", "n": "1"})
    store.add_recipients("i", [row])
    (r,) = store.iter_pending("i")
    assert (r.issue, r.list_name, r.fields, r.status, r.attempts, r.message_id) == (
        "i",
        "partners",
        {"org": "Ñandú e.V.", "n": "1"},
        "pending",
        0,
        None,
    )
    assert r.name == "Ä" and r.lang == "pt-BR"


def test_rerun_never_resets_statuses(store: Store) -> None:
    rows = [sub("a@example.org"), sub("b@example.org"), sub("c@example.org")]
    store.add_recipients("i", rows)
    a, b, _c = pending_ids(store, "i")
    store.mark_sending(a, "<1@x>")
    store.mark_sent(a, 250, "2.0.0 OK")
    store.mark_sending(b, "<2@x>")
    store.mark_failed(b, 550, "5.1.1 no such user")
    before = by_email(store, "i")

    assert store.add_recipients("i", [*rows, sub("D@example.org")]) == 1
    after = by_email(store, "i")
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        assert after[email] == before[email]
    assert after["a@example.org"]["status"] == "sent"
    assert after["b@example.org"]["status"] == "failed"
    assert after["D@example.org"]["status"] == "pending"


def test_add_streams_rows_and_commits_per_batch(store: Store, store_url: Database) -> None:
    seen_by_other_connection: list[object] = []

    def rows() -> Iterator[NewRecipient]:
        for i in range(25):
            if i == 23:  # another process looks while the generator is still being consumed
                seen_by_other_connection.append(
                    raw(store_url, "SELECT count(*) FROM recipients")[0][0])
            yield sub(f"u{i}@example.org")

    assert store.add_recipients("i", rows(), batch=10) == 25
    assert seen_by_other_connection == [20]  # two batches committed, third not yet read
    assert store.counts("i")["pending"] == 25


def test_invalid_and_suppressed_rows_are_recorded_with_their_reason(store: Store) -> None:
    store.suppress("gone@example.org", source="cli")
    rows = [
        sub("not-an-address", status="invalid", detail="lists/main.csv:4: not a valid address"),
        sub("Gone@Example.org"),  # already suppressed: stored as suppressed, never pending
        sub("ok@example.org"),
    ]
    assert store.add_recipients("i", rows) == 3
    report = by_email(store, "i")
    assert report["not-an-address"]["status"] == "invalid"
    assert report["not-an-address"]["smtp_response"] == "lists/main.csv:4: not a valid address"
    assert report["Gone@Example.org"]["status"] == "suppressed"
    assert [r.email for r in store.iter_pending("i")] == ["ok@example.org"]
    with pytest.raises(ValueError, match="sent"):
        store.add_recipients("i", [sub("x@example.org", status="sent")])


# -- crash recovery ----------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_keeps_sent_and_leaves_inflight_unknown(store_url: Database) -> None:
    where = (f"PostgresUrl({str(store_url)!r})" if isinstance(store_url, PostgresUrl)
             else f"Path({str(store_url)!r})")
    child = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from mirage_mailer.store import NewRecipient, Store
        from mirage_mailer.util.database import PostgresUrl
        s = Store({where})
        s.add_recipients("i", [NewRecipient(e, None, None, "main", {{}})
                               for e in ("a@example.org", "b@example.org", "c@example.org")])
        a, b, c = [r.id for r in s.iter_pending("i")]
        s.mark_sending(a, "<a@x>")
        s.mark_sent(a, 250, "OK")
        s.mark_sending(b, "<b@x>")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    src = str(Path(mirage_mailer.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src}
    proc = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()

    with Store(store_url) as s:
        report = by_email(s, "i")
        assert report["a@example.org"]["status"] == "sent"
        assert report["a@example.org"]["attempts"] == 1
        assert report["b@example.org"]["status"] == "unknown"  # "sending" is never shown
        assert report["b@example.org"]["message_id"] == "<b@x>"
        assert s.counts("i") == expected_counts(sent=1, pending=1, unknown=1)
        assert [r.email for r in s.iter_pending("i")] == ["c@example.org"]  # not re-sent
        assert not finished(s.counts("i"))

        assert s.recover_inflight("i") == 1
        assert s.recover_inflight("i") == 0
        assert s.events("i")[-1]["kind"] == "unknown"
        assert s.counts("i")["unknown"] == 1
        (c,) = pending_ids(s, "i")
        assert s.mark_sending(c, "<c@x>") is True
        s.mark_sent(c, 250, "OK")
        assert finished(s.counts("i"))  # unknown rows wait for --resend-unknown, not for run-due

        assert s.requeue_unknown("i") == 1
        assert s.requeue_unknown("i") == 0
        (again,) = s.iter_pending("i")
        assert (again.email, again.message_id) == ("b@example.org", "<b@x>")
        assert s.events("i")[-1]["kind"] == "requeued"


def test_rows_left_on_the_wire_count_their_attempt_and_say_why(store: Store) -> None:
    """A row a stopped run left ``sending`` had its message handed to the server: the report
    shows that attempt and why the row is unknown (it showed 0 attempts and no response),
    and a resend is the second attempt."""
    store.add_recipients("i", [sub("a@example.org"), sub("b@example.org")])
    a, _b = pending_ids(store, "i")
    assert store.mark_sending(a, "<a1@x>")
    assert store.recover_inflight("i") == 1
    row = by_email(store, "i")["a@example.org"]
    assert (row["status"], row["attempts"], row["smtp_code"], row["smtp_response"]) == (
        "unknown", 1, None, INFLIGHT_WORDS)
    assert by_email(store, "i")["b@example.org"]["attempts"] == 0
    assert store.recover_inflight("i") == 0  # nothing counted twice
    assert store.requeue_unknown("i") == 1
    assert store.mark_sending(a, "<a2@x>")
    store.mark_sent(a, 250, "OK")
    row = by_email(store, "i")["a@example.org"]
    assert (row["status"], row["attempts"], row["smtp_response"]) == ("sent", 2, "OK")


def test_requeue_unknown_touches_only_unknown_rows_of_that_issue(store: Store) -> None:
    for issue in ("i", "j"):
        store.add_recipients(issue, [sub("a@example.org"), sub("b@example.org")])
    for issue in ("i", "j"):
        a, b = pending_ids(store, issue)
        store.mark_sending(a, f"<{issue}a@x>")
        store.mark_sending(b, f"<{issue}b@x>")
        store.mark_sent(b, 250, "OK")
        assert store.recover_inflight(issue) == 1
    assert store.requeue_unknown("i") == 1
    assert store.counts("i") == expected_counts(sent=1, pending=1)
    assert store.counts("j") == expected_counts(sent=1, unknown=1)


# -- suppressions ------------------------------------------------------------------------------


def test_suppress_flips_pending_and_unknown_rows_across_issues(store: Store, clock: Clock) -> None:
    store.add_recipients("2024-05", [sub("Anna@Example.org"), sub("bob@example.org")])
    store.add_recipients("2024-06", [sub("ANNA@example.org"), sub("bob@example.org")])
    store.add_recipients("2024-07", [sub("anna@example.org")])
    (may_anna, _) = pending_ids(store, "2024-05")
    (june_anna, _) = pending_ids(store, "2024-06")
    store.mark_sending(may_anna, "<m@x>")
    store.mark_sent(may_anna, 250, "OK")
    store.mark_sending(june_anna, "<j@x>")
    store.recover_inflight("2024-06")

    clock.tick()
    assert store.suppress("aNNa@example.ORG", source="link", reason="one-click") is True
    assert store.suppress("anna@example.org", source="cli") is False

    assert by_email(store, "2024-05")["Anna@Example.org"]["status"] == "sent"  # history kept
    assert by_email(store, "2024-06")["ANNA@example.org"]["status"] == "suppressed"  # was unknown
    assert by_email(store, "2024-07")["anna@example.org"]["status"] == "suppressed"
    assert {r.email for r in store.iter_pending("2024-06")} == {"bob@example.org"}
    assert finished(store.counts("2024-07"))
    assert store.is_suppressed("Anna@EXAMPLE.org") and not store.is_suppressed("bob@example.org")
    assert store.suppressions() == [
        {
            "email": "anna@example.org",
            "source": "link",
            "reason": "one-click",
            "created_at": "2024-05-01T10:00:01.000+00:00",
        }
    ]
    unsubscribed = [e for e in store.events() if e["kind"] == "unsubscribed"]
    assert unsubscribed == [
        {
            "issue": None,
            "email": "anna@example.org",
            "kind": "unsubscribed",
            "detail": "link: one-click",
            "at": "2024-05-01T10:00:01.000+00:00",
        }
    ]
    # Later lists never bring the address back.
    store.add_recipients("2024-08", [sub("Anna@example.org")])
    assert store.counts("2024-08")["suppressed"] == 1


def test_apply_suppressions_catches_rows_queued_before_another_writer_suppressed(
    store: Store, store_url: Database
) -> None:
    store.add_recipients("i", [sub("a@example.org"), sub("b@example.org"), sub("c@example.org")])
    a, b, _c = pending_ids(store, "i")
    store.mark_sending(a, "<a@x>")
    store.mark_sent(a, 250, "OK")
    store.mark_sending(b, "<b@x>")
    store.recover_inflight("i")
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        # e.g. the web app, writing the table directly
        raw(store_url, "INSERT INTO suppressions VALUES (?, 'web', NULL, 'x')", (email,))
    assert store.apply_suppressions("i") == 2  # b (unknown) and c (pending); a stays sent
    assert store.counts("i") == expected_counts(sent=1, suppressed=2)
    assert store.apply_suppressions("i") == 0


def test_deferred_row_unsubscribed_in_flight_becomes_suppressed(store: Store) -> None:
    store.add_recipients("i", [sub("a@example.org")])
    (a,) = pending_ids(store, "i")
    assert store.mark_sending(a, "<a@x>")
    store.suppress("a@example.org", source="web")  # in flight: not flipped yet
    assert by_email(store, "i")["a@example.org"]["status"] == "unknown"
    store.mark_deferred(a, 451, "4.7.1 try later")
    assert by_email(store, "i")["a@example.org"]["status"] == "suppressed"
    assert pending_ids(store, "i") == []


def test_a_write_blocked_too_long_stops_with_exit_3_and_changes_nothing(db_path: Path) -> None:
    with Store(db_path) as s:
        s.add_recipients("i", [sub("a@example.org")])
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
    try:
        with Store(db_path, timeout=0.1) as s:
            (a,) = pending_ids(s, "i")
            with pytest.raises(StoreUnavailable) as caught:
                s.record([], [(a, "<a@x>")])
            assert caught.value.exit_code == ExitCode.CANNOT_DELIVER
            [problem] = caught.value.problems
            assert problem.path.endswith("tracking.sqlite")
            assert "database is locked" in problem.message and "rerun" in problem.hint
    finally:
        holder.rollback()
        holder.close()
    with Store(db_path) as s:
        assert s.counts("i") == expected_counts(pending=1)  # nothing half-recorded
        s.record([], [(a, "<a@x>")])  # and the store works again once the lock is gone


def test_a_bug_in_sql_is_not_mistaken_for_a_busy_database(store: Store) -> None:
    if store.is_postgres:
        from psycopg.errors import UndefinedTable

        with pytest.raises(UndefinedTable), store._write() as conn:
            conn.execute("UPDATE no_such_table SET x = 1")
        assert store.counts("i")["pending"] == 0  # the connection is usable again
        return
    with pytest.raises(sqlite3.OperationalError), store._write() as conn:
        conn.execute("UPDATE no_such_table SET x = 1")


# -- sending -----------------------------------------------------------------------------------


def test_record_commits_outcomes_then_claims_and_returns_the_claimed(store: Store) -> None:
    store.add_recipients("i", [sub(f"{c}@example.org") for c in "abcd"])
    a, b, c, d = pending_ids(store, "i")
    assert store.record([], [(a, "<a@x>"), (b, "<b@x>")]) == {a, b}
    store.suppress("d@example.org", source="web")  # unsubscribed while queued for this run
    claimed = store.record([(a, "sent", 250, "ok"), (b, "deferred", 451, "later")],
                           [(b, "<b2@x>"), (c, "<c@x>"), (d, "<d@x>")])
    assert claimed == {b, c}  # d is suppressed now: the sender must not transmit it
    rows = by_email(store, "i")
    assert {e: r["status"] for e, r in rows.items()} == {
        "a@example.org": "sent", "b@example.org": "unknown", "c@example.org": "unknown",
        "d@example.org": "suppressed"}  # unknown: "sending" as the report shows it
    assert rows["b@example.org"]["message_id"] == "<b2@x>"
    assert rows["d@example.org"]["message_id"] is None


def test_iter_pending_streams_by_id_while_rows_change(store: Store) -> None:
    store.add_recipients("i", [sub(f"u{i:02}@example.org") for i in range(25)])
    deferred: list[int] = []
    yielded: list[str] = []
    for n, r in enumerate(store.iter_pending("i", batch=4)):
        yielded.append(r.email)
        assert store.mark_sending(r.id, f"<{r.id}@x>")
        if n == 2:  # rows ahead of the cursor change under the iterator
            store.suppress("u20@example.org", source="cli")
            store.add_recipients("i", [sub("late@example.org"), sub("U05@example.org")])
        if n % 3 == 0:
            store.mark_deferred(r.id, 421, "4.7.0 slow down")
            deferred.append(r.id)
        elif n % 5 == 0:
            store.mark_failed(r.id, 550, "5.1.1 unknown user")
        else:
            store.mark_sent(r.id, 250, "2.0.0 OK")

    expected = [f"u{i:02}@example.org" for i in range(25) if i != 20] + ["late@example.org"]
    assert yielded == expected  # each once, in id order; deferred rows wait for the next pass
    assert pending_ids(store, "i") == deferred
    assert len(yielded) == 25 and len(deferred) == 9  # n = 0, 3, ..., 24
    assert store.counts("i") == {
        "sent": 13,
        "failed": 3,  # n = 5, 10, 20
        "pending": 9,
        "suppressed": 1,
        "invalid": 0,
        "unknown": 0,
        "withdrawn": 0,
    }
    attempts = {r.id: r.attempts for r in store.iter_pending("i")}
    assert set(attempts.values()) == {1}


def test_mark_sending_claims_only_pending_rows(store: Store) -> None:
    store.add_recipients("i", [sub("a@example.org"), sub("b@example.org")])
    a, b = pending_ids(store, "i")
    assert store.mark_sending(a, "<a1@x>") is True
    assert store.mark_sending(a, "<a2@x>") is True  # retry on a fresh connection
    store.mark_sent(a, 250, "OK")
    assert store.mark_sending(a, "<a3@x>") is False  # never twice
    store.suppress("b@example.org", source="cli")
    assert store.mark_sending(b, "<b@x>") is False
    assert by_email(store, "i")["a@example.org"]["message_id"] == "<a2@x>"
    assert store.mark_sending(999, "<z@x>") is False


def test_marking_an_unknown_id_raises_and_records_nothing(store: Store) -> None:
    store.add_recipients("i", [sub("a@example.org")])
    before = store.events()
    for mark in (store.mark_sent, store.mark_deferred, store.mark_failed):
        with pytest.raises(LookupError):
            mark(12345, 250, "OK")
    assert store.events() == before


def test_each_mark_is_one_transaction_of_two_statements(db_path: Path) -> None:
    store = Store(db_path)  # SQLite's trace callback; PostgreSQL adds its advisory lock
    store.add_recipients("i", [sub("a@example.org")])
    (a,) = pending_ids(store, "i")
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    store.mark_sending(a, "<a@x>")
    store.mark_sent(a, 250, "OK")
    store._conn.set_trace_callback(None)
    verbs = [s.split()[0].upper() for s in statements]
    assert verbs == ["BEGIN", "UPDATE", "COMMIT", "BEGIN", "UPDATE", "INSERT", "COMMIT"]
    assert not store._conn.in_transaction


# -- reporting ---------------------------------------------------------------------------------


def test_counts_has_exactly_the_report_keys(store: Store) -> None:
    assert store.counts("nothing-yet") == dict.fromkeys(COUNT_KEYS, 0)
    assert list(store.counts("nothing-yet")) == [
        "sent",
        "failed",
        "pending",
        "suppressed",
        "invalid",
        "unknown",
        "withdrawn",  # an extra key after the contract's six
    ]
    store.add_recipients("i", [sub(f"u{i}@example.org") for i in range(5)])
    store.add_recipients("i", [sub("bad", status="invalid", detail="not an address")])
    a, b, c, _d, _e = pending_ids(store, "i")
    store.mark_sending(a, "<a@x>")
    store.mark_sent(a, 250, "OK")
    store.mark_sending(b, "<b@x>")
    store.mark_failed(b, 554, "rejected")
    store.mark_sending(c, "<c@x>")  # in flight: reported as unknown
    store.suppress("u3@example.org", source="cli")
    assert store.counts("i") == {
        "sent": 1,
        "failed": 1,
        "pending": 1,
        "suppressed": 1,
        "invalid": 1,
        "unknown": 1,
        "withdrawn": 0,
    }


def test_report_rows_have_exactly_the_design_keys(store: Store, clock: Clock) -> None:
    store.add_recipients("i", [sub("Sent@Example.org"), sub("wait@example.org")])
    a, _b = pending_ids(store, "i")
    clock.tick(5)
    store.mark_sending(a, "<abc@example.org>")
    store.mark_deferred(a, 451, "4.3.0 try again")
    clock.tick(60)
    store.mark_sending(a, "<def@example.org>")
    store.mark_sent(a, 250, "2.0.0 Ok: queued as 12345")
    rows = list(store.recipients("i"))
    assert all(set(r) == REPORT_KEYS for r in rows)
    assert rows == [
        {
            "email": "Sent@Example.org",
            "status": "sent",
            "attempts": 2,
            "message_id": "<def@example.org>",
            "smtp_code": 250,
            "smtp_response": "2.0.0 Ok: queued as 12345",
            "last_attempt_at": "2024-05-01T10:01:05.000+00:00",
        },
        {
            "email": "wait@example.org",
            "status": "pending",
            "attempts": 0,
            "message_id": None,
            "smtp_code": None,
            "smtp_response": None,
            "last_attempt_at": None,
        },
    ]
    stamp = datetime.fromisoformat(str(rows[0]["last_attempt_at"]))
    assert stamp.utcoffset() == timedelta(0)
    assert list(store.recipients("no-such-issue")) == []


def test_recipients_pages_through_large_issues(store: Store) -> None:
    store.add_recipients("big", (sub(f"u{i}@example.org") for i in range(1234)), batch=100)
    emails = [r["email"] for r in store.recipients("big")]
    assert len(emails) == 1234 and len(set(emails)) == 1234
    assert emails[:2] == ["u0@example.org", "u1@example.org"]


def test_issues_and_completion(store: Store) -> None:
    assert store.issues() == []
    assert not finished(store.counts("2024-06"))  # nothing recorded is not complete
    store.add_recipients("2024-06", [sub("a@example.org"), sub("b@example.org")])
    store.add_recipients("2024-05", [sub("a@example.org")])
    assert store.issues() == ["2024-05", "2024-06"]
    a, b = pending_ids(store, "2024-06")
    store.mark_sending(a, "<a@x>")
    store.mark_failed(a, 550, "no")
    assert not finished(store.counts("2024-06"))
    store.mark_sending(b, "<b@x>")
    assert finished(store.counts("2024-06"))  # in flight: nothing left for another run to take
    store.mark_sent(b, 250, "OK")
    assert finished(store.counts("2024-06"))  # failures are final, so the issue is done


def test_text_sorts_by_code_point_on_both_backends(store: Store, clock: Clock) -> None:
    """SQLite compares text byte by byte; a PostgreSQL database's own collation (ICU's en-US
    in the tests) would not: the store's columns are "C", so both answer alike."""
    issues = ["a_c", "B", "ab", "a-b", "a"]
    for issue in issues:
        store.add_recipients(issue, [sub("x@example.org")])
    for email in ("b-c@example.org", "B@example.org", "bc@example.org", "b_d@example.org"):
        store.suppress(email, source="cli")
    assert store.issues() == sorted(issues) == ["B", "a", "a-b", "a_c", "ab"]
    assert [s["email"] for s in store.suppressions()] == sorted(
        ["b-c@example.org", "b@example.org", "bc@example.org", "b_d@example.org"])


def test_events_are_appended_in_order(store: Store, clock: Clock) -> None:
    store.add_recipients("i", [sub("a@example.org", list_name="partners")])
    (a,) = pending_ids(store, "i")
    log_after_queue = store.events("i")
    clock.tick()
    store.mark_sending(a, "<1@x>")
    store.mark_deferred(a, 421, "4.7.0 too fast")
    clock.tick()
    store.mark_sending(a, "<2@x>")
    store.mark_sent(a, None, "accepted (maildir)")
    store.suppress("other@example.org", source="cli")

    log = store.events("i")
    assert log[: len(log_after_queue)] == log_after_queue  # append-only
    assert log == [
        {
            "issue": "i",
            "email": "a@example.org",
            "kind": "queued",
            "detail": "partners",
            "at": "2024-05-01T10:00:00.000+00:00",
        },
        {
            "issue": "i",
            "email": "a@example.org",
            "kind": "deferred",
            "detail": "421 4.7.0 too fast",
            "at": "2024-05-01T10:00:01.000+00:00",
        },
        {
            "issue": "i",
            "email": "a@example.org",
            "kind": "sent",
            "detail": "accepted (maildir)",
            "at": "2024-05-01T10:00:02.000+00:00",
        },
    ]
    everything = store.events()
    assert everything[:3] == log
    assert [e["kind"] for e in everything[3:]] == ["unsubscribed"]


# -- lists that change between runs (issue 9) ----------------------------------------------------


def test_v5_database_gains_withdrawn_keeping_ids_and_every_column(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    for number, (name, script) in enumerate(MIGRATIONS[:5], start=1):
        raw.executescript(script)
        raw.execute("INSERT INTO schema_migrations VALUES (?, ?, 'x')", (number, name))
    raw.execute("INSERT INTO recipients (id, issue, email, email_key, list_name, status,"
                " attempts, smtp_code, smtp_response, created_at, subject) VALUES"
                " (7, 'old', 'A@example.org', 'a@example.org', 'main', 'sent', 1, 250, 'ok',"
                " 't', 'sa'), (42, 'old', 'b@example.org', 'b@example.org', 'main', 'pending',"
                " 0, NULL, NULL, 't', 'sb')")
    raw.commit()
    with pytest.raises(sqlite3.IntegrityError):  # the old CHECK refuses the new status
        raw.execute("UPDATE recipients SET status = 'withdrawn' WHERE id = 42")
    before = raw.execute("SELECT * FROM recipients ORDER BY id").fetchall()
    raw.close()

    with Store(db_path) as s:
        assert s.schema_version == len(MIGRATIONS) == 12
        s.reconcile("old", ["b@example.org"])  # b left the list before their turn
        assert s.counts("old") == expected_counts(sent=1, withdrawn=1)
    raw = sqlite3.connect(db_path)
    after = raw.execute("SELECT * FROM recipients ORDER BY id").fetchall()
    width = len(before[0])  # later migrations add columns at the end (8: relay, 9: lease)
    assert [r[:8] + r[9:width] for r in after] == [r[:8] + r[9:] for r in before]  # ids kept
    assert [r[width:] for r in after] == [(None, None), (None, None)]
    assert [r[8] for r in after] == ["sent", "withdrawn"]
    indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='index'"
                                         " AND tbl_name = 'recipients'")}
    assert indexes >= {"recipients_issue_email", "recipients_email_key", "recipients_subject",
                       "recipients_issue"}
    assert "recipients_new" not in {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
    with pytest.raises(sqlite3.IntegrityError):  # one row per issue and address, still
        raw.execute("INSERT INTO recipients (issue, email, email_key, list_name, created_at)"
                    " VALUES ('old', 'x', 'a@example.org', 'main', 't')")
    raw.close()


def test_reconcile_reopens_corrected_rows_withdraws_gone_ones_and_keeps_final_ones(
        store: Store) -> None:
    store.add_recipients("i", [
        sub("kostas@example.org", status="invalid", detail="lang 'gr' is not known"),
        sub("gone@example.org"),
        sub("sent@example.org"),
        sub("failed@example.org"),
        sub("unknown@example.org"),
        sub("bad-address", status="invalid", detail="not an address"),
    ])
    ids = {r["email"]: n for n, r in enumerate(store.recipients("i"))}
    assert len(ids) == 6
    rows = {r.email: r.id for r in store.iter_pending("i")}
    store.mark_sent(rows["sent@example.org"], 250, "ok")
    store.mark_failed(rows["failed@example.org"], 550, "no")
    store.mark_sending(rows["unknown@example.org"], "<u@x>")
    store.recover_inflight("i")

    store.reconcile("i", [
        NewRecipient("Kostas@example.org", "Kostas", "el", "main", {"org": "X"}),
        NewRecipient("sent@example.org", "S", "fr", "other"),
        NewRecipient("failed@example.org", "F", "fr", "other"),
        NewRecipient("new@example.org", "New", "en", "main"),
        "gone@example.org", "bad-address", "unknown@example.org", "sent@example.org",
    ])
    rows_now = by_email(store, "i")
    assert {e: r["status"] for e, r in rows_now.items()} == {
        "Kostas@example.org": "pending", "gone@example.org": "withdrawn",
        "sent@example.org": "sent", "failed@example.org": "failed",
        "unknown@example.org": "unknown", "bad-address": "withdrawn",
        "new@example.org": "pending"}
    assert rows_now["Kostas@example.org"]["smtp_response"] is None  # the old problem is gone
    kostas = next(r for r in store.iter_pending("i") if r.email == "Kostas@example.org")
    assert (kostas.lang, kostas.name, kostas.fields) == ("el", "Kostas", {"org": "X"})
    # a person who comes back is pending again; a row that turns bad is invalid again
    store.reconcile("i", [NewRecipient("gone@example.org", None, None, "main"),
                          NewRecipient("Kostas@example.org", None, None, "main",
                                       status="invalid", detail="lang 'xx' is not known")])
    rows_now = by_email(store, "i")
    assert rows_now["gone@example.org"]["status"] == "pending"
    assert (rows_now["Kostas@example.org"]["status"],
            rows_now["Kostas@example.org"]["smtp_response"]) == (
        "invalid", "lang 'xx' is not known")
    kinds = [(e["email"], e["kind"]) for e in store.events("i")
             if e["kind"] in ("requeued", "withdrawn", "invalid")]
    assert kinds == [("Kostas@example.org", "requeued"), ("gone@example.org", "withdrawn"),
                     ("bad-address", "withdrawn"), ("gone@example.org", "requeued"),
                     ("Kostas@example.org", "invalid")]
    store.reconcile("i", ["gone@example.org"] * 2)  # idempotent: one more event, not two
    assert sum(e["kind"] == "withdrawn" for e in store.events("i")) == 3


def test_reconcile_of_a_suppressed_address_keeps_it_suppressed(store: Store) -> None:
    store.add_recipients("i", [sub("x@example.org", status="invalid", detail="bad lang")])
    store.suppress("X@example.org", source="cli")
    store.reconcile("i", [NewRecipient("x@example.org", None, "en", "main")])
    assert by_email(store, "i")["x@example.org"]["status"] == "suppressed"


def test_numbered_parameters_mean_the_same_on_both_backends(store: Store) -> None:
    """SQLite's ?N (used twice, out of order, one left out) as PostgreSQL gets it rewritten."""
    row = store._conn.execute("SELECT ?3, ?1, ?3, '?2' || ?1", ("a", "unused", "c")).fetchone()
    assert tuple(row) == ("c", "a", "c", "?2a")
    rows = store._conn.executemany(
        "INSERT INTO suppressions (created_at, email, source) VALUES (?3, ?1, ?1)",
        [("x@example.org", "skip", "t1"), ("y@example.org", "skip", "t2")])
    assert rows.rowcount == 2
    assert [(s["email"], s["source"], s["created_at"]) for s in store.suppressions()] == [
        ("x@example.org", "x@example.org", "t1"), ("y@example.org", "y@example.org", "t2")]


def test_a_batch_applies_its_outcomes_in_order(store: Store, clock: Clock) -> None:
    """The claim journal's batch: a row deferred, retried and sent within one batch ends
    sent after two attempts, its events in that order; a stale record changes nothing."""
    from mirage_mailer.store import hashed_key

    store.add_recipients("i", [sub("a@example.org"), sub("b@example.org")])
    a, b = pending_ids(store, "i")
    at = store.stamp()
    who_a, who_b = hashed_key("a@example.org"), hashed_key("b@example.org")
    batch = [(b, who_b, 0, "sent", 250, "ok", "<b1@x>", at),
             (a, who_a, 0, "deferred", 451, "later", "<a1@x>", at),
             (a, who_a, 1, "sent", 250, "ok", "<a2@x>", at),
             (b, who_a, 1, "failed", 550, "not b's", "<b2@x>", at)]  # another person's
    store.record_batch(batch)
    store.record_batch(batch)  # replayed after a crash: nothing counts twice
    rows = by_email(store, "i")
    assert (rows["a@example.org"]["status"], rows["a@example.org"]["attempts"]) == ("sent", 2)
    assert (rows["b@example.org"]["status"], rows["b@example.org"]["attempts"]) == ("sent", 1)
    assert [(e["email"], e["kind"]) for e in store.events("i")][2:] == [
        ("b@example.org", "sent"), ("a@example.org", "deferred"), ("a@example.org", "sent")]
