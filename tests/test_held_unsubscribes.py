"""Held unsubscribes (``services.held_unsubscribes``): what ``serve`` keeps while the store is
busy is recorded later, once; a file that is not one of ours is set aside, never trusted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mirage_mailer.services.held_unsubscribes import FOLDER, Held, hold, record_held, waiting
from mirage_mailer.store import NewRecipient, Store


def test_held_unsubscribes_are_recorded_once_and_hostile_files_set_aside(
        tmp_path: Path) -> None:
    state = tmp_path / ".mirage"
    with Store(state / "tracking.sqlite") as store:
        store.add_recipients("i", [NewRecipient("a@example.org", None, None, "main",
                                                subject="subject-a"),
                                   NewRecipient("b@example.org", None, None, "main",
                                                subject="subject-b")])
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    hold(state, Held("i", "subject-a", "one-click", at))
    hold(state, Held("i", "no-such-subject", "one-click", at))  # an address erased since
    folder = state / FOLDER
    assert (folder.stat().st_mode & 0o777) == 0o700
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in waiting(state))
    for name, text in (("bad-json.json", "{"), ("bad-type.json", '["i"]'),
                       ("bad-time.json", '{"issue": "i", "subject": "s", "source": "x", '
                                         '"at": "2026-11-30T12:00:00"}')):
        (folder / name).write_text(text)
    with Store(state / "tracking.sqlite") as store:
        assert record_held(store, state) == 1
        assert store.is_suppressed("a@example.org") and not store.is_suppressed("b@example.org")
        [row] = store._conn.execute("SELECT source, created_at FROM suppressions").fetchall()
        assert row[0] == "one-click" and str(row[1]).startswith("2026-11-30T12:00")
        assert record_held(store, state) == 0  # nothing left: recorded once
    assert waiting(state) == []
    assert sorted(p.name for p in folder.iterdir()) == [
        "bad-json.invalid", "bad-time.invalid", "bad-type.invalid"]
