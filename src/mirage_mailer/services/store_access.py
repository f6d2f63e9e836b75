"""How an operation reaches the tracking store, so the same service serves a command (one
operation a process: open, use, close) and ``serve`` (many requests a second: on PostgreSQL a
connection costs a login, so each worker thread keeps one, ``web/stores.py``).

A service that touches the store takes ``stores: StoreAccess | None``; None opens and closes
its own (``OpenEach``), which is what every command passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from mirage_mailer.project.config import Settings
from mirage_mailer.services.journal import settle_all
from mirage_mailer.store import Store, open_store, store_exists


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

    @contextmanager
    def store(self) -> Iterator[Store]:
        with open_store(self.settings.tracking.database) as opened:
            yield opened

    @contextmanager
    def existing(self, *, settle: bool = True) -> Iterator[Store | None]:
        if not store_exists(self.settings.tracking.database):
            yield None
            return
        with open_store(self.settings.tracking.database) as opened:
            if settle:
                settle_all(opened, self.settings.state_dir)  # a killed send's last outcomes
            yield opened


def access(settings: Settings, stores: StoreAccess | None) -> StoreAccess:
    """``stores`` when the caller keeps its own (serve), else one store per operation."""
    return stores if stores is not None else OpenEach(settings)
