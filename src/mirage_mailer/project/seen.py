"""The addresses met in one pass over the lists, exact, in memory that does not grow with them.

A duplicate is warned with where both rows are, so the detector must never miss one and
never invent one. The latest keys sit in a dict; when it is full they move to sorted runs of
fixed-size records in a private temporary file (deleted when closed, and by the system if
the process dies): the 64-bit hash of each key, where it was first met, and where its
exact text is. A fixed filter answers "never met" for almost every new key without reading the
file; a key it lets through is looked up by bisection in each run and confirmed against the
exact text, so two keys sharing a hash are never taken for one another.

Why not a B-tree (a temporary SQLite table, before): moving 250,000 keys into it cost 1.1 to
1.5 s of CPU, most of it the inserts; sorting and writing a run costs a fraction of that
(measured in docs/design.md), and lookups are rare (duplicates and the filter's false alarms).
"""

from __future__ import annotations

import os
import tempfile
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from operator import and_, eq, gt, methodcaller, rshift
from typing import IO

# int64 columns of a run: the hashes in order, then by the hash's place in that order the
# key's place in the window; by the key's place: its code, its text's offset and length
_COLUMNS = 5
_HASH, _PLACE, _CODE, _OFFSET, _LENGTH = range(_COLUMNS)
_ENCODE = methodcaller("encode", "utf-8", "surrogatepass")  # any str, whole
_BLOCK = 64  # hashes read at once; the first hash of every block stays in memory
_SLOT_MASK = (1 << 24) - 1  # SeenAddresses._FILTER_SLOTS - 1
_SECOND = 40  # the second slot is taken from the hash's bits 40 to 63


def _slots(hashes: Iterable[int], shift: int) -> Iterator[int]:
    """Filter slots of the hashes, from their bits ``shift`` on (a C-level pass)."""
    if shift:
        hashes = map(rshift, hashes, repeat(shift))
    return map(and_, hashes, repeat(_SLOT_MASK))


@dataclass(frozen=True, slots=True)
class _Run:
    """One spill at ``start`` in the file: ``count`` keys as five int64 columns one after
    the other (``_COLUMNS``: the hashes sorted, each one's key's place in the window, and
    by that place the codes, text offsets and text lengths), then the text."""

    start: int
    count: int
    firsts: array[int]  # the hash of each block's first key (1/64 of the hashes)

    def column(self, fd: int, column: int, index: int) -> int:
        at = self.start + (column * self.count + index) * 8
        return int(array("q", os.pread(fd, 8, at))[0])


