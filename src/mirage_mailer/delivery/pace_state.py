"""What the pacer remembers, kept apart from how it decides (``delivery/pacer.py``).

One send in one process keeps it in plain Python objects (``LocalState``). The sending
processes of one send keep a single copy in shared memory (``delivery/pace_shared.py``) so
that they pace as one: the same decisions over the same memory, taken under a lock, hold the
configured rate, the hourly cap and the learnt pace for the sum of the processes exactly as
one process holds them for itself. Both sides offer the fields below; the pacer never knows
which it has.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Protocol

# successes the pacer keeps (about a minute's, see ``AdaptiveSettings.memory``), at most
SUCCESS_CAPACITY = 1 << 16


class TimeLog(Protocol):
    """Instants in the order they happened (successes, or starts for the hourly cap)."""

    def append(self, t: float) -> None: ...
    def drop_until(self, edge: float) -> None:
        """Forget every instant at or before ``edge``."""
    def oldest(self) -> float: ...
    def count(self, start: float, end: float) -> int:
        """How many instants fall in (start, end]."""
    def __len__(self) -> int: ...


class PaceState(Protocol):
    """The pacer's memory; ``with state:`` makes a group of reads and writes one step.

    ``rate``, ``last_success`` and ``m_start`` are None when unset (no learnt pace, no
    success yet, no measurement open).
    """

    next_start: float  # the start grid's next slot
    waited: float  # when the pace last made a connection wait
    rate: float | None  # the learnt pace
    throttles: int
    cuts: int
    last_success: float | None
    hold_until: float
    last_probe: float
    m_start: float | None  # an open measurement: when the relay started refusing ...
    m_before: float  # ... what it accepted per second in the window before
    m_length: float  # ... how long to measure
    m_last_refusal: float
    m_successes: int
    m_refusals: int
    successes: TimeLog
    starts: TimeLog

    def __enter__(self) -> object: ...
    def __exit__(self, *exc: object) -> None: ...


class DequeLog:
    """A ``TimeLog`` in one process's memory: exact, and as long as what it must hold, or
    ``capacity`` instants (then the oldest goes, as in the shared ring)."""

    def __init__(self, capacity: int | None = None) -> None:
        self._items: deque[float] = deque(maxlen=capacity)

    def append(self, t: float) -> None:
        self._items.append(t)

    def drop_until(self, edge: float) -> None:
        items = self._items
        while items and items[0] <= edge:
            items.popleft()

    def oldest(self) -> float:
        return self._items[0]

    def count(self, start: float, end: float) -> int:
        items = self._items
        return bisect.bisect_right(items, end) - bisect.bisect_right(items, start)

    def __len__(self) -> int:
        return len(self._items)


class LocalState:
    """The pacer's memory when one process sends alone; entering it costs nothing."""

    def __init__(self) -> None:
        self.next_start = -math.inf
        self.waited = -math.inf
        self.rate: float | None = None
        self.throttles = 0
        self.cuts = 0
        self.last_success: float | None = None
        self.hold_until = -math.inf
        self.last_probe = -math.inf
        self.m_start: float | None = None
        self.m_before = 0.0
        self.m_length = 0.0
        self.m_last_refusal = 0.0
        self.m_successes = 0
        self.m_refusals = 0
        self.successes: TimeLog = DequeLog(SUCCESS_CAPACITY)
        self.starts: TimeLog = DequeLog()

    def __enter__(self) -> LocalState:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
