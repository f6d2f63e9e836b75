"""Duplicate addresses among a whole pass's rows, found from their hashes once it has ended.

``validate`` warns of every duplicate with where its first row is, so the answer must be
exact; it needs it only when the pass is over. ``SeenAddresses`` answers row by row, as
``send`` needs, and that costs a dict operation a row, spills of its window and a filter
check a key (about 4 s of CPU at a million rows). Here a batch of rows costs a few C-level
passes: each address's 64-bit hash, its row's code and tag, and the addresses' text go to
a private temporary file (deleted when closed, and by the system if the process dies), the
hashes also sorted and cut into ``PARTS`` ranges. At the end each range is sorted alone (a
64th of the hashes in memory at a time), a hash met twice is a candidate, and only the
rows holding a candidate hash are read back and compared by their exact text, in pass
order: two addresses that share a hash are never taken for one another.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import compress
from operator import eq
from typing import NamedTuple

PARTS = 64  # hash ranges sorted one at a time at the end: memory a 64th of the hashes
_WIDTH = 1 << 58  # each range's share of the signed 64-bit hashes (2 ** 64 / PARTS)
_BOUNDS = [-(1 << 63) + part * _WIDTH for part in range(1, PARTS)]


class Duplicate(NamedTuple):
    """A row whose address an earlier row has: its code, its address as given, the first
    row's code, and its tag (what the caller gave with it)."""

    code: int
    email: str
    first: int
    tag: int


@dataclass(frozen=True, slots=True)
class _Batch:
    start: int  # in the file: hashes, codes, tags (int64 each), then the sorted hashes
    count: int
    text: int  # bytes of the addresses' text, after the sorted hashes
    cuts: tuple[int, ...]  # where each range starts among the sorted hashes, and the end


class Duplicates:
    """Give ``add`` every batch of rows in pass order, then ask ``finish``; ``close``."""

    def __init__(self, *, hasher: Callable[[str], int] = hash) -> None:
        self._hash = hasher  # tests give one that collides
        self._file = tempfile.TemporaryFile(prefix="mirage-dups-")  # noqa: SIM115 (close)
        self._end = 0
        self._batches: list[_Batch] = []

    def add(self, emails: list[str], codes: Iterable[int], tags: Iterable[int]) -> None:
        """Rows by address (compared as ``email_key`` does), unique code and tag."""
        keys = map(str.lower, map(str.strip, emails))
        hashes = array("q", map(self._hash, keys))
        ordered = array("q", sorted(hashes))
        cuts = (0, *map(bisect_left, [ordered] * len(_BOUNDS), _BOUNDS), len(ordered))
        text = "\n".join(emails).encode("utf-8", "surrogatepass")
        self._file.seek(self._end)
        for column in (hashes, array("q", codes), array("q", tags), ordered):
            self._file.write(column.tobytes())
        self._file.write(text)
        self._batches.append(_Batch(self._end, len(hashes), len(text), cuts))
        self._end += len(hashes) * 32 + len(text)

    def finish(self, others: Iterable[str] = ()) -> tuple[list[Duplicate], set[str]]:
        """Every row whose address an earlier row has, in pass order; and which of the
        ``others`` (keys) are the key of some row."""
        self._file.flush()
        fd = self._file.fileno()
        others = set(others)
        wanted = {self._hash(key) for key in others}
        candidates: set[int] = set()
        for part in range(PARTS):
            column = array("q")
            for batch in self._batches:
                first, end = batch.cuts[part], batch.cuts[part + 1]
                if end > first:
                    column.frombytes(os.pread(fd, (end - first) * 8,
                                              batch.start + (3 * batch.count + first) * 8))
            hashes = sorted(column)
            del column
            candidates.update(compress(hashes, map(eq, hashes, hashes[1:])))
            candidates.update(wanted.intersection(hashes))
        met: dict[str, int] = {}  # key -> its first row's code, for candidate rows only
        found: list[Duplicate] = []
        for batch in self._batches:
            stored = array("q", os.pread(fd, batch.count * 8, batch.start))
            hits = list(compress(range(batch.count), map(candidates.__contains__, stored)))
            if not hits:
                continue
            codes = array("q", os.pread(fd, batch.count * 8, batch.start + batch.count * 8))
            tags = array("q", os.pread(fd, batch.count * 8, batch.start + batch.count * 16))
            emails = os.pread(fd, batch.text, batch.start + batch.count * 32).decode(
                "utf-8", "surrogatepass").split("\n")
            for at in hits:
                email, code = emails[at], codes[at]
                first = met.setdefault(email.strip().lower(), code)
                if first != code:
                    found.append(Duplicate(code, email, first, tags[at]))
        return found, {key for key in others if key in met}

    def close(self) -> None:
        self._file.close()
