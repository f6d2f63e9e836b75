"""The store's side of bounces: each bounce mail recorded once (even when two runs race past
``bounce_seen``), soft bounces counted within the window, suppressions that are not
unsubscribes, and erasure (GDPR) that leaves no address behind."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from helpers import Clock
from mirage_mailer.store import BounceRow, NewRecipient, Store
from mirage_mailer.util.database import Database, PostgresUrl
from support.postgres import raw


@pytest.fixture
def store(store_url: Database) -> Store:
    clock = Clock()
    made = Store(store_url, clock=clock)
    made.reconcile("i", [NewRecipient("Jean@Example.org", None, None, "main"),
                         NewRecipient("maria@example.org", None, None, "main")])
    return made


def row(store: Store, email: str) -> BounceRow:
    found = store.bounce_row(email, None) or next(
        r for r in (store.verp_row(n) for n in range(1, 10)) if r and r.email.lower() == email)
    assert found is not None
    return found


def test_the_same_mail_is_recorded_once(store: Store) -> None:
    jean = row(store, "jean@example.org")
    first = store.record_bounce("mid:<a@x>", jean, kind="bounced", detail="5.1.1")
    second = store.record_bounce("mid:<a@x>", jean, kind="bounced", detail="5.1.1")
    assert (first.recorded, first.suppressed) == (True, True)
    assert (second.recorded, second.suppressed) == (False, False)
    assert store.bounce_seen("mid:<a@x>") and not store.bounce_seen("mid:<b@x>")
    assert store.bounce_counts("i") == {"hard": 1, "soft": 0, "complaints": 0}
    assert store.is_suppressed("JEAN@example.org")
    # a bounce suppression is not an unsubscribe: the unsubscribe figures stay as they were
    assert store.unsubscriptions() == []


def test_soft_bounces_count_within_the_window_only(store: Store, tmp_path: Path) -> None:
    maria = row(store, "maria@example.org")
    clock: Clock = store._clock  # type: ignore[assignment]
    start = clock.now
    for n, days in enumerate((0, 10, 12)):
        clock.now = start + timedelta(days=days)
        got = store.record_bounce(f"mid:<s{n}@x>", maria, kind="soft-bounced", detail="4.2.2",
                                  soft_limit=2, soft_window_days=7)
        assert got.soft_count == (1, 1, 2)[n]
        assert got.suppressed == (n == 2)
    assert store.bounce_kinds("i") == {"maria@example.org": "soft"}


def test_forget_leaves_no_address_in_bounce_records(store: Store, store_url: Database) -> None:
    jean = row(store, "jean@example.org")
    store.record_bounce("mid:<a@x>", jean, kind="complained", detail="feedback report (abuse)")
    store.forget("jean@example.org")
    if isinstance(store_url, PostgresUrl):
        dump = "\n".join(str(r[0]) for t in ("recipients", "events", "suppressions",
                                              "bounce_mail", "subscribers")
                         for r in raw(store_url, f"SELECT t::text FROM {t} t")).lower()
    else:
        with sqlite3.connect(store_url) as db:
            dump = "\n".join(db.iterdump()).lower()
    assert "jean@example.org" not in dump
    assert store.bounce_counts("i")["complaints"] == 1  # the figures stay
    again = store.record_bounce("mid:<b@x>", store.verp_row(jean.id) or jean, kind="bounced",
                                detail="5.1.1")
    assert again.recorded and not again.suppressed  # already suppressed, as a hash
