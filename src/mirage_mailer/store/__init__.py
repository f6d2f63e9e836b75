"""The tracking store: one row per issue and recipient, suppressions, web subscribers, and an
append-only event log, in SQLite (WAL, the embedded default) or PostgreSQL (a server several
hosts share). All SQL lives in this package, behind ``Store``; one set of it runs on both
(``dialect.py``). ``open_store`` opens whichever ``tracking.database`` names.

Must not import anything of ours but ``util``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mirage_mailer.store.as_sent import AsSentMixin, SentForm
from mirage_mailer.store.bounces import BounceRecord, BounceRow, BouncesMixin
from mirage_mailer.store.core import (
    NewRecipient,
    Prior,
    Recipient,
    StoreError,
    StoreUnavailable,
    email_key,
    fields_json,
    hashed_key,
    is_hashed,
)
from mirage_mailer.store.engagement import EngagementMixin
from mirage_mailer.store.issue_plans import IssuePlan, IssuePlansMixin
from mirage_mailer.store.journal_runs import JournalRunsMixin
from mirage_mailer.store.leases import LeasesMixin, Reaped, SenderInfo
from mirage_mailer.store.ledger import Ledger
from mirage_mailer.store.people import PeopleMixin
from mirage_mailer.store.periods import PeriodsMixin
from mirage_mailer.store.ports import (
    BounceStore,
    LeaseStore,
    PersonalData,
    PlanReader,
    RecorderStore,
    ReportReader,
    RosterReader,
    SubscriberStore,
    Unsubscriber,
)
from mirage_mailer.store.recipients import RecipientsMixin, finished
from mirage_mailer.store.relays import RelaysMixin
from mirage_mailer.store.restored import Restored, RestoredMixin
from mirage_mailer.store.schema import MIGRATIONS, NEW_STATUSES, REPORT_STATUSES, STATUSES
from mirage_mailer.store.subscribers import SubscribersMixin
from mirage_mailer.util.database import Database, PostgresUrl

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "MIGRATIONS",
    "NEW_STATUSES",
    "REPORT_STATUSES",
    "STATUSES",
    "BounceRecord",
    "BounceRow",
    "BounceStore",
    "IssuePlan",
    "LeaseStore",
    "NewRecipient",
    "PersonalData",
    "PlanReader",
    "Prior",
    "Reaped",
    "Recipient",
    "RecorderStore",
    "ReportReader",
    "Restored",
    "RosterReader",
    "SenderInfo",
    "SentForm",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "SubscriberStore",
    "Unsubscriber",
    "email_key",
    "fields_json",
    "finished",
    "hashed_key",
    "is_hashed",
    "open_store",
    "store_exists",
]


class Store(RecipientsMixin, RelaysMixin, BouncesMixin, PeopleMixin, SubscribersMixin,
            EngagementMixin, PeriodsMixin, LeasesMixin, IssuePlansMixin, RestoredMixin,
            AsSentMixin, JournalRunsMixin):
    """The tracking store, on SQLite (a path) or PostgreSQL (a ``PostgresUrl``); one
    instance per process, used from one thread."""

    def __enter__(self) -> Store:
        return self


def open_store(database: Database, *, timeout: float = 10.0,
               state_dir: Path | None = None) -> Store:
    """The store ``tracking.database`` names: a SQLite file (created if missing) or a
    PostgreSQL database (its tables created if missing).

    ``state_dir``: the project's ``.mirage/``, whose ledger (``store/ledger.py``) the store
    is compared with now (a store restored from an older backup gets back every suppression
    recorded since; ``store.restored`` names the issues it knows less of than this folder
    sent) and records into from now on. Every command that writes the store passes it."""
    store = Store(database, timeout=timeout)
    if state_dir is not None:
        try:
            store.attach_ledger(Ledger(state_dir))
        except BaseException:
            store.close()
            raise
    return store


def store_exists(database: Database) -> bool:
    """Whether a reader may open the store without creating one: a SQLite file that exists,
    a PostgreSQL database holding our tables (an empty one stays empty)."""
    if isinstance(database, PostgresUrl):
        from mirage_mailer.store.pg import has_store

        return has_store(database)
    return database.exists()
