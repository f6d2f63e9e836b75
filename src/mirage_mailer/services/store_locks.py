"""The lock files that keep two runs from claiming the same rows of one tracking store.

Why here: a send lock under each project's ``.mirage/`` let two folders sharing one SQLite
file (``tracking.database`` outside the folder) send the same issue at once, every reader
twice. The send and run-due locks now live with the store (``util.locks.lock_dir``); a
PostgreSQL store needs none for sending (its senders share an issue by leases,
``store/leases.py``), so its locks stay in the folder.
"""

from __future__ import annotations

from pathlib import Path

from mirage_mailer.project.config import Settings
from mirage_mailer.util.locks import STATE_LOCKS, Lock, Locks, lock_dir


def store_lock_dir(settings: Settings) -> Path:
    """Where the locks of the project's store live (``.mirage/locks`` for the default)."""
    return lock_dir(settings.state_dir, settings.tracking.database)


def send_lock_paths(settings: Settings, issue: str) -> list[Path]:
    """The store's send lock of ``issue`` and, when that lies elsewhere, the folder's too:
    the folder's journal replay (``journal.settle_all``) skips an issue whose folder lock is
    held, so a running send must hold it."""
    name = f"send-{issue}.lock"
    paths = [store_lock_dir(settings) / name]
    own = settings.state_dir / STATE_LOCKS / name
    return paths if own.resolve() == paths[0].resolve() else [*paths, own]


def send_lock(settings: Settings, issue: str) -> Locks:
    """Held for a whole send of ``issue`` (``sending.send``), or while it is migrated."""
    return Locks([Lock(path, f"a send of {issue}") for path in send_lock_paths(settings, issue)])


def run_due_lock(settings: Settings) -> Lock:
    """Held for a whole ``run-due``: one cron run at a time on a store, whichever folder."""
    return Lock(store_lock_dir(settings) / "run-due.lock", "run-due")
