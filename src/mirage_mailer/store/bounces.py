"""Bounces and complaints: which row a bounce is about, and recording it once.

A bounce mail is recorded under its key (Message-ID, or a hash of its bytes) in the same
transaction as its event and any suppression it causes, so a crash never leaves half of it
and a second reading of the mailbox finds it already done. Events: ``bounced`` (hard,
suppresses at once), ``soft-bounced`` (suppresses once ``soft_limit`` of them fall within the
window), ``complained`` (an ARF feedback report: suppresses at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mirage_mailer.store.core import StoreCore, email_key, hashed_key
from mirage_mailer.store.people import PeopleMixin

BOUNCE_KINDS = ("bounced", "soft-bounced", "complained")
_KINDS_SQL = "kind IN ('bounced', 'soft-bounced', 'complained')"  # = the partial index's


@dataclass(frozen=True)
class BounceRow:
    """A tracking row a bounce may be about."""

    id: int
    issue: str
    email: str
    message_id: str | None
    status: str


@dataclass(frozen=True)
class BounceRecord:
    """What recording one bounce did."""

    recorded: bool  # False: this mail was processed before (nothing changed now)
    suppressed: bool  # the address is now suppressed because of it
    soft_count: int = 0  # soft bounces of this address within the window, this one included


def _window_start(now: str, days: int) -> str:
    return (datetime.fromisoformat(now).astimezone(UTC)
            - timedelta(days=days)).isoformat(timespec="milliseconds")


def _row(found: Any) -> BounceRow | None:
    if found is None:
        return None
    return BounceRow(int(found[0]), str(found[1]), str(found[2]), found[3], str(found[4]))


class BouncesMixin(PeopleMixin, StoreCore):
    def verp_row(self, row_id: int) -> BounceRow | None:
        """The row a VERP token names (its MAC is checked by the caller against it)."""
        return _row(self._conn.execute(
            "SELECT id, issue, email, message_id, status FROM recipients WHERE id = ?",
            (row_id,)).fetchone())

    def bounce_row(self, email: str | None, message_id: str | None, *,
                   redacted: bool = False) -> BounceRow | None:
        """The row a bounce without a genuine VERP token is about: the row with the original
        Message-ID (one we sent, 128 random bits: unguessable) whose recipient is the failed
        address; with ``redacted`` (a feedback report that hides the address), the row with
        that Message-ID alone. Never an address alone: anyone can write a DSN naming a
        subscriber, and it must not suppress her."""
        if not message_id:
            return None
        columns = "SELECT id, issue, email, message_id, status FROM recipients"
        if email and not redacted:
            return _row(self._conn.execute(f"{columns} WHERE email_key = ? AND message_id = ?",
                                           (email_key(email), message_id)).fetchone())
        if not redacted:
            return None
        # no index: a scan, only for complaints that carry no token and no address of ours
        return _row(self._conn.execute(f"{columns} WHERE message_id = ? LIMIT 1",
                                       (message_id,)).fetchone())

    def bounce_seen(self, key: str) -> bool:
        """This bounce mail was processed before."""
        found = self._conn.execute("SELECT 1 FROM bounce_mail WHERE key = ?", (key,))
        return found.fetchone() is not None

    def mark_bounce_mail(self, key: str, outcome: str) -> bool:
        """Remember a mail that counted for nothing (ignored, unmatched); False if known."""
        with self._write() as conn:
            cur = conn.execute("INSERT INTO bounce_mail (key, outcome, at)"
                               " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                               (key, outcome, self._now()))
            return cur.rowcount == 1

    def record_bounce(self, key: str, row: BounceRow, *, kind: str, detail: str,
                      at: datetime | None = None, soft_limit: int = 3,
                      soft_window_days: int = 30) -> BounceRecord:
        """The event of one bounce or complaint and the suppression it calls for, once.

        ``at`` is when it happened (the bounce's Date, capped at now); soft bounces are
        counted over the ``soft_window_days`` before now, the time of processing, so the
        order the mails are read in never changes the count.
        """
        if kind not in BOUNCE_KINDS:
            raise ValueError(f"unknown bounce kind {kind!r}")
        now = self._now()
        when = now if at is None else self._stamp(at, now)
        address = email_key(row.email)
        with self._write() as conn:
            cur = conn.execute("INSERT INTO bounce_mail (key, outcome, at)"
                               " VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (key, kind, now))
            if cur.rowcount == 0:
                return BounceRecord(False, False)
            conn.execute("INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
                         " VALUES (?, ?, ?, ?, ?, ?)",
                         (row.id, row.issue, address, kind, detail[:500], when))
            soft = 0
            if kind == "soft-bounced":
                soft = self._soft_since(address, _window_start(now, soft_window_days))
                if soft < soft_limit:
                    return BounceRecord(True, False, soft)
                reason = f"{soft} soft bounces within {soft_window_days} days"
            else:
                reason = "hard bounce" if kind == "bounced" else "spam complaint"
            if address.startswith("sha256:") or conn.execute(
                    "SELECT 1 FROM suppressions WHERE email IN (?, ?)",
                    (address, hashed_key(address))).fetchone() is not None:
                return BounceRecord(True, False, soft)
            source = "complaint" if kind == "complained" else "bounce"
            added = self._suppress_in(conn, address, source, f"{reason}, issue {row.issue}",
                                      when, now, logged=False)
            return BounceRecord(True, added, soft)

    def _soft_since(self, address: str, since: str) -> int:
        return int(self._conn.execute(
            "SELECT count(*) FROM events WHERE kind = 'soft-bounced' AND email = ?"
            " AND at > ?", (address, since)).fetchone()[0])

    def soft_window(self, email: str, at: datetime | None,
                    soft_window_days: int) -> tuple[int, bool]:
        """(soft bounces of ``email`` recorded within the window that ends now, whether a
        bounce at ``at`` would fall in it): what ``record_bounce`` will count, for a dry run."""
        now = self._now()
        since = _window_start(now, soft_window_days)
        when = now if at is None else self._stamp(at, now)
        return self._soft_since(email_key(email), since), when > since

    def bounce_counts(self, issue: str) -> dict[str, int]:
        """Recipients of ``issue`` with a hard bounce, a soft bounce, or a complaint."""
        counts = dict.fromkeys(("hard", "soft", "complaints"), 0)
        names = {"bounced": "hard", "soft-bounced": "soft", "complained": "complaints"}
        for kind, number in self._conn.execute(
                "SELECT kind, count(DISTINCT recipient_id) FROM events"
                f" WHERE issue = ? AND {_KINDS_SQL} GROUP BY kind", (issue,)):
            counts[names[str(kind)]] = int(number)
        return counts

    def bounce_kinds(self, issue: str) -> dict[str, str]:
        """Each bounced or complaining recipient of ``issue`` (lower-cased address) -> the
        worst of ``complaint``, ``hard``, ``soft``."""
        rank = {"complained": 3, "bounced": 2, "soft-bounced": 1}
        names = {"complained": "complaint", "bounced": "hard", "soft-bounced": "soft"}
        worst: dict[str, str] = {}
        for address, kind in self._conn.execute(
                f"SELECT email, kind FROM events WHERE issue = ? AND {_KINDS_SQL}"
                " ORDER BY id", (issue,)):
            key, kind = str(address), str(kind)
            if key not in worst or rank[kind] > rank[worst[key]]:
                worst[key] = kind
        return {key: names[kind] for key, kind in worst.items()}
