"""The duplicate detector (``SeenAddresses``): it answers exactly as a plain dict would,
whatever the window, however often its keys moved to the temporary file, and when keys
share a hash (a duplicate is warned with both rows' places, so none may be invented)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import pytest

from mirage_mailer.project.seen import SeenAddresses


def test_seen_addresses_answer_as_a_plain_dict_would_whatever_the_window() -> None:
    """Keys that moved to the temporary table (a tiny window makes them move often) are found
    again with where they were first met; keys never met are not."""
    rng = random.Random(7)
    universe = [f"reader{n}@example.org" for n in range(400)]
    for window in (1, 5, 64, 10**9):
        seen = SeenAddresses(window=window)
        reference: dict[str, int] = {}
        code = 0
        try:
            for _ in range(300):
                batch = [rng.choice(universe) for _ in range(rng.randrange(1, 30))]
                seen.prefetch(batch)
                for key in batch:
                    assert seen.get(key) == reference.get(key), (window, key)
                    code += 1
                    if key not in reference:
                        reference[key] = code
                        seen.add(key, code)
                    seen.add(key, -5)  # adding a key met before changes nothing
        finally:
            seen.close()
        assert len(reference) > 300  # most of the universe was met, and met again


def test_first_answers_and_remembers_as_get_then_add_would() -> None:
    """``first`` (one call per list row) answers as ``get`` did and remembers the key only when
    it was new, whether the earlier sighting is in the window or moved to the table."""
    rng = random.Random(11)
    universe = [f"Reader{n}@example.org".lower() for n in range(300)]
    for window in (1, 7, 10**9):
        seen = SeenAddresses(window=window)
        reference: dict[str, int] = {}
        try:
            for code in range(2_000):
                if code % 25 == 0:
                    batch = [rng.choice(universe) for _ in range(25)]
                    seen.prefetch(batch)
                key = batch[code % 25]
                assert seen.first(key, code) == reference.get(key), (window, key)
                reference.setdefault(key, code)
                assert seen.get(key) == reference[key]
        finally:
            seen.close()


def _replay(seen: SeenAddresses, keys: list[str], batch: int) -> dict[str, int]:
    """Feed ``keys`` as the planner does (prefetch a batch, then ``first`` per key) and check
    every answer against a plain dict; returns the reference."""
    reference: dict[str, int] = {}
    for start in range(0, len(keys), batch):
        part = keys[start:start + batch]
        seen.prefetch(part)
        for offset, key in enumerate(part):
            code = start + offset
            assert seen.first(key, code) == reference.get(key), key
            reference.setdefault(key, code)
    return reference


COLLIDING: dict[str, Callable[[str], int]] = {
    "one hash for all": lambda key: 0,
    "three hashes": lambda key: len(key) % 3,
    "negative, high bits": lambda key: -(1 << 62) + len(key) % 5,
}


@pytest.mark.parametrize("hasher", COLLIDING.values(), ids=COLLIDING.keys())
@pytest.mark.parametrize("window", [1, 3, 70, 200])
def test_keys_sharing_a_hash_are_told_apart_by_their_text(
        hasher: Callable[[str], int], window: int) -> None:
    """With every key on a handful of hashes (runs full of equal hashes across blocks), a key
    is found only under its own text: never a false duplicate, never a missed one."""
    rng = random.Random(window)
    universe = [f"reader{n}@example.org" for n in range(300)]
    universe += ["zoë@παράδειγμα.ελ", "(empty address at lists/a.csv:7)", "a\nb@x.org", "\ud800@x"]
    keys = [rng.choice(universe) for _ in range(1_000)]
    seen = SeenAddresses(window=window, hasher=hasher)
    try:
        reference = _replay(seen, keys, batch=rng.randrange(1, 40))
        for key in universe:  # and asked again at the end, met or not
            seen.prefetch([key])
            assert seen.get(key) == reference.get(key)
    finally:
        seen.close()


def test_a_long_pass_with_many_runs_matches_a_dict() -> None:
    """Tens of thousands of keys through a small window: dozens of runs in the file, each
    searched by its blocks' first hashes; the window is all that stays in the dict."""
    rng = random.Random(3)
    keys = [f"r{rng.randrange(40_000)}@example.org" for _ in range(60_000)]
    seen = SeenAddresses(window=1_000)
    try:
        reference = _replay(seen, keys, batch=500)
        assert len(seen._runs) > 20
        assert len(seen._recent) <= 1_000 + 500
        assert len(reference) < len(keys)  # there were duplicates to find
    finally:
        seen.close()
    assert seen._file is None


def _blake(key: str) -> int:
    """A hash that is the same in every process (``hash`` of a str is not), signed 64-bit."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def test_the_filter_keeps_keys_never_met_away_from_the_file() -> None:
    """Once keys have moved to the file, a key never met is answered by the filter alone:
    the file is read only for its rare false alarms (two byte slots a key, set and read by
    C-level passes), while every key that moved is still let through and found."""
    met = [f"met{n}@example.org" for n in range(20_000)]
    seen = SeenAddresses(window=2_500, hasher=_blake)
    looked: list[str] = []
    original = seen._lookup

    def counted(key: str, h: int) -> int | None:
        looked.append(key)
        return original(key, h)

    try:
        reference = _replay(seen, met, batch=500)
        assert len(seen._runs) >= 7
        seen._lookup = counted  # type: ignore[method-assign]
        for start in range(0, 20_000, 500):
            seen.prefetch([f"new{n}@example.org" for n in range(start, start + 500)])
        assert len(looked) <= 5  # about one false alarm is expected here
        looked.clear()
        moved = met[:500]  # all of them in the oldest run
        seen.prefetch(moved)
        assert looked == moved
        assert [seen.get(key) for key in moved] == [reference[key] for key in moved]
    finally:
        seen.close()
