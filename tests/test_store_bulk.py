"""Queueing a long list: rows go in by address but keep the list's ids (and sending order),
and a reconcile commits by time, not per chunk; on SQLite and PostgreSQL (``store_url``)
where the behaviour is both's, on SQLite alone for its index rebuild."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirage_mailer.store import NewRecipient, Store
from mirage_mailer.store import recipients as store_recipients
from mirage_mailer.store.core import CACHE_KIB
from mirage_mailer.store.pg import WRITE_LOCK
from mirage_mailer.util.database import Database, PostgresUrl
from support.postgres import raw


def _rows(n: int) -> list[NewRecipient]:
    # addresses whose alphabetical order is not the list's
    return [NewRecipient(f"{'zyxwvutsrq'[i % 10]}{i}@example.org", None, "en", "main")
            for i in range(n)]


def test_ids_and_sending_order_follow_the_list(store_url: Database) -> None:
    rows = _rows(25)
    with Store(store_url) as store:
        store.reconcile("i", rows, batch=7)
        pending = [r.email for r in store.iter_pending("i")]
        queued = [e for (e,) in store._conn.execute(
            "SELECT email FROM events WHERE kind = 'queued' ORDER BY id")]
    assert pending == [r.email for r in rows]
    assert queued == pending


def test_the_first_of_equal_addresses_still_wins(store_url: Database) -> None:
    with Store(store_url) as store:
        added = store.add_recipients("i", [
            NewRecipient("b@example.org", "B first", None, "main"),
            NewRecipient("a@example.org", None, None, "main"),
            NewRecipient("B@example.org", "B second", None, "main")])
        names = {r.email: r.name for r in store.iter_pending("i")}
    assert added == 2
    assert names == {"b@example.org": "B first", "a@example.org": None}


def _commits(store: Store) -> list[str]:
    seen: list[str] = []
    store._conn.set_trace_callback(
        lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return seen


def test_chunks_share_a_commit_within_the_time_limit(store_url: Database) -> None:
    with Store(store_url) as store:
        commits = _commits(store)
        store.reconcile("i", _rows(50), batch=5)
        assert sum(1 for _ in store.iter_pending("i")) == 50
    assert len(commits) == 1  # ten chunks, one commit (each chunk committed on its own before)


def _other_writer_gets_the_lock(where: Database) -> None:
    """Another process takes the store's write lock at once (or fails the test)."""
    if isinstance(where, PostgresUrl):
        assert raw(where, f"SELECT pg_try_advisory_xact_lock({WRITE_LOCK})") == [(True,)]
        return
    other = sqlite3.connect(where, timeout=0.1)
    other.execute("BEGIN IMMEDIATE")
    other.execute("COMMIT")
    other.close()


def test_a_reconcile_lets_go_of_the_lock_after_the_time_limit(
        store_url: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer (the web app) waits at most COMMIT_EVERY: past it, each chunk commits."""
    monkeypatch.setattr(store_recipients, "COMMIT_EVERY", 0.0)
    with Store(store_url) as store:
        commits = _commits(store)

        def rows() -> Iterator[NewRecipient]:
            for n, row in enumerate(_rows(20)):
                if n and n % 5 == 0:  # between chunks the lock is free for another writer
                    _other_writer_gets_the_lock(store_url)
                yield row

        store.reconcile("i", rows(), batch=5)
        assert sum(1 for _ in store.iter_pending("i")) == 20
    assert len(commits) == 4


def test_a_rerun_rewrites_only_the_rows_that_changed(store_url: Database) -> None:
    rows = _rows(30)
    with Store(store_url) as store:
        store.reconcile("i", rows)
        store.reconcile("i", [rows[0].email])  # left the list: withdrawn
        before = store._conn.total_changes
        store.reconcile("i", rows[1:])  # the same list again: nothing to write
        assert store._conn.total_changes == before
        renamed = NewRecipient(rows[2].email, "New Name", "en", "main")
        store.reconcile("i", [rows[0], renamed, *rows[3:]])  # back, and one renamed
        changed = store._conn.total_changes - before
        names = {r.email: r.name for r in store.iter_pending("i")}
        kinds = [k for (k,) in store._conn.execute(
            "SELECT kind FROM events WHERE email = ? ORDER BY id", (rows[0].email,))]
    assert changed == 3  # the returning row, its 'requeued' event, the renamed row
    assert names[rows[2].email] == "New Name" and len(names) == 30
    assert kinds == ["queued", "withdrawn", "requeued"]


# -- an issue's first plan of a long list: one transaction, indexes built in one pass -------


def _index_sql(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                             " AND tbl_name = 'recipients'").fetchall())


def _traced(store: Store) -> list[str]:
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    return seen


def _sorter_settings(store: Store) -> tuple[int, int]:
    """The connection's page cache and sorter threads, which the index builds change."""
    conn = store._conn
    return (conn.execute("PRAGMA cache_size").fetchone()[0],
            conn.execute("PRAGMA threads").fetchone()[0])


def test_a_long_first_plan_goes_in_at_once_with_the_same_indexes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_recipients, "BULK_MIN", 40)
    rows = _rows(100)
    rows[5] = NewRecipient(rows[5].email, "Unsubscribed", "en", "main")
    rows[7] = NewRecipient("bad address", None, None, "main", status="invalid",
                           detail="lists/main.csv:9: not an address")
    with Store(tmp_path / "new.sqlite") as fresh:
        schema = _index_sql(fresh._conn)
    with Store(tmp_path / "t.sqlite") as store:
        store.suppress(rows[5].email, source="test")
        store.suppress(rows[9].email, source="test")
        store.forget(rows[9].email)  # a forgotten person keeps only the hash
        sql = _traced(store)
        store.reconcile("i", rows)
        store._conn.set_trace_callback(None)
        got = store._conn.execute(
            "SELECT id, email, status, name, smtp_response FROM recipients ORDER BY id"
        ).fetchall()
        queued = store._conn.execute(
            "SELECT recipient_id, detail FROM events WHERE kind = 'queued' ORDER BY id"
        ).fetchall()
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert _index_sql(store._conn) == schema
        pending = [r.email for r in store.iter_pending("i")]
        assert _sorter_settings(store) == (-CACHE_KIB, 0)  # as the store had them
    assert sum("DROP INDEX" in s for s in sql) == 3
    assert sum(s.startswith("COMMIT") for s in sql) == 2  # the staged rows, then the store
    assert [r[0] for r in got] == list(range(1, 101))  # ids in list order
    assert got[5][2:4] == ("suppressed", "Unsubscribed")
    assert got[7][2:] == ("invalid", None, "lists/main.csv:9: not an address")
    assert got[9][1].startswith("sha256:") and got[9][2:4] == ("suppressed", None)
    assert pending == [r.email for n, r in enumerate(rows) if n not in (5, 7, 9)]
    assert [q[0] for q in queued] == list(range(1, 101))
    assert queued[5][1] == "suppressed" and queued[0][1] == "main"


