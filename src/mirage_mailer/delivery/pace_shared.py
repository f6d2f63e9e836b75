"""The pacer's memory shared by the sending processes of one send (``PaceState``).

Why: processes pacing themselves apart each learnt a fraction of a throttling relay's pace
(0.04 R of a 500 msg/s token bucket, measured), and a configured rate could only be split
between them, never held for the sum. So the parent creates one ``SharedState`` before it
forks; every process runs the pacer's own code over it (``delivery/pacer.py``) and the sum
is paced as one process paces itself.

How: the fields are doubles in a ``memfd`` mapped ``MAP_SHARED`` (inherited through
``fork``), the successes and the hourly cap's starts are rings in the same memory, and each
step of the pacer holds a POSIX record lock (``lockf``) on that file. The kernel drops such a
lock when its holder dies, so a sending process killed with SIGKILL cannot block its
siblings; what it may leave behind is one step half done (a field or a ring's length not yet
written), which can skew the pace for a moment but never stops or crashes the others: every
field stays a number, every index stays inside its ring, and an open measurement is marked
open only once its fields are written. The clock must be one that every process shares:
``time.monotonic``.

Linux only, as the sending processes are.
"""

from __future__ import annotations

import bisect
import fcntl
import math
import mmap
import os
from typing import Any

from mirage_mailer.delivery.pace_state import SUCCESS_CAPACITY, TimeLog

_CELL = 8  # bytes: every field and every instant is a double
_NONE = math.nan  # how an unset optional field is kept


class _Field:
    """A double at ``index`` of the shared cells; ``kind`` float, int, or optional float."""

    def __init__(self, index: int, kind: str = "float") -> None:
        self.index = index
        self.kind = kind

    def __get__(self, obj: SharedState | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj._cells[self.index]
        if self.kind == "int":
            return int(value)
        if self.kind == "optional" and value != value:  # NaN: unset
            return None
        return value

    def __set__(self, obj: SharedState, value: float | None) -> None:
        obj._cells[self.index] = _NONE if value is None else float(value)


class SharedLog:
    """A ``TimeLog`` as a ring of instants in shared memory. When full, the oldest instant
    goes: the learner looks back about a minute, which 65,536 successes cover up to ~1,000
    msg/s (beyond, a silence's rate is read over the ring's shorter span: still right);
    the hourly cap's ring holds exactly its limit."""

    def __init__(self, cells: memoryview[float], head: int, offset: int, capacity: int) -> None:
        self._cells = cells
        self._head = head  # cells[head]: the oldest's position; cells[head + 1]: the length
        self._offset = offset
        self.capacity = capacity

    def _at(self, i: int) -> float:
        """The ``i``-th instant, oldest first."""
        head = int(self._cells[self._head])
        return self._cells[self._offset + (head + i) % self.capacity]

    def __len__(self) -> int:
        return int(self._cells[self._head + 1])

    def __getitem__(self, i: int) -> float:  # for bisect
        return self._at(i)

    def append(self, t: float) -> None:
        if self.capacity == 0:
            return
        cells, head = self._cells, int(self._cells[self._head])
        size = int(cells[self._head + 1])
        if size == self.capacity:
            head = (head + 1) % self.capacity
            cells[self._head] = head
            size -= 1
        cells[self._offset + (head + size) % self.capacity] = t
        cells[self._head + 1] = size + 1

    def drop_until(self, edge: float) -> None:
        cells = self._cells
        head, size = int(cells[self._head]), int(cells[self._head + 1])
        while size and cells[self._offset + head] <= edge:
            head = (head + 1) % self.capacity
            size -= 1
        cells[self._head], cells[self._head + 1] = head, size

    def oldest(self) -> float:
        return self._at(0)

    def count(self, start: float, end: float) -> int:
        return bisect.bisect_right(self, end, 0, len(self)) - bisect.bisect_right(
            self, start, 0, len(self))


class SharedState:
    """The pacer's memory in one shared mapping, locked per step; see the module docstring.

    ``per_hour``: the hourly cap the pacers will hold (its ring keeps that many starts).
    Create it in the parent, before forking; ``close`` it there once every process exited.
    """

    next_start = _Field(0)
    waited = _Field(1)
    rate = _Field(2, "optional")
    throttles = _Field(3, "int")
    cuts = _Field(4, "int")
    last_success = _Field(5, "optional")
    hold_until = _Field(6)
    last_probe = _Field(7)
    m_start = _Field(8, "optional")
    m_before = _Field(9)
    m_length = _Field(10)
    m_last_refusal = _Field(11)
    m_successes = _Field(12, "int")
    m_refusals = _Field(13, "int")
    _SUCCESS_RING = 14  # head, length
    _START_RING = 16
    _HEADER = 18

    def __init__(self, per_hour: float | None = None) -> None:
        self.per_hour = per_hour
        hourly_capacity = max(1, math.floor(per_hour)) if per_hour else 0
        cells = self._HEADER + SUCCESS_CAPACITY + hourly_capacity
        self._fd = _anonymous_file()
        try:
            os.ftruncate(self._fd, cells * _CELL)  # sparse: pages cost only once written
            self._map = mmap.mmap(self._fd, cells * _CELL)
        except OSError:
            os.close(self._fd)
            raise
        self._cells: memoryview[float] = memoryview(self._map).cast("d")
        self._depth = 0
        for name in ("next_start", "waited", "hold_until", "last_probe"):
            setattr(self, name, -math.inf)
        for name in ("rate", "last_success", "m_start"):
            setattr(self, name, None)
        self._logs = (SharedLog(self._cells, self._SUCCESS_RING, self._HEADER, SUCCESS_CAPACITY),
                      SharedLog(self._cells, self._START_RING, self._HEADER + SUCCESS_CAPACITY,
                                hourly_capacity))
        self.successes: TimeLog = self._logs[0]
        self.starts: TimeLog = self._logs[1]

    def __enter__(self) -> SharedState:
        if self._depth == 0:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Unmap and close (in the process that created it, after the others exited)."""
        if self._fd < 0:
            return
        for log in self._logs:
            log._cells = memoryview(b"").cast("d")
        self._cells.release()
        self._map.close()
        os.close(self._fd)
        self._fd = -1


def _anonymous_file() -> int:
    """A file with no name (``memfd``), so nothing is left on disk whatever happens."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("mirage-pace", os.MFD_CLOEXEC)
    import tempfile

    with tempfile.TemporaryFile() as f:  # pragma: no cover - Linux has memfd_create
        return os.dup(f.fileno())
