"""A claim's check that the row is still pending, done without a read a message
(``store/claim_check.py``): every commit by anyone makes the rows read again, so an
unsubscription committed before a claim stops it; while nothing commits, no statement runs."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirage_mailer.store import NewRecipient, Store, hashed_key

ISSUE = "i"
AT = "2026-01-01T00:00:00.000+00:00"


def people(n: int) -> list[str]:
    return [f"p{k}@example.org" for k in range(n)]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "tracking.sqlite"
    with Store(path) as s:
        s.add_recipients(ISSUE, [NewRecipient(a, None, None, "main", {}, "pending", None)
                                 for a in people(30)])
    return path


@pytest.fixture
def sender(db: Path) -> Iterator[Store]:
    with Store(db) as s:
        yield s


def statements(store: Store) -> list[str]:
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)  # type: ignore[attr-defined]
    return seen


def test_a_row_read_pending_is_claimed_without_a_statement_while_nothing_commits(
        sender: Store) -> None:
    rows = list(sender.iter_pending(ISSUE, batch=10))
    seen = statements(sender)
    assert all(sender.claimable(r.id) for r in rows)
    assert seen == []  # the WAL index header said nothing changed: no read transaction


@pytest.mark.parametrize("how", ["web app", "raw connection", "after our own commit"])
def test_an_unsubscription_committed_before_the_claim_stops_it(db: Path, sender: Store,
                                                               how: str) -> None:
    pending = sender.iter_pending(ISSUE, batch=10)
    first = [next(pending) for _ in range(4)]  # a page of 10 read, 4 of it handed out
    assert sender.claimable(first[0].id)
    if how == "after our own commit":  # our batch commits change the header too
        sender.record_batch([(first[0].id, hashed_key(first[0].email), 0, "sent", 250, "ok",
                              "<m>", AT)])
        assert sender.claimable(first[1].id)
    if how == "raw connection":
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("UPDATE recipients SET status = 'suppressed' WHERE email IN (?, ?)",
                     (first[2].email, "p6@example.org"))
        conn.close()
    else:
        with Store(db) as web:
            web.suppress(first[2].email, source="web")
            web.suppress("p6@example.org", source="web")
    seen = statements(sender)
    assert not sender.claimable(first[2].id)
    assert sender.claimable(first[3].id)
    rest = {r.email: r.id for r in (next(pending) for _ in range(4))}  # the same page's
    assert sender.claimable(rest["p5@example.org"])
    assert sender.claimable(rest["p7@example.org"])
    assert not sender.claimable(rest["p6@example.org"])  # read: it was dropped as suppressed
    # one read for the page's unclaimed rows, one for the suppressed row: not one a claim
    assert len(seen) == 2 and all("WHERE id IN" in s for s in seen)


@pytest.mark.parametrize("seed", range(8))
def test_random_claims_commits_and_unsubscriptions_agree_with_a_read(db: Path, sender: Store,
                                                                     seed: int) -> None:
    """Whatever the order of pages, claims, our batches and other connections' commits, the
    answer is the one a read of the row at that moment gives."""
    rng = random.Random(seed)
    truth = sqlite3.connect(db, isolation_level=None)
    other = sqlite3.connect(db, isolation_level=None)

    def really(rid: int) -> bool:
        row = truth.execute("SELECT status FROM recipients WHERE id = ?", (rid,)).fetchone()
        return bool(row) and row[0] in ("pending", "sending")

    pending = sender.iter_pending(ISSUE, batch=4)
    handed: list[int] = []
    claims = 0
    for _ in range(200):
        step = rng.random()
        if step < 0.35:
            row = next(pending, None)
            if row is not None:
                handed.append(row.id)
        elif step < 0.5:
            victim = rng.randrange(1, 31)
            other.execute("UPDATE recipients SET status = 'suppressed' WHERE id = ?"
                          " AND status = 'pending'", (victim,))
        elif step < 0.6:
            sender.record_batch([], [])  # an empty batch: BEGIN/COMMIT of nothing
            other.execute("UPDATE recipients SET name = 'x' WHERE id = 1")  # a foreign commit
        elif handed:
            rid = handed.pop(rng.randrange(len(handed)))
            expected = really(rid)
            assert sender.claimable(rid) is expected, rid
            claims += 1
    assert claims >= 15
    truth.close()
    other.close()


def test_without_a_wal_index_every_claim_reads_its_row(db: Path, sender: Store) -> None:
    rows = list(sender.iter_pending(ISSUE, batch=10))
    sender._claim_check()._view = None  # as on PostgreSQL, or a -shm that cannot be mapped
    with Store(db) as web:
        web.suppress(rows[1].email, source="web")
    seen = statements(sender)
    assert sender.claimable(rows[0].id) and not sender.claimable(rows[1].id)
    assert len(seen) == 2


def test_a_wal_index_of_another_layout_is_not_trusted(db: Path, sender: Store,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import mirage_mailer.store.claim_check as claim_check

    monkeypatch.setattr(claim_check, "WAL_INDEX_VERSION", 3007001)
    rows = list(sender.iter_pending(ISSUE, batch=10))
    seen = statements(sender)
    assert sender.claimable(rows[0].id) and len(seen) == 1  # read, as on PostgreSQL


def test_closing_the_store_unmaps_the_wal_index(db: Path) -> None:
    store = Store(db)
    rows = list(store.iter_pending(ISSUE, batch=10))
    check = store._claim_check()
    view = check._view
    assert view is not None and not view.closed
    assert store.claimable(rows[0].id)
    store.close()
    assert view.closed and store._claims is None
    assert check.claimable(rows[1].id, lambda ids: set()) is False  # no mapping: it reads
