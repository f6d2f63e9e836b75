"""A store put back from an older backup, found by the folder's ledger (``store/ledger.py``).

When a command opens the store with the folder's ledger attached (``open_store(...,
state_dir=...)``), the store is compared with it: is the newest mark the ledger wrote still
in the store? Nearly always it is, for the price of one file read and one lookup by id. When
it is not, the store is older than what this folder did:

* every suppression the ledger holds and the store lacks is written again (unsubscribes,
  bounces, complaints; a forgotten person is erased again, found by the hash), so nobody who
  asked to stop is mailed, whatever the backup;
* every issue the folder sent further than the store knows is *behind*: the ledger says so
  for good (``behind``), so that nothing written since can hide it, and ``send`` and
  ``run-due`` refuse it until ``send --accept-restore`` (or a newer backup) settles it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mirage_mailer.store.core import StoreCore, hashed_key, is_hashed
from mirage_mailer.store.ledger import Ledger, LedgerState, Mark, Record

REAPPLIED = "re-applied after the tracking database was restored"


@dataclass
class Restored:
    """What the comparison found: issues behind, suppressions written again."""

    behind: set[str] = field(default_factory=set)
    reapplied: int = 0


class RestoredMixin(StoreCore):
    restored: Restored = Restored()

    def holds_mark(self, mark: Mark) -> bool:
        """The store still has the event this mark names: it is at least that new."""
        row = self._conn.execute("SELECT at FROM events WHERE id = ?", (mark[0],)).fetchone()
        return row is not None and str(row[0]) == mark[1]

    def attach_ledger(self, ledger: Ledger) -> Restored:
        """Record this store's suppressions and sends in ``ledger`` from now on, after
        bringing the store up to it (see the module docstring). A store this user cannot
        write is only compared."""
        self.ledger = ledger
        self.restored = Restored()
        state = ledger.read()
        if state.last is None or (not state.behind and self.holds_mark(state.last)):
            return self.restored
        behind = {issue for issue, mark in state.issues.items() if not self.holds_mark(mark)}
        found = Restored(behind | state.behind)
        if self.read_only:
            self.restored = found
            return found
        records: list[Record] = [{"k": "behind", "i": i} for i in sorted(behind - state.behind)]
        ledger.append(records, sync=True)
        self.ledger = None  # what is written back is in the ledger already
        try:
            found.reapplied = self._reapply(state)
        finally:
            self.ledger = ledger
        if found.reapplied or not found.behind:  # the store has all now: its mark says so
            mark = self.latest_mark()
            ledger.append([{"k": "reapplied", "n": found.reapplied,
                            "m": None if mark is None else list(mark)}], sync=True)
        self.restored = found
        return found

    def note_sent(self, issue: str) -> None:
        """A send's batch reached the store: the ledger's mark of how far ``issue`` got."""
        if self.ledger is not None and issue:
            mark = self.latest_mark()
            if mark is not None:
                self.ledger.append([{"k": "sent", "i": issue, "m": list(mark)}])

    def accept_restore(self, issue: str) -> None:
        """``send --accept-restore``: the store's knowledge of ``issue`` is what counts now;
        the readers it does not know got the issue are sent it again."""
        if self.ledger is not None:
            mark = self.latest_mark()
            self.ledger.append([{"k": "accept", "i": issue,
                                 "m": None if mark is None else list(mark)}], sync=True)
            self.restored.behind.discard(issue)

    def _reapply(self, state: LedgerState) -> int:
        """Write back every suppression the store lacks; the count written."""
        have = {str(e) for (e,) in self._conn.execute("SELECT email FROM suppressions")}
        missing = {key: source for key, source in state.unsubscribed.items()
                   if key not in have and hashed_key(key) not in have}
        erased = state.forgotten - have
        count = 0
        for key, source in sorted(missing.items()):
            count += self._resuppress(key, source)
        if erased:
            for address in self._named_by(erased):
                self.forget(address)  # type: ignore[attr-defined]  # PeopleMixin
                erased.discard(hashed_key(address))
                count += 1
            for hashed in sorted(erased):  # nobody by that hash in the store: the promise
                count += self._resuppress(hashed, "forget")
        return count

    def _resuppress(self, key: str, source: str) -> int:
        now = self._now()
        with self._write() as conn:
            added = self._suppress_in(conn, key, source, REAPPLIED,  # type: ignore[attr-defined]
                                      now, now)
        return 1 if added else 0

    def _named_by(self, hashes: set[str]) -> list[str]:
        """The addresses in the store whose hash is one of ``hashes``: a person erased after
        the backup, still named in it."""
        found: set[str] = set()
        for sql in ("SELECT DISTINCT email_key FROM recipients",
                    "SELECT DISTINCT email_key FROM subscribers",
                    "SELECT email FROM suppressions", "SELECT DISTINCT email FROM events"):
            for (value,) in self._conn.execute(sql):
                if isinstance(value, str) and not is_hashed(value) \
                        and hashed_key(value) in hashes:
                    found.add(value)
        by_hash = {hashed_key(a): a for a in sorted(found)}  # one spelling a person
        return sorted(by_hash.values())
