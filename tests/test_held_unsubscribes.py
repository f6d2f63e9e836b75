"""Held unsubscribes (``services.held_unsubscribes``): what ``serve`` keeps while the store is
busy is recorded later, once; a file that is not one of ours is set aside, never trusted."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli
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


def held_then_resubscribed(store: Store, state: Path) -> None:
    """a@ unsubscribed an hour ago while the store was busy (held), then signed up again."""
    store.add_recipients("i", [NewRecipient("a@example.org", None, None, "main",
                                            subject="subject-a")])
    hold(state, Held("i", "subject-a", "one-click", datetime.now(UTC) - timedelta(hours=1)))
    store.add_pending_subscriber("main", "a@example.org", name=None, lang="en",
                                 subject="subject-new", consent_text="consent",
                                 consent_version="1", source="web")
    assert store.confirm_subscriber("main", "subject-new") is not None


def test_a_sign_up_confirmed_after_the_held_request_wins(tmp_path: Path) -> None:
    """Found from outside: the held request, recorded 4 s after the person confirmed a new
    sign-up, suppressed them for good; recorded at once, it would have been lifted."""
    state = tmp_path / ".mirage"
    with Store(state / "tracking.sqlite") as store:
        held_then_resubscribed(store, state)
        assert record_held(store, state) == 0
        assert not store.is_suppressed("a@example.org")
        assert waiting(state) == []  # done with: the later sign-up answered it


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "link to a good file",
                                  "too big"])
def test_a_file_that_is_not_a_small_regular_one_is_set_aside_unread(tmp_path: Path,
                                                                     kind: str) -> None:
    """A FIFO hung send (and run-due, holding its lock); /dev/zero ran it out of memory; a
    link was followed to a file elsewhere and recorded."""
    state = tmp_path / ".mirage"
    with Store(state / "tracking.sqlite") as store:
        store.add_recipients("i", [NewRecipient("a@example.org", None, None, "main",
                                                subject="subject-a")])
    good = tmp_path / "elsewhere.json"
    good.write_text(json.dumps({"issue": "i", "subject": "subject-a", "source": "web",
                                "at": "2026-11-30T12:00:00+00:00"}))
    folder = state / FOLDER
    folder.mkdir(mode=0o700)
    path = folder / "x.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "too big":
        path.write_bytes(good.read_bytes() + b" " * 1_000_000)
    else:
        path.symlink_to("/dev/zero" if "zero" in kind else good)
    with Store(state / "tracking.sqlite") as store:
        assert record_held(store, state) == 0
        assert not store.is_suppressed("a@example.org")
    assert [p.name for p in folder.iterdir()] == ["x.invalid"]


def test_one_link_posted_again_and_again_is_held_once(tmp_path: Path) -> None:
    state = tmp_path / ".mirage"
    first = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    for minute in range(50):
        hold(state, Held("i", "subject-a", "one-click", first + timedelta(minutes=minute)))
    [path] = waiting(state)
    last = first + timedelta(minutes=49)
    assert json.loads(path.read_text())["at"] == last.isoformat()  # the person's last word
    hold(state, Held("i", "subject-b", "one-click", first))
    assert len(waiting(state)) == 2


def test_unsubscribing_again_after_a_confirmed_sign_up_is_not_lost(tmp_path: Path) -> None:
    """Held, re-subscribed, then unsubscribed again through the same link while the store
    was still busy: the last request is what counts."""
    state = tmp_path / ".mirage"
    with Store(state / "tracking.sqlite") as store:
        held_then_resubscribed(store, state)
        hold(state, Held("i", "subject-a", "web", datetime.now(UTC) + timedelta(seconds=1)))
        assert record_held(store, state) == 1
        assert store.is_suppressed("a@example.org")


def test_a_request_held_while_its_link_is_being_recorded_is_kept(tmp_path: Path) -> None:
    state = tmp_path / ".mirage"
    with Store(state / "tracking.sqlite") as store:
        store.add_recipients("i", [NewRecipient("a@example.org", None, None, "main",
                                                subject="subject-a")])
        at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        hold(state, Held("i", "subject-a", "one-click", at))
        real = store.resolve_subject

        def meanwhile(subject: str, issue: str | None = None) -> str | None:
            hold(state, Held("i", "subject-a", "web", at + timedelta(minutes=1)))
            return real(subject, issue)

        store.resolve_subject = meanwhile  # type: ignore[method-assign]
        assert record_held(store, state) == 1
        [left] = waiting(state)
        assert json.loads(left.read_text())["source"] == "web"  # recorded next time


def test_the_dry_run_counts_a_held_unsubscribe_as_the_send_will(project: Path,
                                                                 run_cli: RunCli) -> None:
    """The real send records held unsubscribes before it plans; the dry run said "would send"
    to them (found from outside)."""
    assert run_cli("send", SAMPLE_ISSUE, "--yes", "--limit", "1").code == 0
    state = project / ".mirage"
    with Store(state / "tracking.sqlite") as store:
        issue, subject = store._conn.execute(
            "SELECT issue, subject FROM recipients WHERE status = 'pending' ORDER BY id"
        ).fetchone()
    before = run_cli("send", SAMPLE_ISSUE, "--dry-run")
    hold(state, Held(issue, subject, "one-click", datetime.now(UTC)))
    after = run_cli("send", SAMPLE_ISSUE, "--dry-run")
    assert "would send 4" in before.out and "suppressed 0" in before.out, before.out
    assert "would send 3" in after.out and "suppressed 1" in after.out, after.out
    assert waiting(state)  # read, not recorded: a dry run records nothing
