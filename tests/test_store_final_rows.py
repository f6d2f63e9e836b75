"""A long first plan staged in the stored form (``store/final_rows.py``): the copy is SQLite's
transfer of whole records, and what moved in the store while the list was read (the
suppressions, the highest id) leaves exactly the rows of a plan that met the store as it is
at the commit."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mirage_mailer.store import NewRecipient, Store, final_rows, staging
from mirage_mailer.store import recipients as store_recipients
from mirage_mailer.store.schema import ADDRESS_INDEXES

_COLUMNS = ("SELECT id, issue, email, email_key, name, lang, list_name, fields, status,"
            " attempts, smtp_response, subject FROM recipients WHERE issue = 'i' ORDER BY id")


def _rows(n: int) -> list[NewRecipient]:
    return [NewRecipient(f"{'zyxwvutsrq'[i % 10]}{i}@Example.org", f"Name {i}", "en", "main",
                         fields={"org": f"Org {i}"}, subject=f"s{i}") for i in range(n)]


def _stored(store: Store) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    conn = store._conn
    rows = conn.execute(_COLUMNS).fetchall()
    events = conn.execute("SELECT recipient_id, email, kind, detail FROM events"
                          " WHERE kind = 'queued' AND issue = 'i' ORDER BY id").fetchall()
    return rows, events


def _during(rows: list[NewRecipient], at: int,
            step: Callable[[], None]) -> Iterator[NewRecipient]:
    """The rows, with ``step`` run (another process's write) once ``at`` were read."""
    for n, row in enumerate(rows):
        if n == at:
            step()
        yield row


def test_the_staged_rows_are_copied_as_whole_records(tmp_path: Path) -> None:
    """SQLite's transfer needs the copy declared as ``recipients`` is, with its indexes: a
    new migration that breaks that must fail here, not slow the plan down unseen."""
    with Store(tmp_path / "t.sqlite") as store:
        conn = store._conn
        final_rows.create(conn)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for name, _sql in ADDRESS_INDEXES:
                conn.execute(f"DROP INDEX {name}")
            ops = {row[1] for row in conn.execute(
                "EXPLAIN " + final_rows.insert_sql(conn, shifted=False))}
            conn.execute("ROLLBACK")
        finally:
            final_rows.drop(conn)
        assert not [row for row in conn.execute("PRAGMA database_list")
                    if row[1] == final_rows.SCHEMA]
    assert "RowData" in ops and "Column" not in ops


_STAGED_EVENTS = f"INSERT INTO events SELECT * FROM {final_rows.EVENTS}"


@pytest.mark.parametrize("change", ["suppress", "unsuppress", "forget", "unforget", "ids",
                                    "event"])
def test_what_moved_while_the_list_was_read_is_as_at_the_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    monkeypatch.setattr(store_recipients, "BULK_MIN", 40)
    rows = _rows(120)
    rows[30] = NewRecipient("bad", None, None, "main", status="invalid", detail="not one")
    before = {"unsuppress": [rows[5].email], "unforget": [rows[7].email]}.get(change, [])
    path, plain = tmp_path / "t.sqlite", tmp_path / "plain.sqlite"
    with Store(path) as store, Store(path) as web:
        for email in before:
            store.suppress(email, source="test")
        if change == "unforget":
            store.forget(rows[7].email)

        def step() -> None:  # what the web app (another connection) did meanwhile
            if change == "suppress":
                web.suppress(rows[50].email.upper(), source="web")
            elif change == "unsuppress":
                web._conn.execute("DELETE FROM suppressions")
            elif change == "forget":
                web.suppress(rows[60].email, source="web")
                web.forget(rows[60].email)
            elif change == "unforget":
                web._conn.execute("DELETE FROM suppressions")
            elif change == "event":  # an event of another issue takes the next event id
                web._conn.execute(_OTHER_EVENT)
            else:
                web.reconcile("other", [NewRecipient("o@example.org", None, "en", "main")])

        sql: list[str] = []
        store._conn.set_trace_callback(sql.append)
        store.reconcile("i", _during(rows, 80, step))
        store._conn.set_trace_callback(None)
        got = _stored(store)
        assert store._conn.execute("PRAGMA ignore_check_constraints").fetchone()[0] == 0
        suppressions = store._conn.execute("SELECT email, source FROM suppressions").fetchall()
        others = store._conn.execute("SELECT count(*) FROM recipients WHERE issue != 'i'"
                                     ).fetchone()[0]
    # the same rows planned row by row into a store as it was at the commit
    monkeypatch.setattr(store_recipients, "BULK_MIN", 10_000)
    with Store(plain) as expected:
        expected._conn.executemany(
            "INSERT INTO suppressions (email, source, created_at) VALUES (?, ?, 'now')",
            suppressions)
        if others:
            expected.reconcile("other", [NewRecipient("o@example.org", None, "en", "main")])
        if change == "event":
            expected._conn.execute(_OTHER_EVENT)
        expected.reconcile("i", rows)
        want = _stored(expected)
    assert got == want
    # the events staged beside the rows are stale once anything moved: made anew instead
    assert _STAGED_EVENTS not in sql
    assert not [s for s in sql if s.startswith("ROLLBACK")]
    statuses = [row[8] for row in got[0]]
    if change == "ids":
        assert [row[0] for row in got[0]][:2] == [2, 3]
    elif change in ("suppress", "forget"):
        assert statuses.count("suppressed") == 1
    else:
        assert "suppressed" not in statuses
        assert got[0][7][2] == rows[7].email  # no longer kept under the hash


_OTHER_EVENT = ("INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
                " VALUES (NULL, 'other', 'x@example.org', 'opened', NULL, 'now')")


@pytest.mark.parametrize("thread", [True, False], ids=["staging thread", "no thread"])
def test_the_queued_events_staged_beside_the_rows_are_copied_when_nothing_moved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread: bool) -> None:
    """Each chunk's ``queued`` events are staged with its rows and copied as they are
    (SQLite's transfer): the same events, ids included, as made from the stored rows."""
    monkeypatch.setattr(staging, "available", lambda: thread)
    rows = _rows(120)
    rows[30] = NewRecipient("bad", None, None, "main", status="invalid", detail="not one")
    every = ("SELECT id, recipient_id, issue, email, kind, detail, at FROM events"
             " ORDER BY id")
    stores = {}
    for way, bulk in (("staged", 40), ("made", 10_000)):
        monkeypatch.setattr(store_recipients, "BULK_MIN", bulk)
        with Store(tmp_path / f"{way}.sqlite") as store:
            store._now = lambda: "2026-12-02T07:00:00.000+00:00"  # type: ignore[method-assign]
            store.suppress(rows[5].email, source="test")  # before: the staged rows know it
            store._conn.execute(_OTHER_EVENT)
            sql: list[str] = []
            store._conn.set_trace_callback(sql.append)
            store.reconcile("i", rows)
            store._conn.set_trace_callback(None)
            stores[way] = (sql, store._conn.execute(every).fetchall(), _stored(store))
    staged_sql, staged, staged_rows = stores["staged"]
    made_sql, made, made_rows = stores["made"]
    assert _STAGED_EVENTS in staged_sql and _STAGED_EVENTS not in made_sql
    assert staged == made and staged_rows == made_rows
    queued = {e[1]: e[5] for e in staged if e[4] == "queued"}  # recipient id -> detail
    assert len(queued) == 120 and queued[1] == "main"
    assert queued[6] == "suppressed" and queued[31] == "invalid: not one"
    with Store(tmp_path / "staged.sqlite") as store:
        conn = store._conn
        final_rows.create(conn)
        try:  # the copy is SQLite's transfer of whole records, as the rows' is
            ops = {row[1] for row in conn.execute("EXPLAIN " + _STAGED_EVENTS)}
        finally:
            final_rows.drop(conn)
    assert "RowData" in ops and "Column" not in ops


