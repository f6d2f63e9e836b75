"""Web subscribers, erasure (GDPR art. 17) and access (art. 15) in the store, against a real
SQLite file and a real PostgreSQL database; the clock is the only thing faked."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from helpers import Clock
from mirage_mailer.store import NewRecipient, Store, hashed_key
from mirage_mailer.util.database import Database, PostgresUrl
from support.postgres import raw

T0 = "2024-05-01T10:00:00.000+00:00"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(store_url: Database) -> Database:
    return store_url


@pytest.fixture
def store(db_path: Database, clock: Clock) -> Iterator[Store]:
    with Store(db_path, clock=clock) as s:
        yield s


def sub(email: str, name: str | None = None, *, subject: str | None = None,
        fields: dict[str, str] | None = None) -> NewRecipient:
    return NewRecipient(email, name, "en", "main", fields or {}, subject=subject)


def sign_up(store: Store, email: str, *, subject: str, list_name: str = "main",
            version: str = "v1", text: str = "I agree.") -> bool:
    return store.add_pending_subscriber(list_name, email, name="Anna", lang="fr",
                                        subject=subject, consent_text=text,
                                        consent_version=version, source="web form")


def statuses(store: Store, issue: str) -> dict[str, str]:
    return {r["email"]: r["status"] for r in store.recipients(issue)}


def send_all(store: Store, issue: str, response: str = "250 OK") -> None:
    for row in list(store.iter_pending(issue)):
        assert store.mark_sending(row.id, f"<{row.id}@x>")
        store.mark_sent(row.id, 250, response)


def file_bytes(db_path: Database) -> bytes:
    """Everything SQLite keeps on disk for this database, lowercased; on PostgreSQL every
    row of every table as text (the old row versions are VACUUM's: see forget)."""
    if isinstance(db_path, PostgresUrl):
        tables = [t for (t,) in raw(db_path, "SELECT tablename FROM pg_tables"
                                             " WHERE schemaname = current_schema()")]
        return "\n".join(str(row[0]) for t in tables
                         for row in raw(db_path, f"SELECT t::text FROM {t} t")).lower().encode()
    parts = [db_path, db_path.with_name(db_path.name + "-wal"),
             db_path.with_name(db_path.name + "-journal")]
    return b"".join(p.read_bytes() for p in parts if p.exists()).lower()


# -- web subscribers ---------------------------------------------------------------------------


def test_sign_up_is_pending_until_confirmed_then_confirm_is_idempotent(
        store: Store, clock: Clock) -> None:
    assert sign_up(store, "Anna@Example.org", subject="s-anna") is True
    assert list(store.confirmed_subscribers("main")) == []
    clock.tick()
    confirmed = store.confirm_subscriber("main", "s-anna")
    assert confirmed is not None
    assert confirmed["status"] == "confirmed"
    assert confirmed["confirmed_at"] == "2024-05-01T10:00:01.000+00:00"
    assert confirmed["requested_at"] == T0
    clock.tick()
    again = store.confirm_subscriber("main", "s-anna")
    assert again == confirmed  # same row, same time: a second click changes nothing
    kinds = [e["kind"] for e in store.events()]
    assert kinds == ["subscription-requested", "subscribed"]
    assert store.confirm_subscriber("main", "no-such-subject") is None
    assert store.confirm_subscriber("other-list", "s-anna") is None


def test_a_repeated_request_refreshes_consent_and_a_confirmed_one_changes_nothing(
        store: Store, clock: Clock) -> None:
    sign_up(store, "anna@example.org", subject="old-subject", version="v1", text="Old text.")
    clock.tick(60)
    assert sign_up(store, "anna@example.org", subject="s-anna") is False  # too soon: no mail
    clock.tick(600)
    assert sign_up(store, "ANNA@example.org", subject="s-anna", version="v2",
                   text="New text.") is True
    assert store.confirm_subscriber("main", "old-subject") is None  # the newest link counts
    row = store.confirm_subscriber("main", "s-anna")
    assert row is not None
    assert (row["consent_text"], row["consent_version"]) == ("New text.", "v2")
    assert row["requested_at"] == "2024-05-01T10:11:00.000+00:00"
    clock.tick()
    assert sign_up(store, "anna@example.org", subject="s-anna", version="v3") is False
    (kept,) = store.confirmed_subscribers("main")
    assert kept["consent_version"] == "v2"


def test_confirmed_subscribers_come_oldest_first_per_list(store: Store) -> None:
    for n, email in enumerate(["c@example.org", "a@example.org", "b@example.org"]):
        sign_up(store, email, subject=f"s{n}")
    sign_up(store, "other@example.org", subject="s9", list_name="other")
    store.confirm_subscriber("main", "s2")
    store.confirm_subscriber("main", "s0")
    store.confirm_subscriber("other", "s9")
    assert [r["email"] for r in store.confirmed_subscribers("main")] == [
        "c@example.org", "b@example.org"]  # by sign-up, not by confirmation; a@ still pending
    assert [r["email"] for r in store.confirmed_subscribers("other")] == ["other@example.org"]


def test_resolve_subject_finds_a_recipient_of_the_issue_or_a_sign_up(store: Store) -> None:
    store.add_recipients("2024-05", [sub("Jean@example.org", subject="s-jean")])
    sign_up(store, "anna@example.org", subject="s-anna")
    assert store.resolve_subject("s-jean", "2024-05") == "Jean@example.org"
    assert store.resolve_subject("s-jean") == "Jean@example.org"
    assert store.resolve_subject("s-anna", "2024-05") == "anna@example.org"
    assert store.resolve_subject("s-jean", "2024-06") is None
    assert store.resolve_subject("nobody") is None


# -- suppressions with the request's time ------------------------------------------------------


def test_suppress_records_when_the_person_asked_but_never_in_the_future(
        store: Store, clock: Clock) -> None:
    asked = datetime(2024, 4, 30, 23, 30, tzinfo=timezone(timedelta(hours=2)))
    assert store.suppress("a@example.org", source="mailto", reason="issue i", at=asked)
    store.suppress("b@example.org", source="mailto", at=datetime(2031, 1, 1, tzinfo=UTC))
    stamps = {s["email"]: s["created_at"] for s in store.suppressions()}
    assert stamps == {"a@example.org": "2024-04-30T21:30:00.000+00:00", "b@example.org": T0}
    unsubscribed = [e for e in store.events() if e["kind"] == "unsubscribed"]
    assert [(e["email"], e["detail"], e["at"]) for e in unsubscribed] == [
        ("a@example.org", "mailto: issue i", "2024-04-30T21:30:00.000+00:00"),
        ("b@example.org", "mailto", T0)]


# -- forget ------------------------------------------------------------------------------------


def test_forget_keeps_counts_and_only_a_hashed_suppression(store: Store, db_path: Database) -> None:
    store.add_recipients("i1", [sub("Jean.Dupont@Example.org", "Jean Dupont", subject="s-j",
                                    fields={"organisation": "Accueil Jeanne"}),
                                sub("maria@example.org", "Maria")])
    send_all(store, "i1", "2.0.0 Ok: queued for <jean.dupont@example.org>")
    store.add_recipients("i2", [sub("jean.dupont@example.org", "Jean Dupont")])
    store.suppress("jean.dupont@example.org", source="web", reason="by jean.dupont@example.org")
    sign_up(store, "jean.dupont@example.org", subject="s-j")

    done = store.forget("JEAN.DUPONT@example.org")

    # events: queued and sent (i1), queued and suppressed (i2), unsubscribed, sign-up
    assert done == {"deliveries": 2, "events": 6, "subscriptions": 1, "residue": 0}
    assert store.counts("i1")["sent"] == 2 and store.counts("i2")["suppressed"] == 1
    assert store.suppressions() == [{"email": hashed_key("jean.dupont@example.org"),
                                     "source": "forget", "reason": "erased on request",
                                     "created_at": T0}]
    assert store.is_suppressed("Jean.Dupont@example.org")
    assert store.resolve_subject("s-j", "i1") is None
    maria = [r for r in store.recipients("i1") if r["email"] == "maria@example.org"]
    assert maria[0]["smtp_response"] == "2.0.0 Ok: queued for <[erased]>"
    raw = file_bytes(db_path)
    for trace in (b"jean.dupont@example.org", b"jean dupont", b"accueil jeanne"):
        assert trace not in raw, trace
    assert b"maria@example.org" in raw  # only that person is erased


def test_forget_anonymises_events_of_non_ascii_addresses(store: Store, db_path: Database) -> None:
    """SQLite's lower() folds ASCII only: 'JÖRG' must still match 'jörg'."""
    store.add_recipients("i", [sub("JÖRG.Ünal@example.org", "Jörg")])
    done = store.forget("jörg.ünal@example.org")
    assert done["events"] == 1
    assert all(e["email"].startswith("sha256:") for e in store.events())
    assert "jörg".encode() not in file_bytes(db_path)


def test_forget_leaves_longer_addresses_that_contain_it_alone(store: Store) -> None:
    store.add_recipients("i", [sub("jean@example.org")])
    send_all(store, "i", "<jean@example.org> and <an@example.org>")
    store.forget("an@example.org")
    (row,) = store.recipients("i")
    assert row["smtp_response"] == "<jean@example.org> and <[erased]>"


def test_hashed_suppression_blocks_add_recipients_and_apply_suppressions(
        store: Store, db_path: Database) -> None:
    store.add_recipients("queued-before", [sub("jean@example.org")])
    # another writer queued the row before the erasure
    raw(db_path, "UPDATE recipients SET status = 'pending'")
    store.forget("jean@example.org")
    # A row queued by a process that had not seen the erasure yet:
    raw(db_path, "INSERT INTO recipients (id, issue, email, email_key, list_name, created_at)"
                 " VALUES (1000, 'late', 'Jean@example.org', 'jean@example.org', 'main', 'x')")
    assert store.apply_suppressions("late") == 1
    store.add_recipients("later", [sub("JEAN@example.org"), sub("maria@example.org")])
    assert store.counts("later")["suppressed"] == 1
    assert [r.email for r in store.iter_pending("later")] == ["maria@example.org"]


def test_forgetting_twice_after_the_list_brought_them_back_does_not_fail(store: Store) -> None:
    store.add_recipients("i", [sub("jean@example.org")])
    store.forget("jean@example.org")
    store.add_recipients("i", [sub("jean@example.org")])  # still in the list file: rerun
    done = store.forget("jean@example.org")
    assert done["residue"] == 0
    assert store.counts("i")["suppressed"] == 1  # one person, one row
    assert all(r["email"].startswith("sha256:") for r in store.recipients("i"))


def test_a_list_that_still_has_a_forgotten_person_writes_no_plain_address(
        store: Store, db_path: Database) -> None:
    store.forget("jean@example.org")
    store.add_recipients("i", [sub("jean@example.org", "Jean")])
    assert store.counts("i")["suppressed"] == 1
    assert b"jean@example.org" not in file_bytes(db_path)


def test_suppress_after_forget_writes_no_plain_address(store: Store, db_path: Database) -> None:
    store.forget("jean@example.org")
    assert store.suppress("Jean@example.org", source="mailto", reason="issue i") is False
    assert [s["email"] for s in store.suppressions()] == [hashed_key("jean@example.org")]
    assert [e["kind"] for e in store.events()] == ["forgotten"]
    store.close()
    assert b"jean@example.org" not in file_bytes(db_path)


def test_forget_reports_residue_when_another_reader_holds_old_pages(tmp_path: Path) -> None:
    db_path = tmp_path / ".mirage" / "tracking.sqlite"  # SQLite's WAL: a file matter
    store = Store(db_path, clock=Clock())
    store.add_recipients("i", [sub("jean@example.org")])
    reader = sqlite3.connect(db_path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM recipients").fetchone()  # holds a snapshot
    try:
        with Store(db_path, timeout=0.2) as impatient:  # the CLI waits 10 s, then gives up
            done = impatient.forget("jean@example.org")
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert done["residue"] == 1
    assert store.is_suppressed("jean@example.org")  # the erasure itself is committed
    assert store.forget("jean@example.org")["residue"] == 0  # rerun once the reader is gone
    assert b"jean@example.org" not in file_bytes(db_path)


# -- export ------------------------------------------------------------------------------------


def test_export_shape_before_and_after_forget(store: Store, clock: Clock) -> None:
    store.add_recipients("i1", [sub("Anna@example.org", "Anna", subject="s-a",
                                    fields={"org": "X"})])
    send_all(store, "i1")
    sign_up(store, "anna@example.org", subject="s-a")
    store.confirm_subscriber("main", "s-a")
    store.suppress("anna@example.org", source="mailto", reason="issue i1")
    data = store.export("ANNA@example.org")
    assert set(data) == {"email", "suppressed", "subscriptions", "deliveries", "events"}
    assert data["email"] == "anna@example.org"
    assert data["suppressed"] == {"source": "mailto", "reason": "issue i1", "created_at": T0,
                                  "hashed": False}
    (subscription,) = data["subscriptions"]
    assert subscription == {
        "list": "main", "email": "anna@example.org", "name": "Anna", "lang": "fr",
        "status": "confirmed", "consent_text": "I agree.", "consent_version": "v1",
        "source": "web form", "requested_at": T0, "confirmed_at": T0}
    (delivery,) = data["deliveries"]
    assert set(delivery) == {"issue", "email", "name", "lang", "list", "fields", "status",
                             "attempts", "message_id", "smtp_code", "smtp_response",
                             "queued_at", "last_attempt_at"}
    assert delivery["fields"] == {"org": "X"} and delivery["status"] == "sent"
    assert [e["kind"] for e in data["events"]] == [
        "queued", "sent", "subscription-requested", "subscribed", "unsubscribed"]
    assert all(set(e) == {"issue", "kind", "detail", "at"} for e in data["events"])

    store.forget("anna@example.org")
    assert store.export("anna@example.org") == {
        "email": "anna@example.org",
        "suppressed": {"source": "forget", "reason": "erased on request", "created_at": T0,
                       "hashed": True},
        "subscriptions": [], "deliveries": [], "events": []}


def test_confirmed_new_sign_up_lifts_an_earlier_unsubscription(store: Store) -> None:
    store.suppress("ana@example.org", source="one-click")
    store.add_pending_subscriber("news", "ana@example.org", name="Ana", lang="en",
                                 subject="s-ana", consent_text="I agree.", consent_version="1",
                                 source="web")
    assert store.is_suppressed("ana@example.org")  # asking is not yet consent
    assert store.confirm_subscriber("news", "s-ana") is not None
    assert not store.is_suppressed("ana@example.org")
    assert [e["kind"] for e in store.events() if e["email"] == "ana@example.org"][-2:] == [
        "subscribed", "resubscribed"]
