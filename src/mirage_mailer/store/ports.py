"""The narrow faces of ``Store``: each user of the tracking store names the one it needs.

``Store`` is one class with every method, on SQLite or PostgreSQL; a user that gets it whole
can call any of them. These protocols say what each kind of user actually calls, so a
function's signature shows what it may do to the store (a report cannot write; the web cannot
reset a send) and a test double only needs the methods of the protocol at hand:

* ``PlanReader``: planning a send (``make_plan``, validate, the prompt, ``--dry-run``): reads.
* ``RosterReader``: the ``subscribers`` commands: the planner's reads and every web sign-up.
* ``RecorderStore``: the send itself (``sending.send`` and its ``SendRecorder``): plans, queues,
  claims and records every attempt, and replays a crashed send's claim journal.
* ``LeaseStore``: a send on a PostgreSQL store, one of possibly several senders of an issue:
  what the recorder does, plus registering, claiming by lease, and reaping dead senders.
* ``ReportReader``: delivery state for reports, the archive, and ``run-due``: reads.
* ``Unsubscriber``: finding who a token names and suppressing them (the unsubscribe link, the
  mailed unsubscribe, the ``unsubscribe`` command).
* ``SubscriberStore``: the web's reader-facing side: sign-up, confirmation, unsubscribe, the
  reader's language, opens and clicks.
* ``PersonalData``: the GDPR side: export and erase everything held about one address.
* ``BounceStore``: ``process-bounces``: find the row a bounce is about, record it once.

Opening and closing stay with the concrete ``Store`` (whoever opens one closes it). A test
(``tests/test_store_ports.py``) checks that every ``Store`` method used outside this package
belongs to one of these protocols, and ``_check_ports`` below has mypy check that ``Store``
satisfies each of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mirage_mailer.store.as_sent import SentForm
from mirage_mailer.store.bounces import BounceRecord, BounceRow
from mirage_mailer.store.core import NewRecipient, Prior, Recipient
from mirage_mailer.store.issue_plans import IssuePlan
from mirage_mailer.store.leases import LeaseOutcome, Reaped, SenderInfo

if TYPE_CHECKING:
    from mirage_mailer.store import Store
    from mirage_mailer.store.recipients import StagedPlan

__all__ = [
    "BounceStore",
    "LeaseStore",
    "PersonalData",
    "PlanReader",
    "RecorderStore",
    "ReportReader",
    "RosterReader",
    "SubscriberStore",
    "Unsubscriber",
]

# (email, key, status, lang, list, smtp_code, smtp_response) of an issue's row
IssueRow = tuple[str, str, str, str | None, str, int | None, str | None]


@runtime_checkable
class PlanReader(Protocol):
    """What deciding a send reads: suppressions, web sign-ups, and the issue's rows so far."""

    def suppressed_keys(self) -> set[str]: ...

    def resolve_subject(self, subject: str, issue: str | None = ...) -> str | None: ...

    def confirmed_subscribers(self, list_name: str) -> Iterator[dict[str, Any]]: ...

    def extent(self, issue: str) -> tuple[int, int]: ...

    def priors(self, issue: str, keys: list[str]) -> dict[str, Prior]: ...

    def priors_after(self, issue: str, after: int, count: int) -> list[tuple[str, Prior]]: ...

    def issue_rows(self, issue: str) -> Iterator[IssueRow]: ...

    def invalid_lines(self, issue: str) -> dict[tuple[str, int], str]: ...

    def sent_under(self, plan: IssuePlan) -> str | None: ...

    def has_rows(self, issue: str) -> bool: ...


@runtime_checkable
class RosterReader(PlanReader, Protocol):
    """Who reads a list (``subscribers`` commands): what planning reads, and every web
    sign-up with its consent record, unconfirmed ones too."""

    def web_subscribers(self, list_name: str) -> Iterator[dict[str, Any]]: ...


