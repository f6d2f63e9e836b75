"""The send path's cheap per-message records keep the exact text of their slower originals:
journal lines, the store's time stamps, and message ids unique across sending processes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mirage_mailer.compose.message import MessageFactory
from mirage_mailer.services.journal import Journal, read_journal
from mirage_mailer.store import open_store
from mirage_mailer.store import recipients as recipients_module

TRICKY = ["<a.b@example.org>", "é\"\\quoted", "NUL\x00 tab\t line\u2028sep", "", "ü" * 50]


@pytest.mark.parametrize("text", TRICKY)
def test_journal_lines_are_json_dumps_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "j.log"
    journal = Journal(path, "issue")
    journal.claim(7, "sha256:ab", 2, text, "2026-11-30T20:00:00.123+00:00")
    journal.outcome(7, "sha256:ab", 2, "sent", 250, text, text, "2026-11-30T20:00:01.000+00:00")
    journal.close()
    lines = path.read_bytes().decode().split("\n")
    assert lines[1] == f"c 7 sha256:ab 2 2026-11-30T20:00:00.123+00:00 {json.dumps(text)}"
    assert lines[2] == ("o 7 sha256:ab 2 2026-11-30T20:00:01.000+00:00 sent 250 "
                        + json.dumps([text, text], ensure_ascii=False))
    replay = read_journal(path)
    assert replay.outcomes == [(7, "sha256:ab", 2, "sent", 250, text, text,
                                "2026-11-30T20:00:01.000+00:00")]


@pytest.mark.parametrize("now", [1_800_000_000.0, 1_800_000_000.9999, 1_800_000_059.5004,
                                 1_700_000_123.001, 1_800_000_000.0999,
                                 1_800_000_000.9999997])
def test_stamp_is_the_stores_time_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       now: float) -> None:
    with open_store(tmp_path / "t.sqlite") as store:
        monkeypatch.setattr(recipients_module.time, "time", lambda: now)
        expected = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        assert store.stamp() == expected
        assert store.stamp() == expected  # the date part from its once-a-second cache


def test_message_ids_differ_across_forked_processes(tmp_path: Path) -> None:
    """Sending processes are forked from one factory: their ids must not repeat."""
    new_id = MessageFactory.new_message_id
    factory = MessageFactory.__new__(MessageFactory)
    factory.issue_id, factory.domain, factory._id_part = "issue", "example.org", "issue"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, "\n".join(new_id(factory) for _ in range(200)).encode())
        os._exit(0)
    os.close(write)
    mine = [new_id(factory) for _ in range(200)]
    with os.fdopen(read, "rb") as pipe:
        theirs = pipe.read().decode().split("\n")
    os.waitpid(pid, 0)
    assert len(set(mine) | set(theirs)) == 400
    assert all(m.startswith("<") and m.endswith(".issue@example.org>") for m in mine)


def test_a_batchs_events_say_code_and_reply(tmp_path: Path) -> None:
    """An outcome's event detail is "<code> <reply>", or the reply alone without a code."""
    from mirage_mailer.store import NewRecipient, hashed_key

    with open_store(tmp_path / "t.sqlite") as store:
        store.add_recipients("i", [NewRecipient(f"{n}@example.org", None, "en", "main")
                                   for n in "ab"])
        ids = [r.id for r in store.iter_pending("i")]
        at = store.stamp()
        store.record_batch([
            (ids[0], hashed_key("a@example.org"), 0, "sent", 250, "2.0.0 Ok", "<1@x>", at),
            (ids[1], hashed_key("b@example.org"), 0, "unknown", None, "no reply", "<2@x>", at)])
        assert [(e["email"], e["kind"], e["detail"]) for e in store.events("i")][-2:] == [
            ("a@example.org", "sent", "250 2.0.0 Ok"),
            ("b@example.org", "unknown", "no reply")]
