"""Threads that a forked list reader may ignore.

Why: the list reader child (``project/list_worker.py``) is forked only when no other thread
runs, since another thread may hold a lock the child would need. A thread that only steps
SQLite statements (the staging thread on the store's connection, the checkpoint on one of
its own) holds no lock the child takes (the child never touches SQLite; glibc's allocator is
fork-safe), so it registers here and does not stop a long list from being read on the
second core.
"""

from __future__ import annotations

import threading
import weakref

_ignorable: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def ignorable_by_forks(thread: threading.Thread) -> threading.Thread:
    """Mark ``thread`` as holding no lock that a forked list reader needs."""
    _ignorable.add(thread)
    return thread


def other_threads() -> int:
    """Running threads besides the caller's that a fork must not ignore."""
    me = threading.current_thread()
    return sum(1 for t in threading.enumerate()
               if t is not me and t not in _ignorable)