@runtime_checkable
class RecorderStore(PlanReader, Protocol):
    """The sender's store: reconcile the plan, hand out pending rows, record each attempt."""

    def recover_inflight(self, issue: str) -> int: ...

    def requeue_unknown(self, issue: str, keys: Iterable[str] | None = None) -> int: ...

    def apply_suppressions(self, issue: str) -> int: ...

    def record_issue_plan(self, plan: IssuePlan) -> None: ...

    def record_as_sent(self, forms: list[SentForm]) -> None: ...

    def as_sent(self, issue: str) -> dict[str, SentForm]: ...

    def has_sent(self, issue: str) -> bool: ...

    def reconcile(self, issue: str, changes: Iterable[NewRecipient | str], *,
                  batch: int = ...) -> None: ...

    def first_plan(self, issue: str) -> AbstractContextManager[StagedPlan]: ...

    def iter_pending(self, issue: str, *, batch: int = ...,
                     shard: tuple[int, int] | None = ...) -> Iterator[Recipient]: ...

    def stamp(self) -> str: ...

    def claimable(self, recipient_id: int) -> bool: ...

    def record_batch(
            self, outcomes: Iterable[tuple[int, str, int, str, int | None, str, str, str]],
            inflight: Iterable[tuple[int, str, int, str, str]] = ...,
            relays: Iterable[tuple[int, str, int, str]] = ...) -> None: ...

    def note_sent(self, issue: str) -> None: ...

    def register_journal(self, issue: str, token: str) -> None: ...

    def reserve(self, token: str, ids: list[int]) -> set[int]: ...

    def end_journal_run(self, token: str) -> None: ...

    def journal_runs(self, issue: str) -> set[str]: ...

    def live_journal_runs(self, issue: str) -> set[str]: ...

    def journal_issues(self) -> set[str]: ...

    def end_journal_runs(self, issue: str, whole: set[str], seen: set[str]) -> int: ...

    def accept_restore(self, issue: str) -> None: ...

    def counts(self, issue: str) -> dict[str, int]: ...


@runtime_checkable
class LeaseStore(RecorderStore, Protocol):
    """A sender of an issue on a shared (PostgreSQL) store: its lease, its claims, its
    outcomes, and the dead senders it reaps (``store/leases.py``)."""

    def register_sender(self, owner: str, issue: str, host: str, pid: int,
                        lease_seconds: float, *, durable: bool = ...) -> None: ...

    def heartbeat(self, owner: str, lease_seconds: float) -> bool: ...

    def reap(self, issue: str) -> Reaped: ...

    def claim(self, owner: str, issue: str, size: int, *, after: int = ...,
              keys: Sequence[str] | None = ...,
              langs: Sequence[str] | None = ...) -> list[Recipient] | None: ...

    def mark(self, owner: str, outcomes: Iterable[LeaseOutcome],
             claims: Sequence[tuple[int, str, str]] = ...) -> set[int]: ...

    def release(self, owner: str) -> tuple[int, int]: ...

    def unclaimed(self, issue: str, *, keys: Sequence[str] | None = ...,
                  langs: Sequence[str] | None = ...) -> int: ...

    def leased_elsewhere(self, issue: str) -> tuple[int, int]: ...

    def senders(self, issue: str) -> list[SenderInfo]: ...

    def pending_langs(self, issue: str) -> list[str]: ...


