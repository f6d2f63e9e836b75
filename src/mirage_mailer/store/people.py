"""People: suppressions, erasure and access (GDPR), and the append-only event log."""

from __future__ import annotations

import json
from typing import Any

from mirage_mailer.store.core import StoreCore, email_key, hashed_key


class PeopleMixin(StoreCore):
    # -- suppressions and events ---------------------------------------------------------------

    def suppress(self, email: str, *, source: str, reason: str | None = None) -> bool:
        """Never mail ``email`` again, from any list; True if it was not suppressed before.

        Flips pending/unknown rows of every issue even when the address was already listed,
        so rows queued by an older version are covered too.
        """
        key = email_key(email)
        now = self._now()
        with self._write() as conn:
            forgotten = conn.execute("SELECT 1 FROM suppressions WHERE email = ?",
                                     (hashed_key(key),)).fetchone()
            added = False
            if forgotten is None:  # a forgotten person stays a hash, never a plain address
                cur = conn.execute(
                    "INSERT OR IGNORE INTO suppressions (email, source, reason, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (key, source, reason, now),
                )
                added = cur.rowcount == 1
            if added:
                conn.execute(
                    "INSERT INTO events (issue, email, kind, detail, at) VALUES (NULL, ?, ?, ?, ?)",
                    (key, "unsubscribed", source if reason is None else f"{source}: {reason}", now),
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

    def is_suppressed(self, email: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM suppressions WHERE email IN (?, ?)",
                                 (email_key(email), hashed_key(email)))
        return row.fetchone() is not None

    def forget(self, email: str) -> dict[str, int]:
        """GDPR art. 17: erase a person; keep only a hashed suppression so they stay unmailed.

        Delivery rows stay (anonymised) so an issue's counts do not change after the fact.
        """
        key, hashed = email_key(email), hashed_key(email)
        now = self._now()
        with self._write() as conn:
            conn.execute("DELETE FROM suppressions WHERE email = ?", (key,))
            conn.execute("INSERT OR IGNORE INTO suppressions (email, source, reason, created_at)"
                         " VALUES (?, 'forget', 'erased on request', ?)", (hashed, now))
            rows = conn.execute(
                "UPDATE recipients SET email = ?, email_key = ?, name = NULL, fields = '{}',"
                " subject = NULL, status = CASE WHEN status IN ('pending', 'unknown')"
                " THEN 'suppressed' ELSE status END WHERE email_key = ?",
                (hashed, hashed, key)).rowcount
            events = conn.execute("UPDATE events SET email = ? WHERE lower(email) = ?",
                                  (hashed, key)).rowcount
            subscriptions = conn.execute("DELETE FROM subscribers WHERE email_key = ?",
                                         (key,)).rowcount
            conn.execute("INSERT INTO events (issue, email, kind, detail, at)"
                         " VALUES (NULL, ?, 'forgotten', NULL, ?)", (hashed, now))
        return {"deliveries": rows, "events": events, "subscriptions": subscriptions}

    def export(self, email: str) -> dict[str, Any]:
        """GDPR art. 15: everything held about one address."""
        key = email_key(email)
        conn = self._conn
        suppression = conn.execute(
            "SELECT source, reason, created_at FROM suppressions WHERE email IN (?, ?)",
            (key, hashed_key(key))).fetchone()
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
        events = conn.execute("SELECT issue, kind, detail, at FROM events WHERE lower(email) = ?"
                              " ORDER BY id", (key,))
        return {
            "email": key,
            "suppressed": None if suppression is None else dict(zip(
                ("source", "reason", "created_at"), suppression, strict=True)),
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
