"""The tracking store: one row per issue and recipient, suppressions, web subscribers, and an
append-only event log, in SQLite (WAL). All SQL lives in this package, behind ``Store``, so a
PostgreSQL backend can be added later behind the same methods.

Must not import anything of ours but ``util``.
"""

from __future__ import annotations

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
)
from mirage_mailer.store.engagement import EngagementMixin
from mirage_mailer.store.people import PeopleMixin
from mirage_mailer.store.periods import PeriodsMixin
from mirage_mailer.store.ports import (
    BounceStore,
    PersonalData,
    PlanReader,
    RecorderStore,
    ReportReader,
    RosterReader,
    SubscriberStore,
    Unsubscriber,
)
from mirage_mailer.store.recipients import RecipientsMixin
from mirage_mailer.store.relays import RelaysMixin
from mirage_mailer.store.schema import MIGRATIONS, NEW_STATUSES, REPORT_STATUSES, STATUSES
from mirage_mailer.store.subscribers import SubscribersMixin

__all__ = [
    "MIGRATIONS",
    "NEW_STATUSES",
    "REPORT_STATUSES",
    "STATUSES",
    "BounceRecord",
    "BounceRow",
    "BounceStore",
    "NewRecipient",
    "PersonalData",
    "PlanReader",
    "Prior",
    "Recipient",
    "RecorderStore",
    "ReportReader",
    "RosterReader",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "SubscriberStore",
    "Unsubscriber",
    "email_key",
    "fields_json",
    "hashed_key",
]


class Store(RecipientsMixin, RelaysMixin, BouncesMixin, PeopleMixin, SubscribersMixin,
            EngagementMixin, PeriodsMixin):
    """SQLite tracking store; one instance per process, used from one thread."""

    def __enter__(self) -> Store:
        return self
