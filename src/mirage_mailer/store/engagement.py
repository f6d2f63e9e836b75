"""Opens and clicks (only when tracking.opens/clicks are on), and timelines for reports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mirage_mailer.store.core import StoreCore

# Repeats the partial index's condition word for word: SQLite uses events_engagement only then.
_ENGAGEMENT = "kind IN ('opened', 'clicked')"
_PAGE = 2000  # timeline rows a query reads: two short strings each


class EngagementMixin(StoreCore):
    def record_engagement(self, issue: str, subject: str, kind: str,
                          url: str | None = None) -> bool:
        """Log an ``opened`` or ``clicked`` event for a recipient of ``issue``."""
        if kind not in ("opened", "clicked"):
            raise ValueError(f"unknown engagement {kind!r}")
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
                " SELECT id, issue, email, ?, ?, ? FROM recipients WHERE issue = ? AND subject = ?"
                " LIMIT 1", (kind, url, self._now(), issue, subject))
            return cur.rowcount == 1

    def engagement(self, issue: str) -> dict[str, Any]:
        """Opens (total, unique) and clicks per link (total, unique) for one issue."""
        conn = self._conn
        opens, unique_opens = conn.execute(
            "SELECT count(*), count(DISTINCT recipient_id) FROM events"
            f" WHERE issue = ? AND {_ENGAGEMENT} AND kind = 'opened'", (issue,)).fetchone()
        clicks = [
            {"url": url, "clicks": n, "unique": u}
            for url, n, u in conn.execute(
                "SELECT detail, count(*), count(DISTINCT recipient_id) FROM events"
                f" WHERE issue = ? AND {_ENGAGEMENT} AND kind = 'clicked'"
                " GROUP BY detail ORDER BY 2 DESC, 1",
                (issue,))]
        return {"opens": opens, "unique_opens": unique_opens, "clicks": clicks}

    def timeline(self, issue: str) -> Iterator[tuple[str, str]]:
        """(ISO time, kind) of every delivery outcome of ``issue``, oldest first, read a
        page at a time (keyset on the id), so a report's chart costs no row per message."""
        last = 0
        while True:
            page = self._conn.execute(
                "SELECT id, at, kind FROM events WHERE issue = ? AND kind IN"
                " ('sent', 'failed', 'deferred', 'suppressed') AND id > ? ORDER BY id LIMIT ?",
                (issue, last, _PAGE)).fetchall()
            yield from ((str(at), str(kind)) for _id, at, kind in page)
            if len(page) < _PAGE:
                return
            last = page[-1][0]

    def unsubscriptions(self) -> list[dict[str, Any]]:
        """Unsubscribe events (time and source), for the report; addresses left out."""
        cur = self._conn.execute(
            "SELECT at, detail FROM events WHERE kind = 'unsubscribed' ORDER BY id")
        return [{"at": at, "source": detail} for at, detail in cur]