def test_a_plan_that_fails_mid_list_leaves_the_connection_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_recipients, "BULK_MIN", 40)

    def broken() -> Iterator[NewRecipient]:
        yield from _rows(60)
        raise OSError("the list's disk went away")

    with Store(tmp_path / "t.sqlite") as store:
        conn = store._conn
        with pytest.raises(OSError):
            store.reconcile("i", broken())
        assert conn.execute("PRAGMA ignore_check_constraints").fetchone()[0] == 0
        assert final_rows.SCHEMA not in [row[1] for row in conn.execute("PRAGMA database_list")]
        assert not conn.in_transaction and not store.has_rows("i")
        with pytest.raises(sqlite3.IntegrityError):  # the store's CHECK holds again
            conn.execute("INSERT INTO recipients (issue, email, email_key, list_name, status,"
                         " created_at) VALUES ('i', 'a', 'a', 'm', 'nonsense', 'now')")


@pytest.mark.parametrize("issue, list_name", [
    ("i", "main"), ("it's", "o'brien''s list"), ("συνάντηση", "x'); DROP TABLE recipients; --")])
def test_a_pending_row_put_narrow_stores_the_constants_as_given(
        tmp_path: Path, issue: str, list_name: str) -> None:
    """The column planner binds only a row's own values and writes the issue, list, status
    and time into the statement (``pending_one``): quoted as literals, whatever they hold,
    the stored row is the one the full 12-value form stores."""
    with Store(tmp_path / "t.sqlite") as store:
        with store.first_plan(issue) as staged:
            [one, two] = staged.ids(2)
            staged.put([(one, "A@x.org", "a@x.org", "Ann", "en", '{"org": "O"}', "s1")],
                       staged.pending_one(list_name))
            staged.put([(two, issue, "b@x.org", "b@x.org", None, None, list_name, "{}",
                         "pending", None, staged.now, "s2")])  # the full form, to compare
            now = staged.now
        rows = store._conn.execute(
            "SELECT id, issue, email, email_key, name, lang, list_name, fields, status,"
            " smtp_response, created_at, subject FROM recipients ORDER BY id").fetchall()
        assert rows == [
            (one, issue, "A@x.org", "a@x.org", "Ann", "en", list_name, '{"org": "O"}',
             "pending", None, now, "s1"),
            (two, issue, "b@x.org", "b@x.org", None, None, list_name, "{}", "pending", None,
             now, "s2")]
        assert store._conn.execute("SELECT count(*) FROM sqlite_master"
                                   " WHERE name = 'recipients'").fetchone() == (1,)


def test_a_nul_is_never_written_into_a_statement() -> None:
    assert final_rows.sql_text("it's") == "'it''s'"
    with pytest.raises(ValueError, match="NUL"):
        final_rows.sql_text("a\x00b")
