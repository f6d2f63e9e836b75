"""Web subscribers: double opt-in sign-ups with their proof of consent, and token look-ups."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from mirage_mailer.store.core import StoreCore, email_key, hashed_key

_COLUMNS = ("list_name", "email", "name", "lang", "status", "consent_text", "consent_version",
            "source", "requested_at", "confirmed_at")


RESEND_AFTER = timedelta(minutes=10)


def _age(earlier: str, now: str) -> timedelta:
    return datetime.fromisoformat(now) - datetime.fromisoformat(earlier)


class SubscribersMixin(StoreCore):
    def add_pending_subscriber(self, list_name: str, email: str, *, name: str | None,
                               lang: str | None, subject: str, consent_text: str,
                               consent_version: str, source: str) -> bool:
        """Record a sign-up awaiting confirmation; True when a confirmation should be mailed.

        False (nothing changes) when the address is already confirmed and still receiving, or
        asked less than ``RESEND_AFTER`` ago: a form must not become a way to flood someone's
        mailbox. A confirmed subscriber who has since unsubscribed (the address is suppressed)
        signs up anew: the row goes back to pending and a new confirmation is mailed, whose
        confirmation lifts the suppression. A later repeated request refreshes the pending row
        (new consent wording, new time), so the confirmation proves consent to the text shown
        last; its subject id too, so the link in the newest message works after the signing
        secret changed.
        """
        now = self._now()
        key = email_key(email)
        with self._write() as conn:
            existing = conn.execute(
                "SELECT status, requested_at FROM subscribers WHERE list_name = ?"
                " AND email_key = ?", (list_name, key)).fetchone()
            if existing is not None and existing[0] == "confirmed":
                suppressed = conn.execute("SELECT 1 FROM suppressions WHERE email IN (?, ?)",
                                          (key, hashed_key(key))).fetchone()
                if suppressed is None:
                    return False
                # The earlier consent was withdrawn: only a new confirmation counts again.
                conn.execute("UPDATE subscribers SET status = 'pending', confirmed_at = NULL"
                             " WHERE list_name = ? AND email_key = ?", (list_name, key))
            elif existing is not None and _age(existing[1], now) < RESEND_AFTER:
                return False
            conn.execute(
                "INSERT INTO subscribers (list_name, email, email_key, subject, name, lang,"
                " status, consent_text, consent_version, source, requested_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)"
                " ON CONFLICT (list_name, email_key) DO UPDATE SET email = excluded.email,"
                " subject = excluded.subject, name = excluded.name,"
                " lang = excluded.lang, consent_text = excluded.consent_text,"
                " consent_version = excluded.consent_version, source = excluded.source,"
                " requested_at = excluded.requested_at",
                (list_name, email, key, subject, name, lang, consent_text,
                 consent_version, source, now))
            conn.execute("INSERT INTO events (issue, email, kind, detail, at)"
                         " VALUES (NULL, ?, 'subscription-requested', ?, ?)",
                         (key, f"{list_name} via {source}", now))
        return True

    def confirm_subscriber(self, list_name: str, subject: str, *, name_shown: str | None = None,
                           without_name: bool = False) -> dict[str, Any] | None:
        """Confirm the sign-up with this subject id; idempotent; None when there is none.

        Anyone can type a name beside someone else's address, so the person confirms the
        name too: it is dropped when they ask (``without_name``), or when it is no longer the
        one their page showed (``name_shown``, "" for none: a later sign-up changed it)."""
        now = self._now()
        with self._write() as conn:
            row = conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM subscribers WHERE list_name = ?"
                " AND subject = ?", (list_name, subject)).fetchone()
            if row is None:
                return None
            found = dict(zip(_COLUMNS, row, strict=True))
            if found["status"] == "pending":
                if without_name or (name_shown is not None
                                    and (found["name"] or "") != name_shown):
                    found["name"] = None
                conn.execute("UPDATE subscribers SET status = 'confirmed', confirmed_at = ?,"
                             " name = ? WHERE list_name = ? AND subject = ?",
                             (now, found["name"], list_name, subject))
                key = email_key(found["email"])
                conn.execute("INSERT INTO events (issue, email, kind, detail, at)"
                             " VALUES (NULL, ?, 'subscribed', ?, ?)", (key, list_name, now))
                # A confirmed new sign-up is fresh, explicit consent: it ends an earlier
                # unsubscription (or erasure), or the person would never get what they asked for.
                lifted = conn.execute("DELETE FROM suppressions WHERE email IN (?, ?)",
                                      (key, hashed_key(key))).rowcount
                if lifted:
                    conn.execute("INSERT INTO events (issue, email, kind, detail, at)"
                                 " VALUES (NULL, ?, 'resubscribed', ?, ?)", (key, list_name, now))
                    self.note({"k": "lift", "e": [key, hashed_key(key)]})
                found.update(status="confirmed", confirmed_at=now)
            return found

    def confirmed_subscribers(self, list_name: str) -> Iterator[dict[str, Any]]:
        """Confirmed web subscribers of a list, oldest first (they follow the list file)."""
        cur = self._conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM subscribers WHERE list_name = ?"
            " AND status = 'confirmed' ORDER BY id", (list_name,))
        for row in cur.fetchall():
            yield dict(zip(_COLUMNS, row, strict=True))

    def web_subscribers(self, list_name: str) -> Iterator[dict[str, Any]]:
        """Every web sign-up of a list, awaiting confirmation or confirmed, with its consent
        record (text, version, source, times), oldest first: the roster and its export."""
        cur = self._conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM subscribers WHERE list_name = ? ORDER BY id",
            (list_name,))
        while rows := cur.fetchmany(500):
            for row in rows:
                yield dict(zip(_COLUMNS, row, strict=True))

    def recipient_lang(self, issue: str, subject: str) -> str | None:
        """The list language of the recipient behind a token (their message's language)."""
        row = self._conn.execute("SELECT lang FROM recipients WHERE issue = ? AND subject = ?",
                                 (issue, subject)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def resolve_subject(self, subject: str, issue: str | None = None) -> str | None:
        """The address behind a token's subject id (a recipient of ``issue``, or a sign-up)."""
        if issue is not None:
            row = self._conn.execute("SELECT email FROM recipients WHERE issue = ? AND subject = ?",
                                     (issue, subject)).fetchone()
        else:
            row = self._conn.execute("SELECT email FROM recipients WHERE subject = ? LIMIT 1",
                                     (subject,)).fetchone()
        if row is None:
            row = self._conn.execute("SELECT email FROM subscribers WHERE subject = ? LIMIT 1",
                                     (subject,)).fetchone()
        return None if row is None else str(row[0])
