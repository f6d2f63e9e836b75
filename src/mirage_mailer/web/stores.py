"""The store for ``serve``'s requests (a ``services.store_access.StoreAccess``, which every
service the routes call takes).

SQLite's connections are cheap (WAL lets a send run beside): one per request, as the command
line does. A PostgreSQL connection costs a login, a server process and three set-up
statements (7 to 8 ms here): each worker thread keeps its own across requests, checked by a
round trip first, so one the server dropped (a restart, an idle timeout) is replaced instead
of failing every request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from mirage_mailer.project.config import Settings
from mirage_mailer.services.journal import journal_roots, settle_all
from mirage_mailer.services.store_access import OpenEach
from mirage_mailer.services.store_locks import store_lock_dir
from mirage_mailer.store import Store, StoreError, open_store, store_exists
from mirage_mailer.store.guard import RECORDS, KeptCheck
from mirage_mailer.util.database import PostgresUrl

log = logging.getLogger(__name__)


def _warn(line: str) -> None:
    """A crashed send's journal settled by a report page: said in the server's log."""
    log.warning("%s", line)


class KeptStores:
    """One PostgreSQL store per worker thread, kept across requests; SQLite as the CLI."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._each = OpenEach(settings, KeptCheck(settings.tracking.database, settings.state_dir),
                              warn=_warn)
        self._local = threading.local()

    @property
    def _postgres(self) -> bool:
        return isinstance(self.settings.tracking.database, PostgresUrl)

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The store for one request, its tables created if missing."""
        if not self._postgres:
            with self._each.store() as fresh:
                yield fresh
            return
        with self._lent(self._alive() or self._open()) as kept:
            yield kept

    @contextmanager
    def existing(self, *, settle: bool = True) -> Iterator[Store | None]:
        """The store, or None while the database holds none (the archive and the reports
        never create one); once it exists, the kept connection answers without asking."""
        if not self._postgres:
            with self._each.existing(settle=settle) as fresh:
                yield fresh
            return
        kept = self._alive()
        if kept is None:
            if not store_exists(self.settings.tracking.database):
                yield None
                return
            kept = self._open()
        with self._lent(kept) as store:
            if settle:  # as report: a killed send's journal
                for line in settle_all(store, self.settings.state_dir, journal_roots(
                        self.settings.state_dir, self.settings.tracking.database),
                        locks=store_lock_dir(self.settings)):
                    _warn(line)
            yield store

    @contextmanager
    def _lent(self, store: Store) -> Iterator[Store]:
        try:
            yield store
        except BaseException:
            self._drop()  # whatever state the connection is in, the next request starts clean
            raise

    def _alive(self) -> Store | None:
        """This thread's kept store after a round trip, or None (none yet, or dropped)."""
        kept: Store | None = getattr(self._local, "store", None)
        if kept is None:
            return None
        try:
            kept.ping()
        except StoreError:
            self._drop()
            return None
        return kept

    def _open(self) -> Store:
        # as the command line does (``store_access``): a lost store is refused, not re-created
        self._each.check(RECORDS)
        store = open_store(self.settings.tracking.database, state_dir=self.settings.state_dir)
        self._local.store = store
        return store

    def _drop(self) -> None:
        kept: Store | None = getattr(self._local, "store", None)
        self._local.store = None
        if kept is not None:
            with suppress(Exception):  # a connection already broken has nothing to close
                kept.close()
