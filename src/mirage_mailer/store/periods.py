"""Figures over a reporting period (``report --period``): which issues went out when, who they
reached by language and list, and the unsubscribes that followed each issue. Reads only.

An issue's send date is when the server first accepted one of its messages (the earliest
``last_attempt_at`` of its ``sent`` rows: a ``sent`` row is never attempted again). Times are
stored as UTC ISO 8601 strings of one format, so comparing them as text orders them.
"""

from __future__ import annotations

from typing import Any

from mirage_mailer.store.core import StoreCore

# Repeats the partial index's condition word for word (see engagement.py).
_ENGAGEMENT = "kind IN ('opened', 'clicked')"


class PeriodsMixin(StoreCore):
    def first_sends(self) -> dict[str, str]:
        """Issue -> when its first message was accepted, for every issue that reached anyone."""
        cur = self._conn.execute(
            "SELECT issue, min(last_attempt_at) FROM recipients"
            " WHERE status = 'sent' AND last_attempt_at IS NOT NULL GROUP BY issue"
            " ORDER BY issue")
        return {str(issue): str(at) for issue, at in cur}

    def breakdown(self, issue: str) -> list[tuple[str, str | None, str, int]]:
        """(status, subscriber's lang, list, rows) of ``issue``; ``sending`` is ``unknown``."""
        cur = self._conn.execute(
            "SELECT CASE WHEN status = 'sending' THEN 'unknown' ELSE status END, lang,"
            " list_name, count(*) FROM recipients WHERE issue = ? GROUP BY 1, 2, 3"
            " ORDER BY 1, lang IS NOT NULL, 2, 3", (issue,))  # no lang first, on both
        return [(str(status), lang, str(list_name), int(n)) for status, lang, list_name, n in cur]

    def distinct_reached(self, issues: list[str]) -> int:
        """Distinct addresses sent at least one of ``issues`` (a reader of three is one)."""
        if not issues:
            return 0
        marks = ", ".join("?" * len(issues))
        row = self._conn.execute(
            "SELECT count(DISTINCT email_key) FROM recipients"
            f" WHERE status = 'sent' AND issue IN ({marks})", tuple(issues)).fetchone()
        return int(row[0])

    def unsubscribes_by_issue(self) -> dict[str | None, int]:
        """Unsubscribes, each counted for the last issue its person was sent before asking
        (None: nobody was sent anything before, e.g. a sign-up that left again)."""
        cur = self._conn.execute(
            "SELECT issue, count(*) FROM (SELECT (SELECT r.issue FROM recipients r"
            " WHERE r.email_key = e.email AND r.status = 'sent' AND r.last_attempt_at <= e.at"
            " ORDER BY r.last_attempt_at DESC, r.id DESC LIMIT 1) AS issue"
            " FROM events e WHERE e.kind = 'unsubscribed') AS u GROUP BY issue"
            " ORDER BY issue IS NOT NULL, issue")  # None first on both (NULLs sort apart)
        return {issue: int(n) for issue, n in cur}

    def readers_engaged(self, issue: str) -> dict[str, Any]:
        """Readers who opened, readers who clicked any link (unique), and the raw totals."""
        row = self._conn.execute(
            "SELECT count(DISTINCT CASE WHEN kind = 'opened' THEN recipient_id END),"
            " count(DISTINCT CASE WHEN kind = 'clicked' THEN recipient_id END),"
            " count(CASE WHEN kind = 'opened' THEN 1 END),"
            " count(CASE WHEN kind = 'clicked' THEN 1 END)"
            f" FROM events WHERE issue = ? AND {_ENGAGEMENT}", (issue,)).fetchone()
        openers, clickers, opens, clicks = row
        return {"openers": int(openers or 0), "clickers": int(clickers or 0),
                "opens": int(opens or 0), "clicks": int(clicks or 0)}
