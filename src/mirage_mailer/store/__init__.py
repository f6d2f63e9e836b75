"""The tracking store: one row per issue and recipient, suppressions, web subscribers, and an
append-only event log, in SQLite (WAL, the embedded default) or PostgreSQL (a server several
hosts share). All SQL lives in this package, behind ``Store``; one set of it runs on both
(``dialect.py``). ``open_store`` opens whichever ``tracking.database`` names.

Must not import anything of ours but ``util``.
"""

from __future__ import annotations

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
from mirage_mailer.store.leases import LeasesMixin, Reaped, SenderInfo
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
from mirage_mailer.store.schema import MIGRATIONS, NEW_STATUSES, REPORT_STATUSES, STATUSES
from mirage_mailer.store.subscribers import SubscribersMixin
from mirage_mailer.util.database import Database, PostgresUrl

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
            EngagementMixin, PeriodsMixin, LeasesMixin, IssuePlansMixin, AsSentMixin):
    """The tracking store, on SQLite (a path) or PostgreSQL (a ``PostgresUrl``); one
    instance per process, used from one thread."""

    def __enter__(self) -> Store:
        return self


def open_store(database: Database, *, timeout: float = 10.0) -> Store:
    """The store ``tracking.database`` names: a SQLite file (created if missing) or a
    PostgreSQL database (its tables created if missing)."""
    return Store(database, timeout=timeout)


def store_exists(database: Database) -> bool:
    """Whether a reader may open the store without creating one: a SQLite file that exists,
    a PostgreSQL database holding our tables (an empty one stays empty)."""
    if isinstance(database, PostgresUrl):
        from mirage_mailer.store.pg import has_store

        return has_store(database)
    return database.exists()
