"""The project's pace ledger (``.mirage/pace.bin``) with a fake clock: the configured rates
hold across issues, runs and senders side by side, and a damaged file is read safely.

Why: the audit saw ``rate_per_hour: 100`` let 120 messages through in 3.3 s over two issues
of one ``run-due``, and 120 within a minute over a run stopped at 100 and its rerun, and two
``send`` commands each hold ``rate_per_second: 20`` for themselves (~40/s at the relay).
Each pacer below stands for one delivery run (an issue, a rerun, a second sender); they
share nothing but the file.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import pytest
from test_delivery_pacer import Clock

from mirage_mailer.delivery.pace_ledger import SIZE, PaceLedger
from mirage_mailer.delivery.pacer import Pacer

START = 1_700_000_000.0  # a wall-clock instant on a minute's edge


def pacer(path: Path, clock: Clock, *, per_second: float | None = None,
          per_hour: float | None = None, relay: str = "relay.example:587",
          notes: list[str] | None = None) -> Pacer:
    """One delivery run's pacer over the project's ledger, both on the fake clock."""
    ledger = PaceLedger(path, relay, per_second=per_second, per_hour=per_hour, wall=clock,
                        on_notice=None if notes is None else notes.append)
    return Pacer(per_second=per_second, per_hour=per_hour, clock=clock, ledger=ledger)


def fake_clock() -> Clock:
    clock = Clock()
    clock.now = START
    return clock


def test_a_second_issue_of_one_run_waits_for_the_hour_the_first_used(tmp_path: Path) -> None:
    clock, path = fake_clock(), tmp_path / "pace.bin"
    first = pacer(path, clock, per_hour=100)
    assert [first.claim() for _ in range(60)] == [0.0] * 60  # issue one: 60 recipients
    clock.advance(3.0)
    second = pacer(path, clock, per_hour=100)  # issue two of the same run-due
    assert [second.claim() for _ in range(40)] == [0.0] * 40
    wait = second.claim()  # the 101st start within the hour
    assert 3600 - 3 <= wait <= 3600 + 60  # the minute buckets round the hour outward only
    clock.advance(wait)
    assert second.claim() == 0.0


def test_a_rerun_right_after_a_stop_waits_for_the_hour(tmp_path: Path) -> None:
    clock, path = fake_clock(), tmp_path / "pace.bin"
    run = pacer(path, clock, per_hour=100)
    assert all(run.claim() == 0.0 for _ in range(100))
    assert run.claim() > 3500  # the run itself waits: stopped here (Ctrl-C)
    clock.advance(10.0)
    notes: list[str] = []
    rerun = pacer(path, clock, per_hour=100, notes=notes)
    waits = [rerun.claim() for _ in range(3)]
    assert all(w > 3500 for w in waits)
    assert len(notes) == 1 and "100 messages went to relay.example:587" in notes[0]


def test_the_hour_is_counted_per_relay(tmp_path: Path) -> None:
    clock, path = fake_clock(), tmp_path / "pace.bin"
    one = pacer(path, clock, per_hour=2, relay="a:25")
    assert [one.claim() for _ in range(2)] == [0.0, 0.0]
    assert one.claim() > 0
    other = pacer(path, clock, per_hour=2, relay="b:25")
    assert other.claim() == 0.0


def test_two_senders_side_by_side_share_rate_per_second(tmp_path: Path) -> None:
    clock, path = fake_clock(), tmp_path / "pace.bin"
    a, b = pacer(path, clock, per_second=20), pacer(path, clock, per_second=20)
    starts = 0
    for _ in range(2000):  # ten seconds in 5 ms steps, each sender asking every step
        starts += (a.claim() == 0.0) + (b.claim() == 0.0)
        clock.advance(0.005)
    assert 195 <= starts <= 201  # 20 msg/s for the two together, not 20 each


def test_the_file_stays_the_same_size_whatever_was_sent(tmp_path: Path) -> None:
    clock, path = fake_clock(), tmp_path / "pace.bin"
    run = pacer(path, clock, per_hour=1_000_000)
    for _ in range(200):  # three hours and more, a burst every minute
        for _ in range(20):
            assert run.claim() == 0.0
        clock.advance(60.0)
    assert path.stat().st_size == SIZE < 40_000
    assert not [p.name for p in tmp_path.iterdir() if p.name != "pace.bin"]


def _nan_in_a_count(path: Path) -> None:
    """A file of ours whose relay slot holds a NaN count (a torn page after power loss)."""
    cells = bytearray(path.read_bytes())
    first_count = (4 + 10 + 61) * 8  # header, the first slot's name/next/used and stamps
    cells[first_count:first_count + 8] = struct.pack("d", math.nan)
    path.write_bytes(bytes(cells))


@pytest.mark.parametrize("damage", ["short", "zeros", "random", "nan"])
def test_an_unreadable_file_counts_the_hour_as_spent_with_one_warning(
        tmp_path: Path, damage: str) -> None:
    clock, path = fake_clock(), tmp_path / "pace.bin"
    if damage == "nan":
        assert pacer(path, clock, per_hour=100).claim() == 0.0
        _nan_in_a_count(path)
    else:
        path.write_bytes({"short": b"{not ours", "zeros": bytes(SIZE),
                          "random": os.urandom(SIZE)}[damage])
    notes: list[str] = []
    run = pacer(path, clock, per_hour=100, notes=notes)
    wait = run.claim()
    assert 3600 <= wait <= 3660
    assert run.claim() > 3500
    assert len(notes) == 2  # once: the file is unreadable; once: the hour is spent
    assert "unreadable pace state" in notes[0] and str(path) in notes[0]
    assert path.stat().st_size == SIZE  # repaired, so said only once
    clock.advance(wait)
    assert run.claim() == 0.0


def test_an_unreadable_file_holds_back_every_relay_it_had(tmp_path: Path) -> None:
    clock, path = fake_clock(), tmp_path / "pace.bin"
    path.write_bytes(b"\0\0\0")
    assert pacer(path, clock, per_hour=10, relay="a:25").claim() > 3500
    clock.advance(5.0)
    assert pacer(path, clock, per_hour=10, relay="b:25").claim() > 3500


def test_a_future_dated_file_is_counted_as_now_not_forever(tmp_path: Path) -> None:
    clock, path = fake_clock(), tmp_path / "pace.bin"
    clock.now = START + 86_400  # written a day ahead; then the clock was set back
    ahead = pacer(path, clock, per_second=10, per_hour=100)
    for _ in range(100):
        assert ahead.claim() == 0.0
        clock.advance(0.1)
    clock.now = START
    notes: list[str] = []
    run = pacer(path, clock, per_second=10, per_hour=100, notes=notes)
    slot = run.claim()
    assert 0 < slot <= 0.1  # the next slot: a tenth of a second from now, not a day
    clock.advance(slot)
    wait = run.claim()
    assert 3600 <= wait <= 3660  # an hour from now, not a day and an hour
    assert any("dated in the future" in n for n in notes)
    clock.advance(wait)
    assert run.claim() == 0.0


def test_a_ledger_that_cannot_be_kept_warns_and_the_run_paces_alone(
        tmp_path: Path) -> None:
    clock = fake_clock()
    blocked = tmp_path / "file"
    blocked.write_text("")
    notes: list[str] = []
    run = pacer(blocked / "pace.bin", clock, per_hour=2, notes=notes)
    assert [run.claim() for _ in range(2)] == [0.0, 0.0]
    assert run.claim() == pytest.approx(3600)  # this run's own cap still holds
    assert len(notes) == 1 and "cannot be kept" in notes[0]


def test_runs_in_one_process_share_one_descriptor(tmp_path: Path) -> None:
    """``serve`` sends each confirmation mail on a fresh pacer, ``run-due`` each issue: a
    descriptor per ledger would pile up (and closing one drops the process's locks)."""
    clock, path = fake_clock(), tmp_path / "pace.bin"
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        assert pacer(path, clock, per_second=1000).claim() == 0.0
        clock.advance(1.0)
    assert len(os.listdir("/proc/self/fd")) <= before + 2  # the file, and mmap's own copy
