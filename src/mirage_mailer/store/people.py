"""People: suppressions, erasure and access (GDPR), and the append-only event log."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mirage_mailer.store.core import StoreCore, email_key, hashed_key
from mirage_mailer.store.dialect import Connection

ERASED = "[erased]"


def _key_or_none(value: object) -> str | None:
    """SQL ``mm_key``: Python's Unicode lower(); SQLite's lower() folds ASCII only."""
    return email_key(value) if isinstance(value, str) else None


def _scrubber(key: str) -> Callable[[object], str | None]:
    """SQL ``mm_scrub``: a text with every spelling of the address replaced by ERASED.

    SMTP responses and event details quote addresses ("550 <jean@...>: no mailbox").
    """
    # Not inside a longer address: "an@example.org" must leave "jean@example.org" alone.
    pattern = re.compile(rf"(?<![\w.!#$%&'*+/=?^`{{|}}~-]){re.escape(key)}(?![\w-]|\.[\w-])",
                         re.IGNORECASE)

    def scrub(value: object) -> str | None:
        return pattern.sub(ERASED, value) if isinstance(value, str) else None

    return scrub


# PostgreSQL has no Python to call from SQL: the rows an erasure concerns are found by a
# test that catches every one of them and a few more (ASCII case folding, exact in the "C"
# collation of the store's columns, or any text with a byte outside printable ASCII), and
# Python's own email_key and scrubber decide among those, as SQLite's mm_key and mm_scrub do.
_ASCII = "'^[ -~]*$'"


def _spellings_pg(conn: Connection, key: str) -> list[str]:
    """Every spelling of ``key`` in the event log (mm_key(email) = key on SQLite)."""
    found = conn.execute("SELECT DISTINCT email FROM events WHERE lower(email) = ?"
                         f" OR email !~ {_ASCII}", (key,))
    return [str(e) for (e,) in found if email_key(str(e)) == key]


def _forget_pg(conn: Connection, key: str, hashed: str) -> int:
    """The events' addresses and the texts quoting ``key`` (see ``forget``), on PostgreSQL."""
    events = conn.execute("UPDATE events SET email = ? WHERE email = ANY(?)",
                          (hashed, _spellings_pg(conn, key))).rowcount
    scrub = _scrubber(key)
    near = ("strpos(lower({0}), ?) > 0" if key.isascii() else "strpos({0}, '@') > 0")
    for table, column in (("events", "detail"), ("recipients", "smtp_response")):
        test = near.format(column)
        rows = conn.execute(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL"
                            f" AND ({test} OR {column} !~ {_ASCII})",
                            (key,) if key.isascii() else ()).fetchall()
        changed = [(new, rid) for rid, old in rows if (new := scrub(old)) != old]
        if changed:
            conn.executemany(f"UPDATE {table} SET {column} = ? WHERE id = ?", changed)
    return int(events)


