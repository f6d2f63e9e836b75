"""How an operation reaches the tracking store, so the same service serves a command (one
operation a process: open, use, close) and ``serve`` (many requests a second: on PostgreSQL a
connection costs a login, so each worker thread keeps one, ``web/stores.py``).

A service that touches the store takes ``stores: StoreAccess | None``; None opens and closes
its own (``OpenEach``), which is what every command passes but ``report``: it gives one with
``warn``, so a crashed send's journal found lost, damaged or foreign while settling is said
(on stderr) as ``send`` says it, not only kept aside; ``serve`` logs them.

Every opening first asks ``store.guard.check_kept``: in a project that has sent, a missing or
emptied store is refused (exit 2; on the web a 503, and a one-click unsubscribe held on disk)
rather than created or filled anew, since restoring the backup would drop what went into it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from mirage_mailer.project.config import Settings
from mirage_mailer.services.journal import journal_roots, settle_all
from mirage_mailer.services.store_locks import store_lock_dir
from mirage_mailer.store import Store, open_store, store_exists
from mirage_mailer.store.guard import READS, RECORDS, check_kept


class StoreAccess(Protocol):
    """Where a service gets the store for one operation; it never closes what it is given."""

    def store(self) -> AbstractContextManager[Store]:
        """The store, its tables created if missing (writers, and readers that may create)."""
        ...

    def existing(self, *, settle: bool = True) -> AbstractContextManager[Store | None]:
        """The store, or None when there is none yet: reports and the archive never create
        one. With ``settle``, a killed send's journal is replayed first, as ``report`` does."""
        ...


@dataclass(frozen=True)
class OpenEach:
    """A store opened for each operation and closed after it: the command line's way."""

    settings: Settings
    kept: Callable[[str], None] | None = None  # serve's ``KeptCheck``; else ``check_kept``
    warn: Callable[[str], None] | None = None  # told settling's warnings; else they are lost

    def check(self, outcome: str) -> None:
        """Refuse a store that lost its memory (``store.guard``), before anything opens it."""
        if self.kept is not None:
            self.kept(outcome)
        else:
            check_kept(self.settings.tracking.database, self.settings.state_dir, outcome)

    @contextmanager
    def store(self) -> Iterator[Store]:
        self.check(RECORDS)
        with open_store(self.settings.tracking.database,
                        state_dir=self.settings.state_dir) as opened:
            yield opened

    @contextmanager
    def existing(self, *, settle: bool = True) -> Iterator[Store | None]:
        self.check(READS)
        if not store_exists(self.settings.tracking.database):
            yield None
            return
        with open_store(self.settings.tracking.database,
                        state_dir=self.settings.state_dir) as opened:
            if settle:
                said = settle_all(opened, self.settings.state_dir, journal_roots(  # a killed
                    self.settings.state_dir, self.settings.tracking.database),  # send's
                    locks=store_lock_dir(self.settings))
                if self.warn is not None:
                    for line in said:
                        self.warn(line)
            yield opened


def access(settings: Settings, stores: StoreAccess | None) -> StoreAccess:
    """``stores`` when the caller keeps its own (serve), else one store per operation."""
    return stores if stores is not None else OpenEach(settings)