def test_a_long_first_plan_on_postgresql_keeps_its_indexes_and_readers(
        pg_url: PostgresUrl, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's DROP INDEX would lock every reader (the web's unsubscribe page) out of
    the table until the commit: the rows go in with the indexes in place, in one commit."""
    monkeypatch.setattr(store_recipients, "BULK_MIN", 40)
    rows = _rows(100)
    rows[5] = NewRecipient(rows[5].email, "Unsubscribed", "en", "main")
    with Store(pg_url) as store:
        store.suppress(rows[5].email, source="test")
        store.suppress(rows[9].email, source="test")
        store.forget(rows[9].email)
        sql = _traced(store)
        store.reconcile("i", rows)
        store._conn.set_trace_callback(None)  # type: ignore[attr-defined]
        got = store._conn.execute("SELECT id, status FROM recipients ORDER BY id").fetchall()
        pending = [r.email for r in store.iter_pending("i")]
    assert not [s for s in sql if "DROP INDEX" in s or "CREATE INDEX" in s]
    assert sum(s.startswith("COMMIT") for s in sql) == 2  # the staged rows, then the store
    assert [r[0] for r in got] == list(range(1, 101))
    assert got[5][1] == got[9][1] == "suppressed"
    assert pending == [r.email for n, r in enumerate(rows) if n not in (5, 9)]


def test_two_staged_rows_of_one_address_go_in_the_usual_way(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_recipients, "BULK_MIN", 10)
    rows = _rows(30)
    rows.append(NewRecipient(rows[3].email.upper(), "Second", "en", "main"))
    with Store(tmp_path / "new.sqlite") as fresh:
        schema = _index_sql(fresh._conn)
    with Store(tmp_path / "t.sqlite") as store:
        sql = _traced(store)
        store.reconcile("i", rows)
        store._conn.set_trace_callback(None)
        names = {r.email: r.name for r in store.iter_pending("i")}
        assert _index_sql(store._conn) == schema
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert _sorter_settings(store) == (-CACHE_KIB, 0)  # restored after the failed build
    assert "ROLLBACK" in sql  # the unique index refused: the transaction was undone
    assert f"PRAGMA cache_size = -{store_recipients._SORT_CACHE_KIB}" in sql
    assert len(names) == 30 and names[rows[3].email] is None  # the first one won


def test_the_indexes_stay_when_other_issues_hold_many_more_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_recipients, "BULK_MIN", 10)
    with Store(tmp_path / "t.sqlite") as store:
        store.reconcile("earlier", _rows(100))
        sql = _traced(store)
        store.reconcile("i", _rows(20))  # sorting 120 index entries again for 20: no
        store._conn.set_trace_callback(None)
        assert sum(1 for _ in store.iter_pending("i")) == 20
    assert not [s for s in sql if "DROP INDEX" in s]


def test_fields_are_stored_as_the_json_encoder_writes_them() -> None:
    """The short way of writing a row's fields gives the encoder's text to the byte (a rerun
    compares it with what an earlier version stored), on tricky strings and odd values."""
    import json
    import random

    from mirage_mailer.store import fields_json

    rng = random.Random(3)
    alphabet = ['"', "\\", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "é", "Zoë", "\u2028",
                "\ud800", "😀", "/", "a", " ", ":", ",", "{", "}"]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 6)))

    cases: list[dict[str, object]] = [{}, {"organisation": "Organisation 5"},
                                      {"n": 1, "x": None, "f": 1.5, "b": True}]
    cases += [{text(): text() for _ in range(rng.randrange(1, 5))} for _ in range(2_000)]
    for fields in cases:
        assert fields_json(fields) == json.dumps(fields, ensure_ascii=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("rows", [30, 60])  # the usual way, and a first plan at once
def test_the_fields_text_the_list_reader_wrote_is_what_the_store_keeps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    monkeypatch.setattr(store_recipients, "BULK_MIN", 50)
    # written by the reader (here without the space, to tell it from the store's own text)
    new = [NewRecipient(f"r{n}@example.org", None, "en", "main", {"org": f"O{n}"},
                        fields_text=f'{{"org":"O{n}"}}' if n % 2 else None)
           for n in range(rows)]
    with Store(tmp_path / "t.sqlite") as store:
        store.reconcile("i", new)
        kept = [f for (f,) in store._conn.execute(
            "SELECT fields FROM recipients ORDER BY id")]
    assert kept == [f'{{"org":"O{n}"}}' if n % 2 else f'{{"org": "O{n}"}}'
                    for n in range(rows)]
