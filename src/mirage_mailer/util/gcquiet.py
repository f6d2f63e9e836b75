"""Python's cycle collector held back while one pass over a long list runs.

Why: planning a million rows makes several million short-lived containers (rows, decisions,
tuples off the reader's pipe) that reference counting frees at once. The cycle collector
still runs every 700 allocations, and each of its full runs walks every long-lived object
of the process (imported modules, compiled templates: about 35 ms a run here). At a million
rows that was 2.0 s of the main process's 15.6 s of CPU (``docs/design.md``).

Freezing what exists when the pass starts takes it out of every later run, and a higher
first threshold makes runs rarer; cycles made during the pass are still collected, so
memory stays bounded. Everything is put back as it was when the pass ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLD = 50_000  # allocations between two young collections (CPython's default: 700)

_lock = threading.Lock()
_depth = 0  # passes running now: only the outermost freezes and puts back


@contextmanager
def bulk_pass() -> Iterator[None]:
    """Collect cycles rarely, and never walk what existed before, until the block ends."""
    global _depth
    with _lock:
        _depth += 1
        outermost = _depth == 1
        if outermost:
            saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(BULK_THRESHOLD, *saved[1:])
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if outermost:
                gc.set_threshold(*saved)
                gc.unfreeze()
