"""The claim journal's lines are copied into a shared mapping of its file (no ``write()``):
a line is in the file once copied, even when the process is killed right after; what follows
the last line is zeros, where a reader stops; a line cut while being copied is skipped."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from mirage_mailer.services.journal import Journal, read_journal

ISSUE = "2021-10-partners-meeting"
AT = "2026-11-30T10:00:00.000+00:00"
WHO = "sha256:" + "ab" * 32


def test_lines_copied_before_a_sigkill_are_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "journal" / f"{ISSUE}.log"
    pid = os.fork()
    if pid == 0:  # the sending process: two claims and an outcome, then killed at once
        journal = Journal(path, ISSUE)
        journal.claim(1, WHO, 0, "<a@x>", AT)
        journal.outcome(1, WHO, 0, "sent", 250, "2.0.0 ok", "<a@x>", AT)
        journal.claim(2, WHO, 0, "<b@x>", AT)
        os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert path.stat().st_size >= Journal.SPAN  # left as mapped: its lines, then zeros
    replay = read_journal(path)
    assert replay.issue == ISSUE and replay.skipped == 0
    assert replay.outcomes == [(1, WHO, 0, "sent", 250, "2.0.0 ok", "<a@x>", AT)]
    assert replay.claims == [(2, WHO, 0, "<b@x>", AT)]


@pytest.mark.parametrize("cut", ["front part only", "end before the middle"])
def test_a_line_cut_while_being_copied_is_skipped(tmp_path: Path, cut: str) -> None:
    path = tmp_path / f"{ISSUE}.log"
    journal = Journal(path, ISSUE)
    journal.claim(1, WHO, 0, "<a@x>", AT)
    line = f"c 2 {WHO} 0 {AT} \"<b@x>\"\n".encode()
    start = journal._at
    view = journal._map
    assert view is not None
    if cut == "front part only":  # killed in the middle of an in-order copy
        view[start:start + 30] = line[:30]
    else:  # a copy that wrote its last bytes before its middle ones
        view[start:start + 10] = line[:10]
        view[start + 40:start + len(line)] = line[40:]
    replay = read_journal(path)  # read while mapped, as after a kill at that moment
    assert replay.claims == [(1, WHO, 0, "<a@x>", AT)]
    assert replay.skipped == 1
    journal.close()


def test_the_file_grows_and_a_restart_zeroes_what_the_store_holds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Journal, "SPAN", 256)
    path = tmp_path / f"{ISSUE}.log"
    journal = Journal(path, ISSUE)
    for key in range(1, 41):  # ~6 KB of lines through a file first given 256 bytes
        journal.claim(key, WHO, 0, f"<{key}@x>", AT)
        journal.outcome(key, WHO, 0, "sent", 250, "ok", f"<{key}@x>", AT)
    replay = read_journal(path)
    assert [o[0] for o in replay.outcomes] == list(range(1, 41)) and replay.claims == []
    size = path.stat().st_size
    journal.restart()  # the store has all of it
    assert read_journal(path).outcomes == [] and read_journal(path).skipped == 0
    journal.claim(41, WHO, 0, "<41@x>", AT)
    replay = read_journal(path)
    assert replay.outcomes == [] and replay.claims == [(41, WHO, 0, "<41@x>", AT)]
    assert path.stat().st_size == size  # the blocks are kept for the next batch
    journal.close()
    assert path.read_bytes().count(b"\n") == 2  # closed: cut to its lines
    assert b"\0" not in path.read_bytes()
