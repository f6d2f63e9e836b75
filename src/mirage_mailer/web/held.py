"""``serve``'s side of held unsubscribes (``services.held_unsubscribes``): a thread records
them as soon as the store answers again, so a one-click unsubscribe refused by a busy store
takes effect within seconds of the lock's end, not at the next send."""

from __future__ import annotations

import logging
import threading

from mirage_mailer.project.config import Settings
from mirage_mailer.services.held_unsubscribes import record_held, waiting
from mirage_mailer.services.store_access import StoreAccess
from mirage_mailer.store.errors import StoreError

log = logging.getLogger(__name__)

INTERVAL = 5.0  # seconds between tries while something is held (a try waits out the lock)


class HeldRetry:
    """One daemon thread per app: tries at start, then every ``INTERVAL`` while files wait."""

    def __init__(self, settings: Settings, stores: StoreAccess) -> None:
        self.settings = settings
        self.stores = stores
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="held-unsubscribes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)  # a try waiting on a lock ends with the process

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            if waiting(self.settings.state_dir):
                try:
                    with self.stores.store() as store:
                        recorded = record_held(store, self.settings.state_dir)
                except StoreError as exc:
                    if not failing:  # one line per busy spell, not one per try
                        log.warning("held unsubscribes wait for the store: %s", exc)
                    failing = True
                except Exception as exc:  # a bug: say it once per try, keep serving
                    log.error("cannot record held unsubscribes: %s: %s",
                              type(exc).__name__, exc)
                else:
                    failing = False
                    log.info("recorded %d unsubscribe(s) held while the store was busy",
                             recorded)
            self._stop.wait(INTERVAL)