class PeopleMixin(StoreCore):
    # -- suppressions and events ---------------------------------------------------------------

    def suppress(self, email: str, *, source: str, reason: str | None = None,
                 at: datetime | None = None) -> bool:
        """Never mail ``email`` again, from any list; True if it was not suppressed before.

        ``at`` is when the person asked (a mailed request's Date, an unsubscribe ``serve``
        held while the store was busy), never later than now; a sign-up the person confirmed
        after ``at`` wins, as it would have had the request been recorded at once.
        Flips pending/unknown rows of every issue even when the address was already listed,
        so rows queued by an older version are covered too.
        """
        now = self._now()
        asked = now if at is None else self._stamp(at, now)
        key = email_key(email)
        with self._write() as conn:
            if at is not None and conn.execute(
                    "SELECT 1 FROM events WHERE email = ? AND kind = 'subscribed' AND at > ?"
                    " LIMIT 1", (key, asked)).fetchone() is not None:
                return False  # a sign-up confirmed after the request is the person's later word
            return self._suppress_in(conn, key, source, reason, asked, now)

    def _suppress_in(self, conn: Connection, key: str, source: str, reason: str | None,
                     asked: str, now: str, *, logged: bool = True) -> bool:
        """``suppress`` inside the caller's write transaction (a bounce's event and its
        suppression commit together). ``logged=False``: no 'unsubscribed' event, for a
        suppression whose own event (a bounce, a complaint) is already in the log."""
        forgotten = conn.execute("SELECT 1 FROM suppressions WHERE email = ?",
                                 (hashed_key(key),)).fetchone()
        added = False
        if forgotten is None:  # a forgotten person stays a hash, never a plain address
            cur = conn.execute(
                "INSERT INTO suppressions (email, source, reason, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (key, source, reason, asked),
            )
            added = cur.rowcount == 1
            self.note({"k": "unsub", "e": key, "s": source})  # kept if a backup is put back
        if added and logged:
            conn.execute(
                "INSERT INTO events (issue, email, kind, detail, at) VALUES (NULL, ?, ?, ?, ?)",
                (key, "unsubscribed", source if reason is None else f"{source}: {reason}",
                 asked),
            )
        where = "email_key = ? AND status IN ('pending', 'unknown')"
        conn.execute(
            "INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
            f" SELECT id, issue, email, 'suppressed', status, ? FROM recipients WHERE {where}"
            " ORDER BY id",
            (now, key),
        )
        conn.execute(f"UPDATE recipients SET status = 'suppressed' WHERE {where}", (key,))
        return added

    @staticmethod
    def _stamp(at: datetime, now: str) -> str:
        """``at`` in the store's format (naive means UTC), capped at ``now``: a sender's clock
        must not date a request in the future."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return min(at.astimezone(UTC).isoformat(timespec="milliseconds"), now)

    def is_suppressed(self, email: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM suppressions WHERE email IN (?, ?)",
                                 (email_key(email), hashed_key(email)))
        return row.fetchone() is not None

    def forget(self, email: str) -> dict[str, int]:
        """GDPR art. 17: erase a person; keep only a hashed suppression so they stay unmailed.

        Delivery rows stay (anonymised) so an issue's counts do not change after the fact;
        SMTP responses and event details that quote the address get ERASED in its place.
        The file is then rewritten (VACUUM, WAL truncated) so no old page keeps the address;
        ``residue`` is 1 when another open connection kept the WAL from being truncated.
        """
        key, hashed = email_key(email), hashed_key(email)
        now = self._now()
        if not self.is_postgres:
            self._sqlite.create_function("mm_key", 1, _key_or_none, deterministic=True)
            self._sqlite.create_function("mm_scrub", 1, _scrubber(key), deterministic=True)
        with self._write() as conn:
            conn.execute("DELETE FROM suppressions WHERE email = ?", (key,))
            conn.execute("INSERT INTO suppressions (email, source, reason, created_at)"
                         " VALUES (?, 'forget', 'erased on request', ?) ON CONFLICT DO NOTHING",
                         (hashed, now))
            # Rows queued again after an earlier erasure would clash with the anonymised ones.
            conn.execute("DELETE FROM recipients WHERE email_key = ? AND issue IN"
                         " (SELECT issue FROM recipients WHERE email_key = ?)", (key, hashed))
            rows = conn.execute(
                "UPDATE recipients SET email = ?, email_key = ?, name = NULL, fields = '{}',"
                " subject = NULL, status = CASE WHEN status IN ('pending', 'unknown')"
                " THEN 'suppressed' ELSE status END WHERE email_key = ?",
                (hashed, hashed, key)).rowcount
            if self.is_postgres:
                events = _forget_pg(conn, key, hashed)
            else:
                events = conn.execute("UPDATE events SET email = ? WHERE mm_key(email) = ?",
                                      (hashed, key)).rowcount
                conn.execute("UPDATE events SET detail = mm_scrub(detail)"
                             " WHERE detail IS NOT NULL AND mm_scrub(detail) <> detail")
                conn.execute("UPDATE recipients SET smtp_response = mm_scrub(smtp_response)"
                             " WHERE smtp_response IS NOT NULL"
                             " AND mm_scrub(smtp_response) <> smtp_response")
            subscriptions = conn.execute("DELETE FROM subscribers WHERE email_key = ?",
                                         (key,)).rowcount
            conn.execute("INSERT INTO events (issue, email, kind, detail, at)"
                         " VALUES (NULL, ?, 'forgotten', NULL, ?)", (hashed, now))
            self.note({"k": "forget", "h": hashed})  # the hash only, as the store keeps
        return {"deliveries": rows, "events": events, "subscriptions": subscriptions,
                "residue": 0 if self._purge() else 1}

    def _purge(self) -> bool:
        """Rewrite the file: deleted cells and old WAL frames still hold erased values.

        False when the WAL could not be emptied (another process reading, or writing
        meanwhile); the erasure itself is committed either way.
        """
        if self.is_postgres:
            return self._purge_pg()
        try:
            self._conn.execute("PRAGMA temp_store = MEMORY")  # no temporary copy on disk
            self._conn.execute("VACUUM")
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError:
            return False
        return bool(busy == 0)

    def _purge_pg(self) -> bool:
        """PostgreSQL keeps an updated row's old version until VACUUM removes it: run it on
        the tables that held the address (outside a transaction, as VACUUM must). The
        server's write-ahead log and its backups are the server's to expire (docs/guide)."""
        self._conn.execute("VACUUM recipients, events, suppressions, subscribers")
        return True

    def export(self, email: str) -> dict[str, Any]:
        """GDPR art. 15: everything held about one address.

        After ``forget`` only the hashed suppression is left (``"hashed": true``).
        """
        key = email_key(email)
        conn = self._conn
        if not self.is_postgres:
            self._sqlite.create_function("mm_key", 1, _key_or_none, deterministic=True)
        suppression = conn.execute(
            "SELECT source, reason, created_at, email <> ? FROM suppressions WHERE email IN (?, ?)",
            (key, key, hashed_key(key))).fetchone()
        deliveries = conn.execute(
            "SELECT issue, email, name, lang, list_name, fields, status, attempts, message_id,"
            " smtp_code, smtp_response, created_at, last_attempt_at FROM recipients"
            " WHERE email_key = ? ORDER BY id", (key,))
        delivery_cols = ("issue", "email", "name", "lang", "list", "fields", "status",
                         "attempts", "message_id", "smtp_code", "smtp_response", "queued_at",
                         "last_attempt_at")
        subs = conn.execute(
            "SELECT list_name, email, name, lang, status, consent_text, consent_version, source,"
            " requested_at, confirmed_at FROM subscribers WHERE email_key = ? ORDER BY id", (key,))
        sub_cols = ("list", "email", "name", "lang", "status", "consent_text",
                    "consent_version", "source", "requested_at", "confirmed_at")
        if self.is_postgres:
            events = conn.execute("SELECT issue, kind, detail, at FROM events"
                                  " WHERE email = ANY(?) ORDER BY id",
                                  (_spellings_pg(conn, key),))
        else:
            events = conn.execute("SELECT issue, kind, detail, at FROM events"
                                  " WHERE mm_key(email) = ? ORDER BY id", (key,))
        return {
            "email": key,
            "suppressed": None if suppression is None else dict(zip(
                ("source", "reason", "created_at", "hashed"),
                (*suppression[:3], bool(suppression[3])), strict=True)),
            "subscriptions": [dict(zip(sub_cols, r, strict=True)) for r in subs],
            "deliveries": [
                {**dict(zip(delivery_cols, r, strict=True)), "fields": json.loads(r[5])}
                for r in deliveries],
            "events": [dict(zip(("issue", "kind", "detail", "at"), r, strict=True))
                       for r in events],
        }

    def suppressions(self) -> list[dict[str, Any]]:
        """Every suppressed (lowercased) address, oldest first."""
        cur = self._conn.execute(
            "SELECT email, source, reason, created_at FROM suppressions ORDER BY created_at, email"
        )
        return [dict(zip(("email", "source", "reason", "created_at"), r, strict=True)) for r in cur]

    def events(self, issue: str | None = None) -> list[dict[str, Any]]:
        """The append-only log, oldest first; ``issue=None`` includes unsubscriptions."""
        sql = "SELECT issue, email, kind, detail, at FROM events"
        params: tuple[str, ...] = ()
        if issue is not None:
            sql += " WHERE issue = ?"
            params = (issue,)
        cur = self._conn.execute(sql + " ORDER BY id", params)
        return [dict(zip(("issue", "email", "kind", "detail", "at"), r, strict=True)) for r in cur]
