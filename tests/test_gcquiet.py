"""The cycle collector held back during a bulk pass, and put back after (util/gcquiet.py)."""

from __future__ import annotations

import gc
import weakref

from mirage_mailer.util.gcquiet import BULK_THRESHOLD, bulk_pass


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_a_pass_freezes_and_raises_the_threshold_then_puts_both_back() -> None:
    before = gc.get_threshold()
    with bulk_pass():
        assert gc.get_threshold()[0] == BULK_THRESHOLD
        assert gc.get_threshold()[1:] == before[1:]
        assert gc.get_freeze_count() > 0
        with bulk_pass():  # nested: the outer pass keeps its settings
            pass
        assert gc.get_threshold()[0] == BULK_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_settings_come_back_when_the_pass_fails() -> None:
    before = gc.get_threshold()
    try:
        with bulk_pass():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_made_during_a_pass_are_still_collected() -> None:
    """Memory stays bounded: the collector still runs, only less often."""
    with bulk_pass():
        ref = weakref.ref(_Node())
        assert ref() is not None
        # enough allocations for a young collection
        keep: list[list[int]] = [[] for _ in range(BULK_THRESHOLD * 3)]
        del keep
        assert ref() is None
