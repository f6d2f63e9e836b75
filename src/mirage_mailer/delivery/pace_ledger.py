"""What a project's sends owe each relay, remembered in ``.mirage/pace.bin`` across issues,
runs and the senders started beside each other on one host.

Why: the pacer's own memory (``delivery/pace_state.py``) lives as long as one delivery run,
so ``rate_per_hour`` started from zero for every issue of a ``run-due`` and for every rerun,
and two ``send`` commands each held ``rate_per_second`` for themselves (audit: 120 messages
in 3.3 s under ``rate_per_hour: 100``; two senders at 19 msg/s each under 20). A provider
counts what reaches it, not what one run sent, so the budget is the project's, per relay.

What is kept, per relay (at most ``SLOTS`` relays; the one idle longest makes room): the
start grid's next slot (wall-clock seconds; ``rate_per_second``) and the starts of the last
hour counted per minute, in a ring of 61 minutes: a fixed 33 KB whatever the rate. The
rolling hour is read over whole minutes, the oldest included, so it may hold a start up to
a minute longer than an hour, never shorter: a quota is never broken, and a wait is at most
a minute longer than it needs to be.

How: as the sending processes' shared pace (``delivery/pace_shared.py``): doubles in a file
mapped ``MAP_SHARED``, each claim one step under a POSIX record lock (``lockf``) that the
kernel drops when its holder dies. A step writes aligned doubles in place, so a process
killed in one leaves a number in every cell, at worst a count booked without its slot. (A
file written anew and renamed per claim costs ~1.5 ms on ext4, which flushes on such a
rename: measured; in place it costs microseconds.)

A file that cannot be read (bad size, header or numbers), or dated in the future (a clock
set back, a copy from another host), is said once and read as the safe choice: the whole
hourly budget spent just now, for every relay it held. A provider that suspends an account
over a broken quota costs more than an hour's wait, and the warning says how to skip the
wait when nothing was sent. A file that cannot be opened at all leaves each run to hold the
rates for itself, with a warning.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import time
from collections.abc import Callable
from pathlib import Path

MAGIC = 1_835_627_105.0  # "mira": the first cell, so a stranger's file is not read as ours
VERSION = 1.0
MINUTE = 60.0
BUCKETS = 61  # the current minute and the 60 before it: the rolling hour, rounded outward
SLOTS = 32  # relays remembered (a config names at most 16)
_CELL = 8
_NAME = 64  # bytes of a relay's name (longer names are hashed)
_HEADER = 4  # magic, version, spent_at (NaN: none), unused
# a slot: name (8 cells), next, last used, then BUCKETS minute stamps and BUCKETS counts
_NEXT, _USED, _STAMPS = 8, 9, 10
_COUNTS = _STAMPS + BUCKETS
_SLOT = _COUNTS + BUCKETS
SIZE = (_HEADER + SLOTS * _SLOT) * _CELL


class PaceLedger:
    """One relay's budget in the project's pace file; ``claim`` books a start or says how
    long to wait. ``wall`` is the wall clock (injected in tests); ``on_notice`` gets each
    kind of warning line once."""

    def __init__(self, path: Path, relay: str, *, per_second: float | None,
                 per_hour: float | None, wall: Callable[[], float] = time.time,
                 on_notice: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.relay = relay
        self.interval = 1.0 / per_second if per_second else None
        self.per_hour = max(1, math.floor(per_hour)) if per_hour else None
        self.wall = wall
        self.on_notice = on_notice
        encoded = relay.encode()
        if len(encoded) > _NAME:
            encoded = hashlib.sha256(encoded).hexdigest().encode()
        self._name = encoded.ljust(_NAME, b"\0")
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._cells: memoryview[float] | None = None
        self._slot = -1  # the cell where this relay's slot begins, once found
        self._booked: int | None = None  # the minute of the last start booked
        self._said: set[str] = set()
        self.broken = False  # the file cannot be used: the run paces on its own

    def claim(self) -> float:
        """Book a start now and return 0, or return the seconds to wait before asking again."""
        if self.broken or (self.interval is None and self.per_hour is None):
            return 0.0
        try:
            if self._fd < 0:
                self._open()
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        except (OSError, ValueError) as exc:
            self._give_up(exc)
            return 0.0
        try:
            return self._step(self.wall())
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def unclaim(self) -> None:
        """Give back the start just booked, which carried no message (the queue was empty by
        the time the pacer let a connection go), so it does not spend the next runs' hour."""
        minute = self._booked
        if minute is None or self._fd < 0 or self._slot < 0:
            return
        self._booked = None
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        except OSError:
            return
        try:
            cells, base = self._cells, self._slot
            assert cells is not None
            i = minute % BUCKETS
            if (self._header_ok(cells) and cells[base + _STAMPS + i] == minute
                    and cells[base + _COUNTS + i] >= 1):
                cells[base + _COUNTS + i] -= 1
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    # -- one step, under the lock -----------------------------------------------------------

    def _step(self, now: float) -> float:
        cells = self._cells
        assert cells is not None
        known = self._slot
        base = self._find(cells, now) if self._header_ok(cells) else -1
        # a slot is checked when first found: what a power loss tore happened before this
        # run, and every later write here is a sane number
        if base < 0 or (base != known and not self._slot_ok(cells, base)):
            self._say("corrupt", f"{self.path}: unreadable pace state; counted as every "
                      "relay's whole hourly budget spent just now, so this send may wait up "
                      "to an hour: delete the file only if nothing went to the relay in the "
                      "last hour")
            self._reset(cells, now)
            base = self._find(cells, now)
        cells[base + _USED] = now
        current = math.floor(now / MINUTE)
        self._bring_back(cells, base, now, current)
        if self.interval is not None and now < cells[base + _NEXT]:
            return cells[base + _NEXT] - now
        if self.per_hour is not None:
            wait = self._hour_wait(cells, base, now, current)
            if wait > 0:
                return wait
        if self.interval is not None:
            grid = cells[base + _NEXT]
            cells[base + _NEXT] = (grid if now - grid <= self.interval / 2 else now) \
                + self.interval
        if self.per_hour is not None:
            i = current % BUCKETS
            if cells[base + _STAMPS + i] != current:
                cells[base + _COUNTS + i] = 0.0
                cells[base + _STAMPS + i] = current
            cells[base + _COUNTS + i] += 1
            self._booked = current
        return 0.0

    def _hour_wait(self, cells: memoryview[float], base: int, now: float, current: int) -> float:
        """Seconds until one more start fits in the rolling hour (0: it fits now)."""
        assert self.per_hour is not None
        stamps = cells[base + _STAMPS:base + _COUNTS].tolist()
        counts = cells[base + _COUNTS:base + _SLOT].tolist()
        oldest = current - BUCKETS
        live = [(m, n) for m, n in zip(stamps, counts, strict=True) if m > oldest and n > 0]
        need = sum(n for _, n in live) - self.per_hour + 1
        if need <= 0:
            return 0.0
        live.sort()
        freed = 0.0
        for minute, count in live:
            freed += count
            if freed >= need:  # this minute leaves the window once it is BUCKETS old
                wait = (int(minute) + BUCKETS) * MINUTE - now
                self._say("hour", f"{self.path.name}: {self.per_hour} messages went to "
                          f"{self.relay} within the last hour (rate_per_hour), by this run "
                          f"or earlier ones; sending resumes at "
                          f"{time.strftime('%H:%M:%S', time.localtime(now + wait))}")
                return max(wait, 0.001)
        return 0.0  # pragma: no cover - the live counts always free ``need``

    def _bring_back(self, cells: memoryview[float], base: int, now: float, current: int) -> None:
        """A slot dated in the future counts its starts as made now (not for as long as the
        clock takes to catch up), and its next slot at most one interval away."""
        interval = self.interval or 0.0
        late = cells[base + _NEXT] > now + interval + MINUTE
        stamps = cells[base + _STAMPS:base + _COUNTS].tolist()
        if not late and max(stamps) <= current:
            return
        ahead = [i for i, m in enumerate(stamps) if m > current]
        self._say("future", f"{self.path}: pace state dated in the future (the clock went "
                  "back, or the file came from another host); its starts are counted as "
                  "made just now")
        if late:
            cells[base + _NEXT] = now + interval
        moved = sum(cells[base + _COUNTS + i] for i in ahead)
        for i in ahead:
            cells[base + _STAMPS + i] = cells[base + _COUNTS + i] = 0.0
        i = current % BUCKETS
        if cells[base + _STAMPS + i] != current:
            cells[base + _COUNTS + i] = 0.0
            cells[base + _STAMPS + i] = current
        cells[base + _COUNTS + i] += moved

    # -- the file ---------------------------------------------------------------------------

    def _open(self) -> None:
        """Map the file, once per process and file: every ledger of the process (one per
        relay and run) shares the mapping, and it is never closed, because closing any
        descriptor of a file drops all the process's record locks on it, a sibling's too."""
        key = (os.getpid(), str(self.path))
        if key not in _OPEN:
            _OPEN[key] = _map(self.path)
        self._fd, self._map, self._cells = _OPEN[key]

    @staticmethod
    def _header_ok(cells: memoryview[float]) -> bool:
        return bool(cells[0] == MAGIC and cells[1] == VERSION
                    and cells[2] not in (math.inf, -math.inf))

    @staticmethod
    def _slot_ok(cells: memoryview[float], base: int) -> bool:
        """The slot's numbers are sane (a torn page after power loss may leave any)."""
        if math.isnan(cells[base + _NEXT]) or not math.isfinite(cells[base + _USED]):
            return False
        return all(0 <= cells[base + _COUNTS + i] < 1e12
                   and math.isfinite(cells[base + _STAMPS + i]) for i in range(BUCKETS))

    def _reset(self, cells: memoryview[float], now: float) -> None:
        """Start over, every relay counted as having spent its hour at ``now``."""
        self._map_zero()
        cells[0], cells[1], cells[2] = MAGIC, VERSION, now
        self._slot = -1

    def _map_zero(self) -> None:
        assert self._map is not None
        self._map[:] = bytes(SIZE)

    def _find(self, cells: memoryview[float], now: float) -> int:
        """This relay's slot; a new one (the idlest's place when all are taken) if none."""
        names = self._map
        assert names is not None
        if self._slot >= 0 and names[self._slot * _CELL:self._slot * _CELL + _NAME] == self._name:
            return self._slot
        idlest, idle_since = -1, math.inf
        for slot in range(SLOTS):
            base = _HEADER + slot * _SLOT
            name = names[base * _CELL:base * _CELL + _NAME]
            if name == self._name:
                self._slot = base
                return base
            used = cells[base + _USED] if name.strip(b"\0") else -math.inf
            if used < idle_since:
                idlest, idle_since = base, used
        base = idlest
        names[base * _CELL:base * _CELL + _NAME] = self._name
        cells[base + _NEXT] = -math.inf
        for i in range(BUCKETS):
            cells[base + _STAMPS + i] = cells[base + _COUNTS + i] = 0.0
        spent = cells[2]
        if self.per_hour is not None and math.isfinite(spent) and spent <= now:
            minute = math.floor(spent / MINUTE)  # its entry went with an unreadable file
            cells[base + _STAMPS + minute % BUCKETS] = minute
            cells[base + _COUNTS + minute % BUCKETS] = self.per_hour
            cells[base + _NEXT] = spent + (self.interval or 0.0)
        cells[base + _USED] = now
        self._slot = base
        return base

    def _give_up(self, exc: BaseException) -> None:
        self.broken = True
        self._say("broken", f"{self.path}: the pace state cannot be kept ({exc}); this run "
                  "holds rate_per_second and rate_per_hour for itself only")

    def _say(self, kind: str, line: str) -> None:
        if kind not in self._said:
            self._said.add(kind)
            if self.on_notice is not None:
                self.on_notice(line)


_OPEN: dict[tuple[int, str], tuple[int, mmap.mmap, memoryview[float]]] = {}


def _map(path: Path) -> tuple[int, mmap.mmap, memoryview[float]]:
    """The file's descriptor and mapping; a new file gets its header, one of another size
    is marked unreadable (said in the next step, under the lock)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            fresh = size == 0  # just created (or a creator died before writing)
            if size != SIZE:
                os.ftruncate(fd, SIZE)
            mapped = mmap.mmap(fd, SIZE)
            cells = memoryview(mapped).cast("d")
            if fresh:
                cells[0], cells[1], cells[2] = MAGIC, VERSION, math.nan
            elif size != SIZE:
                cells[0] = 0.0  # not our size: not ours
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)
    except BaseException:
        os.close(fd)
        raise
    return fd, mapped, cells
