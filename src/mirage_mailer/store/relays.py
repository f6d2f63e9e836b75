"""Which relay carried each message (``transport.relays``): for ``report``, read only here
and, row by row, by ``RecipientsMixin.recipients(relay=True)``.

The relay is written with the outcome it belongs to, in the same batch commit
(``RecipientsMixin.record_batch``); it names the relay by its URL without a login, never a
credential. A row sent through the single ``transport.url`` keeps it NULL.
"""

from __future__ import annotations

from mirage_mailer.store.core import StoreCore

# a relay answered for these rows (or may hold the message); a pending row's last relay
# tried and failed, another may still carry it
CARRIED = ("sent", "failed", "unknown", "sending")
_CARRIED = "(" + ", ".join(f"'{status}'" for status in CARRIED) + ")"


class RelaysMixin(StoreCore):
    def relay_counts(self, issue: str) -> dict[str, dict[str, int]]:
        """Per relay, what it carried of ``issue``: sent, failed, unknown (``sending``)."""
        found: dict[str, dict[str, int]] = {}
        for relay, status, n in self._conn.execute(
                "SELECT relay, status, count(*) FROM recipients WHERE issue = ?"
                f" AND relay IS NOT NULL AND status IN {_CARRIED} GROUP BY relay, status"
                " ORDER BY relay, status", (issue,)):
            shown = "unknown" if status == "sending" else str(status)
            counts = found.setdefault(str(relay), {})
            counts[shown] = counts.get(shown, 0) + int(n)
        return found