@runtime_checkable
class ReportReader(Protocol):
    """Delivery state, read only: counts, rows, timelines, unsubscribes, opens and clicks,
    and the figures of a reporting period (send dates, reach by language and list)."""

    def issues(self) -> list[str]: ...

    def counts(self, issue: str) -> dict[str, int]: ...

    def recipients(self, issue: str, *, relay: bool = ...,
                   unsent: bool = ...) -> Iterator[dict[str, Any]]: ...

    def issue_plans(self) -> dict[str, IssuePlan]: ...

    def as_sent(self, issue: str) -> dict[str, SentForm]: ...

    def sent_subjects(self) -> dict[str, dict[str, str]]: ...

    def timeline(self, issue: str) -> Iterator[tuple[str, str]]: ...

    def unsubscriptions(self) -> list[dict[str, Any]]: ...

    def engagement(self, issue: str) -> dict[str, Any]: ...

    def first_sends(self) -> dict[str, str]: ...

    def breakdown(self, issue: str) -> list[tuple[str, str | None, str, int]]: ...

    def distinct_reached(self, issues: list[str]) -> int: ...

    def unsubscribes_by_issue(self) -> dict[str | None, int]: ...

    def readers_engaged(self, issue: str) -> dict[str, Any]: ...

    def bounce_counts(self, issue: str) -> dict[str, int]: ...

    def bounce_kinds(self, issue: str) -> dict[str, str]: ...

    def relay_counts(self, issue: str) -> dict[str, dict[str, int]]: ...

    def senders(self, issue: str) -> list[SenderInfo]: ...

    def lost_to_dead_senders(self, issue: str) -> dict[str, int]: ...


@runtime_checkable
class Unsubscriber(Protocol):
    """Whom a token names, and never mailing them again."""

    def resolve_subject(self, subject: str, issue: str | None = ...) -> str | None: ...

    def is_suppressed(self, email: str) -> bool: ...

    def suppress(self, email: str, *, source: str, reason: str | None = ...,
                 at: datetime | None = ...) -> bool: ...


@runtime_checkable
class SubscriberStore(Unsubscriber, Protocol):
    """The web's reader-facing store: sign-up and confirmation, unsubscribe, the reader's
    language, and the opens and clicks the tracking links report."""

    def add_pending_subscriber(self, list_name: str, email: str, *, name: str | None,
                               lang: str | None, subject: str, consent_text: str,
                               consent_version: str, source: str) -> bool: ...

    def confirm_subscriber(self, list_name: str, subject: str, *,
                           name_shown: str | None = ...,
                           without_name: bool = ...) -> dict[str, Any] | None: ...

    def recipient_lang(self, issue: str, subject: str) -> str | None: ...

    def record_engagement(self, issue: str, subject: str, kind: str,
                          url: str | None = ...) -> bool: ...


@runtime_checkable
class PersonalData(Protocol):
    """The GDPR side: everything held about one address (art. 15), and its erasure (art. 17)."""

    def export(self, email: str) -> dict[str, Any]: ...

    def forget(self, email: str) -> dict[str, int]: ...


@runtime_checkable
class BounceStore(Protocol):
    """``process-bounces``: the row a bounce names, and each bounce mail recorded once with
    its event and the suppression it calls for."""

    def verp_row(self, row_id: int) -> BounceRow | None: ...

    def bounce_row(self, email: str | None, message_id: str | None, *,
                   redacted: bool = ...) -> BounceRow | None: ...

    def bounce_seen(self, key: str) -> bool: ...

    def mark_bounce_mail(self, key: str, outcome: str) -> bool: ...

    def record_bounce(self, key: str, row: BounceRow, *, kind: str, detail: str,
                      at: datetime | None = ..., soft_limit: int = ...,
                      soft_window_days: int = ...) -> BounceRecord: ...

    def soft_window(self, email: str, at: datetime | None,
                    soft_window_days: int) -> tuple[int, bool]: ...

    def is_suppressed(self, email: str) -> bool: ...


if TYPE_CHECKING:

    def _check_ports(store: Store) -> None:
        """Never called: mypy (strict, over src) fails here when ``Store`` stops satisfying
        one of the protocols, e.g. after a method's signature changes on one side only."""
        _plan: PlanReader = store
        _roster: RosterReader = store
        _recorder: RecorderStore = store
        _leases: LeaseStore = store
        _report: ReportReader = store
        _unsubscriber: Unsubscriber = store
        _subscriber: SubscriberStore = store
        _personal: PersonalData = store
        _bounces: BounceStore = store
