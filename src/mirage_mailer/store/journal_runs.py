"""What the store knows of a send's claim journal, so that losing the journal loses no one.

The claim journal (``services/journal.py``) holds, until the store's next batch, which rows a
send claimed and how their attempts ended. Alone it is a single point of failure: a journal
deleted, cut or garbled after a crash left every row claimed since the last batch
``pending``, and the next run mailed those readers again, recorded ``sent`` (audit 15i, F1).
So the store keeps a durable bound on what may have gone out:

* a *run*: each journal has a random token, registered here (a row of ``senders``, a table
  the PostgreSQL lease senders fill and SQLite had left empty) before its file is made, and
  written into its header; deregistered when the run ends. A journal whose token this store
  never registered belongs to another store (a copied folder: F3) and is never replayed;
* *reservations*: a send marks the rows it is about to hand out, a chunk at a time and in
  one commit, before any of them is claimed (``lease_owner = 'journal:<token>'``; the column
  the PostgreSQL leases use, unused on SQLite). The status stays ``pending``, so an
  unsubscription still stops the row and ``report`` still says pending.

At the next start (``settle``): a run whose journal was read whole only needs deregistering
(its marks are inert once nobody registers the token); a run whose journal is missing,
unreadable or cut makes its rows still marked and ``pending`` ``unknown``: they may have been
sent, and are sent again only by ``--resend-unknown``. Rows never reserved were never handed
out, so they stay ``pending``. Only SQLite sends use the journal: on PostgreSQL the store is
the journal (``store/leases.py``).
"""

from __future__ import annotations

import os
import socket

from mirage_mailer.store.core import StoreCore
from mirage_mailer.store.recipients import RecipientsMixin

PREFIX = "journal:"
_HOST = socket.gethostname()
LOST_WORDS = ("reserved by a send whose claim journal was lost or damaged: the server may"
              " have it")


class JournalRunsMixin(StoreCore):
    def register_journal(self, issue: str, token: str) -> None:
        """A send's journal is about to exist: from now on, a crash without it is noticed.
        The row names this process (host, pid and its start time, in ``expires_at``), so a
        run still alive is never ended by another folder's send sharing the store."""
        now = self._now()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO senders (owner, issue, host, pid, started_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (PREFIX + token, issue, _HOST, os.getpid(), now, _started(os.getpid())))

    def reserve(self, token: str, ids: list[int]) -> set[int]:
        """Mark ``ids`` as about to be handed out by the run ``token``, in one commit, before
        any of them is claimed; returns those still pending (the others are not sent)."""
        if not ids:
            return set()
        marks = ", ".join("?" * len(ids))
        with self._write() as conn:
            cur = conn.execute(
                f"UPDATE recipients SET lease_owner = ? WHERE id IN ({marks})"
                " AND status = 'pending' RETURNING id", (PREFIX + token, *ids))
            return {rid for (rid,) in cur.fetchall()}

    def journal_runs(self, issue: str) -> set[str]:
        """The tokens of the issue's runs that have not ended (crashed, or running now)."""
        return {owner[len(PREFIX):] for (owner,) in self._conn.execute(
            "SELECT owner FROM senders WHERE issue = ? AND owner LIKE ?",
            (issue, PREFIX + "%"))}

    def live_journal_runs(self, issue: str) -> set[str]:
        """The issue's runs whose process still runs on this host: their journals are being
        written (a send from another project folder that shares this store)."""
        return {owner[len(PREFIX):] for owner, host, pid, started in self._conn.execute(
            "SELECT owner, host, pid, expires_at FROM senders WHERE issue = ? AND owner LIKE ?",
            (issue, PREFIX + "%")) if _alive(host, pid, started)}

    def journal_issues(self) -> set[str]:
        """Issues with a run that has not ended (``store_migrate`` settles them first)."""
        return {issue for (issue,) in self._conn.execute(
            "SELECT DISTINCT issue FROM senders WHERE owner LIKE ?", (PREFIX + "%",))}

    def end_journal_runs(self, issue: str, whole: set[str], seen: set[str]) -> int:
        """Deregister the open runs of ``issue`` that are over. Those in ``whole`` had their
        journal replayed complete; for the others the rows they reserved and left ``pending``
        become ``unknown``. A run whose journal was not ``seen`` and whose process still runs
        on this host (a send from another folder sharing this store) is left alone. Returns
        how many rows that made ``unknown``."""
        runs = {owner[len(PREFIX):] for owner, host, pid, started in self._conn.execute(
            "SELECT owner, host, pid, expires_at FROM senders WHERE issue = ? AND owner LIKE ?",
            (issue, PREFIX + "%"))
            if owner[len(PREFIX):] in seen or not _alive(host, pid, started)}
        if not runs:
            return 0
        lost = sorted(runs - whole)
        now = self._now()
        made = 0
        with self._write() as conn:
            for token in lost:
                made += RecipientsMixin._move(
                    conn, issue, "status = 'pending' AND lease_owner = ?", "unknown",
                    "unknown", now, attempted=LOST_WORDS, params=(PREFIX + token,))
            conn.executemany("DELETE FROM senders WHERE owner = ?",
                             [(PREFIX + token,) for token in sorted(runs)])
        return made

    def end_journal_run(self, token: str) -> None:
        """The run ended with its store up to date: its reservations mean nothing now."""
        with self._write() as conn:
            conn.execute("DELETE FROM senders WHERE owner = ?", (PREFIX + token,))


def _started(pid: int) -> str:
    """The process's start time (clock ticks since boot, from ``/proc``): with the pid, it
    tells a live sender from a later process that was given the same pid. "" where unknown,
    and for a process that has exited (a zombie, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return ""
    if len(fields) < 20 or fields[0] in (b"Z", b"X", b"x"):
        return ""
    return fields[19].decode()


def _alive(host: str, pid: int, started: str) -> bool:
    """Whether the registered sender still runs: only this host's can be asked."""
    if host != _HOST:
        return True
    if pid == os.getpid():
        return False  # this process's own run, ended before (its journal is gone)
    now = _started(pid)
    if now or started:
        return bool(now) and now == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