class SeenAddresses:
    """Keys (lowercased addresses) met in one pass over the lists, with a number saying where
    each was first met.

    The latest ``window`` keys sit in a dict (about 170 bytes each: a 250,000-key window is
    ~42 MB). When it is full they move into a sorted run in the temporary file and into a
    fixed 16 MB filter (two byte slots a key), so a list of any length costs at most the
    window, the filter and 1/64 of each moved key's hash; a key the filter has never seen
    needs no look-up, so only duplicates (and the filter's rare false alarms) read the file.

    ``prefetch`` a batch's keys before calling ``get`` or ``first`` for them.
    """

    # 16 MB, a byte a slot (set and read by C-level ``map`` passes, where setting bits
    # was a Python loop a key: 0.25 s a spill); two slots a key: at a million keys about
    # 1 false alarm in 80 once a million keys moved, each a few reads of the file
    _FILTER_SLOTS = 1 << 24

    def __init__(self, window: int = 250_000, *,
                 hasher: Callable[[str], int] = hash) -> None:
        self._window = window
        self._hash = hasher  # per process, which is all a private file needs; tests collide
        self._recent: dict[str, int] = {}
        self._known: dict[str, int] = {}  # the last prefetch's answers from the runs
        self._file: IO[bytes] | None = None  # from the first spill on
        self._end = 0  # bytes written to the file
        self._runs: list[_Run] = []
        self._filter = bytearray()

    def prefetch(self, keys: Iterable[str]) -> None:
        """Look up the keys of the next batch that may have moved into the runs."""
        if len(self._recent) >= self._window:
            self._spill()
        if self._file is None:
            return
        self._known = {}
        recent = self._recent
        keys = [key for key in dict.fromkeys(keys) if key not in recent]
        hashes = list(map(self._hash, keys))
        for key, h in compress(zip(keys, hashes, strict=True), self._hits(hashes)):
            found = self._lookup(key, h)
            if found is not None:
                self._known[key] = found

    def _hits(self, hashes: list[int]) -> Iterator[bool]:
        """Whether each hash's two filter slots are both set (C-level passes)."""
        get = self._filter.__getitem__
        return map(and_, map(get, _slots(hashes, 0)), map(get, _slots(hashes, _SECOND)))

    def get(self, key: str) -> int | None:
        """Where ``key`` was first met, or None: not yet (or not prefetched from the runs)."""
        found = self._recent.get(key)
        return self._known.get(key) if found is None else found

    def add(self, key: str, code: int) -> None:
        if self.get(key) is None:
            self._recent[key] = code

    def first(self, key: str, code: int) -> int | None:
        """``get``, then ``add`` when it answered None, in one call and one dict operation
        (once per list row: two calls were a twentieth of validate's time)."""
        if self._known:
            known = self._known.get(key)
            if known is not None:
                return known
        recent = self._recent
        size = len(recent)
        found = recent.setdefault(key, code)
        return None if len(recent) != size else found

    def news(self, keys: list[str], start: int) -> list[bool]:
        """Whether each key of a prefetched batch is met here for the first time, in order
        (a key twice in the batch is new once); the new ones are remembered as met at
        ``start``, ``start + 1``, ... (``first`` for a batch, in C-level passes: a call a
        key was most of planning a first send's decisions)."""
        codes = range(start, start + len(keys))
        fresh = list(map(eq, map(self._recent.setdefault, keys, codes), codes))
        if self._known:  # met before the last spill: never new (its setdefault is harmless)
            fresh = list(map(gt, fresh, map(self._known.__contains__, keys)))
        return fresh

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _spill(self) -> None:
        """The window, sorted by hash, as one run at the file's end; the filter learns it.

        Built column by column with C-level passes (``map``, ``sorted``, ``array``):
        nothing is a Python loop. Only the hashes are put in hash order; the codes and the
        text stay in the window's order, found through each hash's place in it (``order``):
        gathering them in hash order read memory at random, half a spill's time."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="mirage-seen-")  # noqa: SIM115 (close)
            self._filter = bytearray(self._FILTER_SLOTS)
        keys = list(self._recent)
        hashes = list(map(self._hash, keys))
        put = self._filter.__setitem__
        for shift in (0, _SECOND):
            deque(map(put, _slots(hashes, shift), repeat(1)), maxlen=0)
        order = sorted(range(len(keys)), key=hashes.__getitem__)  # stable
        sorted_hashes = array("q", map(hashes.__getitem__, order))
        del hashes  # each step drops what it no longer needs: the window is the bound
        joined = "".join(keys)
        if joined.isascii():  # a character is a byte (a flag of the string: no pass)
            text = joined.encode("ascii")
            lengths = array("q", map(len, keys))
        else:
            text = joined.encode("utf-8", "surrogatepass")
            lengths = array("q", map(len, map(_ENCODE, keys)))
        del joined
        count = len(keys)
        del keys
        start = self._end
        texts = start + count * _COLUMNS * 8  # the keys' text follows the columns
        file = self._file
        file.seek(start)
        file.write(sorted_hashes.tobytes())
        file.write(array("q", order).tobytes())
        del order
        file.write(array("q", self._recent.values()).tobytes())
        file.write(array("q", accumulate(lengths, initial=texts))[:-1].tobytes())
        file.write(lengths.tobytes())
        file.write(text)
        file.flush()
        self._runs.append(_Run(start, count, sorted_hashes[::_BLOCK]))
        self._end = file.tell()
        self._recent.clear()
        self._known = {}

    def _lookup(self, key: str, h: int) -> int | None:
        """Where ``key`` was first met according to the runs (the oldest run first)."""
        assert self._file is not None
        fd = self._file.fileno()
        text = _ENCODE(key)
        for run in self._runs:
            block = max(bisect_left(run.firsts, h) - 1, 0)
            while block * _BLOCK < run.count:
                first = block * _BLOCK
                count = min(_BLOCK, run.count - first)
                hashes = array("q", os.pread(fd, count * 8, run.start + first * 8))
                index = bisect_left(hashes, h)
                while index < count and hashes[index] == h:
                    place = run.column(fd, _PLACE, first + index)
                    code, offset, length = (run.column(fd, n, place)
                                            for n in (_CODE, _OFFSET, _LENGTH))
                    if os.pread(fd, length, offset) == text:
                        return code
                    index += 1
                if index < count:  # a greater hash: this run has no more of h
                    break
                block += 1
        return None


