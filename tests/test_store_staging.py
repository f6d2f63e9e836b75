"""Staging a long first plan on a thread: the rows land in order, its errors reach the
planning thread, and the thread does not stop a long list from being read by a forked
child."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from mirage_mailer.project import list_worker
from mirage_mailer.store import NewRecipient, Store, staging
from mirage_mailer.store import recipients as store_recipients
from mirage_mailer.store.pg_schema import PLAN_STAGE


def _row(n: int) -> tuple[str | None, ...]:
    return (f"a{n}@example.org", f"a{n}@example.org", None, "en", "main", "{}", "pending",
            None, f"s{n}", None)


def _staging(path: Path) -> Store:
    store = Store(path)
    store._conn.execute(PLAN_STAGE["sqlite"])
    store._conn.execute("BEGIN")
    return store


def test_the_thread_stages_the_rows_in_order(tmp_path: Path) -> None:
    with _staging(tmp_path / "t.sqlite") as store:
        writer = staging.StageWriter(store._conn, "temp.plan_stage")
        for start in range(0, 1_203, 401):  # whole statements of 500 rows and the rest
            writer.put([_row(n) for n in range(start, start + 401)])
        writer.finish()
        got = store._conn.execute(
            "SELECT seq, email, subject FROM temp.plan_stage ORDER BY seq").fetchall()
        store._conn.execute("ROLLBACK")
    assert got == [(n + 1, f"a{n}@example.org", f"s{n}") for n in range(1_203)]


def test_an_error_of_the_thread_is_raised_in_the_planning_thread(tmp_path: Path) -> None:
    with _staging(tmp_path / "t.sqlite") as store:
        writer = staging.StageWriter(store._conn, "temp.plan_stage")
        try:
            writer.put([("too", "short")])
            with pytest.raises(sqlite3.ProgrammingError):
                writer.finish()
        finally:
            writer.close()
            store._conn.execute("ROLLBACK")


def test_a_long_first_plan_stages_on_the_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_recipients, "BULK_MIN", 50)
    made: list[staging.StageWriter] = []
    real = staging.StageWriter

    def recorded(conn: Any, table: str, **how: Any) -> staging.StageWriter:
        made.append(real(conn, table, **how))
        return made[-1]

    monkeypatch.setattr(staging, "StageWriter", recorded)
    rows = [NewRecipient(f"{'zyxw'[n % 4]}{n}@example.org", None, "en", "main")
            for n in range(1_234)]
    with Store(tmp_path / "t.sqlite") as store:
        store.reconcile("i", rows)
        assert [r.email for r in store.iter_pending("i")] == [r.email for r in rows]
    assert len(made) == 1 and not made[0]._thread.is_alive()


def test_the_staging_thread_does_not_stop_a_fork_but_another_thread_does(
        tmp_path: Path) -> None:
    assert list_worker.can_fork()
    with _staging(tmp_path / "t.sqlite") as store:
        writer = staging.StageWriter(store._conn, "temp.plan_stage")
        try:
            assert list_worker.can_fork()
        finally:
            writer.close()
            store._conn.execute("ROLLBACK")
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not list_worker.can_fork()
    finally:
        release.set()
        other.join()
