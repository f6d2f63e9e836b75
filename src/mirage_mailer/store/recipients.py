"""Recipients of an issue: queueing, claiming and recording each send, and the report rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from itertools import chain, groupby, islice
from typing import Any

from mirage_mailer.store import final_rows, staging
from mirage_mailer.store.claim_check import ClaimCheck
from mirage_mailer.store.core import (
    CACHE_KIB,
    NewRecipient,
    Prior,
    Recipient,
    StoreCore,
    _insert_params,
    _utc_now,
    email_key,
    hashed_key,
)
from mirage_mailer.store.dialect import Connection
from mirage_mailer.store.pg_schema import PLAN_STAGE
from mirage_mailer.store.relays import CARRIED
from mirage_mailer.store.schema import ADDRESS_INDEXES, NEW_STATUSES, REPORT_STATUSES
from mirage_mailer.util.fieldsjson import stored_fields

_SUPPRESSED = ("(email_key IN (SELECT email FROM suppressions)"
               " OR mm_hashed(email_key) IN (SELECT email FROM suppressions))")
_PAGE = 500
COMMIT_EVERY = 2.0  # seconds a reconcile transaction may hold the write lock
BULK_MIN = 20_000  # new rows from which an issue's first plan rebuilds the address indexes
BULK_SHARE = 2  # ... when the table holds at most this many times as many other rows
_STAGE_ROWS = staging.STAGE_ROWS  # rows (and ids) a statement: 5,000 parameters at most
_SORT_THREADS = 2  # helper threads of SQLite's sorter while the address indexes are built
_SORT_CACHE_KIB = 4_000  # page cache, and so sorted run, while they are built
_OUTCOME_SQL = {
    "sent": "'sent'",
    "deferred": f"CASE WHEN {_SUPPRESSED} THEN 'suppressed' ELSE 'pending' END",
    "failed": "'failed'",
    # no reply after the end of DATA: the relay may hold the message; never retried on its own
    "unknown": "'unknown'",
}

# The response of a row whose message was on the wire when its run stopped (killed, or
# ended before the answer came): the server may have it, so it is ``unknown``
INFLIGHT_WORDS = "on the wire when the run stopped: the server may have it"
# Rows a list edit may still change: never attempted, or never valid, or gone from the list.
_OPEN = "('pending', 'invalid', 'withdrawn')"
_OPEN_CLOSED = "('pending', 'invalid')"  # what leaving the list withdraws
# ?1 email ?2 name ?3 lang ?4 list ?5 fields ?6 subject ?7 status ?8 detail ?9 issue ?10 key
# ?11 now. A row reopened as pending for a suppressed address is 'suppressed'.
_NEW_STATUS = (f"CASE WHEN ?7 = 'pending' AND {_SUPPRESSED} THEN 'suppressed' ELSE ?7 END")
_REOPEN_EVENT = (
    "INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
    " SELECT id, issue, ?1, CASE WHEN ?7 = 'invalid' THEN 'invalid' ELSE 'requeued' END,"
    " CASE WHEN ?7 = 'invalid' THEN ?8 WHEN status = 'invalid' THEN 'corrected in the list'"
    " ELSE 'back in the list' END, ?11"
    f" FROM recipients WHERE issue = ?9 AND email_key = ?10 AND status IN {_OPEN}"
    f" AND status != {_NEW_STATUS}")
_REOPEN_RESPONSE = ("CASE WHEN ?7 = 'invalid' THEN ?8"
                    " WHEN status IN ('invalid', 'withdrawn') THEN NULL ELSE smtp_response END")
# A row the list still holds as it was is not rewritten: rerunning a send of a long list
# rewrote every pending row (and its subject index entry) to the same values.
_REOPEN = (
    f"UPDATE recipients SET status = {_NEW_STATUS}, email = ?1, name = ?2, lang = ?3,"
    f" list_name = ?4, fields = ?5, subject = ?6, smtp_response = {_REOPEN_RESPONSE}"
    f" WHERE issue = ?9 AND email_key = ?10 AND status IN {_OPEN}"
    f" AND (status IS NOT {_NEW_STATUS} OR email IS NOT ?1 OR name IS NOT ?2"
    " OR lang IS NOT ?3 OR list_name IS NOT ?4 OR fields IS NOT ?5 OR subject IS NOT ?6"
    f" OR smtp_response IS NOT {_REOPEN_RESPONSE})")


# ``RecipientsMixin._forward`` on PostgreSQL: the row's update and its event in one statement
# (a data-modifying CTE, which SQLite has not), so a batch of them is one pipelined
# ``executemany`` instead of two round trips per outcome (measured in docs/design.md).
# ?1 code ?2 response ?3 time ?4 message id ?5 id ?6 attempt ?7 who ?8 kind ?9 detail
_FORWARD_PG = (
    "WITH moved AS (UPDATE recipients SET status = {status}, attempts = attempts + 1,"
    " smtp_code = ?1, smtp_response = ?2, last_attempt_at = ?3, message_id = ?4"
    " WHERE id = ?5 AND attempts = ?6 AND status IN ('pending', 'sending', 'suppressed')"
    " AND mm_hashed(email_key) = ?7 RETURNING id, issue, email)"
    " INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
    " SELECT id, issue, email, ?8, ?9, ?3 FROM moved")


def _forward_pg(conn: Connection,
                outcomes: Iterable[tuple[int, str, int, str, int | None, str, str, str]]
                ) -> None:
    """Runs of one kind, in the journal's order: a row deferred and then sent in the same
    batch must meet its two outcomes in that order (each applies at its attempt number)."""
    for kind, run in groupby(outcomes, key=lambda outcome: outcome[3]):
        conn.executemany(_FORWARD_PG.format(status=_OUTCOME_SQL[kind]), [
            (code, response, at, message_id, rid, attempt, who, kind,
             response if code is None else f"{code} {response}")
            for rid, who, attempt, _kind, code, response, message_id, at in run])


# ``record_batch`` on SQLite: every kind in one statement, run by ``executemany`` (SQLite's C
# loop) instead of two ``execute`` calls from Python per outcome (measured: 14 to 17 µs an
# outcome before). ?1 kind ?2 code ?3 response ?4 time ?5 message id ?6 id ?7 attempt ?8 who;
# the event's detail is "<code> <response>", or the response alone. The event goes first,
# under the very condition the update then meets: a record already applied (a batch
# replayed) moves nothing and logs nothing.
_FORWARDABLE = ("WHERE id = ?6 AND attempts = ?7 AND status IN ('pending', 'sending', 'suppressed')"
                " AND mm_hashed(email_key) = ?8")
_FORWARD_EVENT = ("INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
                  " SELECT id, issue, email, ?1,"
                  " CASE WHEN ?2 IS NULL THEN ?3 ELSE ?2 || ' ' || ?3 END, ?4"
                  f" FROM recipients {_FORWARDABLE}")
_FORWARD_ROW = (
    "UPDATE recipients SET status = CASE ?1"
    + "".join(f" WHEN '{kind}' THEN {sql}" for kind, sql in _OUTCOME_SQL.items())
    + " END, attempts = attempts + 1, smtp_code = ?2, smtp_response = ?3,"
    f" last_attempt_at = ?4, message_id = ?5 {_FORWARDABLE}")


def _forward_sqlite(conn: Connection,
                    outcomes: Iterable[tuple[int, str, int, str, int | None, str, str, str]]
                    ) -> None:
    """Outcomes in runs that name each row once (a row deferred and then sent in the same
    batch meets its second outcome in the next run, at its next attempt number); in a run,
    every event, then every update, each under the same condition."""
    run: list[tuple[Any, ...]] = []
    rows: set[int] = set()
    for rid, who, attempt, kind, code, response, message_id, at in outcomes:
        if rid in rows:
            _forward_run(conn, run)
            run, rows = [], set()
        rows.add(rid)
        run.append((kind, code, response, at, message_id, rid, attempt, who))
    _forward_run(conn, run)


def _forward_run(conn: Connection, run: list[tuple[Any, ...]]) -> None:
    if run:
        conn.executemany(_FORWARD_EVENT, run)
        conn.executemany(_FORWARD_ROW, run)


class RecipientsMixin(StoreCore):
    # -- queueing ------------------------------------------------------------------------------

    def add_recipients(self, issue: str, rows: Iterable[NewRecipient], *, batch: int = 1000) -> int:
        """Queue rows; the first of duplicate addresses wins and a rerun never resets a row.

        Streams ``rows`` and commits per batch, so a list of any size uses flat memory. A new
        pending row whose address is already suppressed is stored as ``suppressed``.
        """
        added = 0
        it = iter(rows)
        while chunk := list(islice(it, batch)):
            for row in chunk:
                if row.status not in NEW_STATUSES:
                    raise ValueError(f"a new recipient cannot have status {row.status!r}")
            now = self._now()
            with self._write() as conn:
                added += self._insert(conn, [_insert_params(issue, r, now) for r in chunk],
                                      now)
        return added

    @staticmethod
    def _insert(conn: Connection, params: list[tuple[Any, ...]], now: str) -> int:
        """Insert rows (``_insert_params`` tuples) inside the caller's write transaction,
        with a ``queued`` event for each row that is new; returns how many were."""
        max_id = conn.execute("SELECT coalesce(max(id), 0) FROM recipients")
        before: int = max_id.fetchone()[0]
        # Rows go in by address (a stable sort: the first of equal addresses still wins),
        # each with the id of its place in the list, so that ids, and the sending order,
        # stay the list's: the two address indexes then take a batch in one ordered sweep
        # instead of at random pages (at 1,000,000 rows, 10 % less time).
        order = sorted(range(len(params)), key=lambda i: params[i][2])
        # f: the person was forgotten (GDPR erasure); a list that still holds them
        # must not bring their address back, so the row keeps only the hash.
        conn.executemany(
            "INSERT INTO recipients (issue, email, email_key, name, lang,"
            " list_name, fields, status, smtp_response, created_at, subject, id)"
            " SELECT ?1, CASE WHEN f THEN ?11 ELSE ?2 END,"
            " CASE WHEN f THEN ?11 ELSE ?3 END,"
            " CASE WHEN f THEN NULL ELSE ?4 END, ?5, ?6, CASE WHEN f THEN '{}' ELSE ?7 END,"
            " CASE WHEN ?8 = 'pending' AND (f OR EXISTS"
            " (SELECT 1 FROM suppressions WHERE email = ?3))"
            " THEN 'suppressed' ELSE ?8 END, CASE WHEN f THEN NULL ELSE ?9 END, ?10,"
            " CASE WHEN f THEN NULL ELSE ?12 END, ?13"
            " FROM (SELECT EXISTS (SELECT 1 FROM suppressions WHERE email = ?11) AS f) AS x"
            " WHERE true ON CONFLICT DO NOTHING",
            [(*params[i], before + 1 + i) for i in order],
        )
        # Rowids only grow inside our write lock, so the new rows are those above `before`.
        cur = conn.execute(
            "INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
            " SELECT id, issue, email, 'queued', CASE WHEN status = 'pending'"
            " THEN list_name ELSE status || coalesce(': ' || smtp_response, '') END, ?"
            " FROM recipients WHERE id > ? ORDER BY id",
            (now, before),
        )
        return cur.rowcount

    def reconcile(self, issue: str, changes: Iterable[NewRecipient | str], *,
                  batch: int = 10_000) -> None:
        """Bring an issue's rows in line with the lists as they are now (see ``planning``).

        A ``NewRecipient`` updates the row of its address if that row is still open to list
        edits (``pending``, ``invalid``, ``withdrawn``: a corrected row is queued again, a row
        that turned bad is ``invalid``) and is queued if there is none; a ``str`` is the key of
        a ``pending`` or ``invalid`` row no longer in any list, which becomes ``withdrawn``.
        ``sent``, ``failed``, ``unknown`` and ``suppressed`` rows never change here. Each
        change is logged as an event, and a rerun is idempotent.

        Chunks of ``batch`` rows are written in transactions of up to ``COMMIT_EVERY``
        seconds: each commit writes every index page its rows touched to the WAL, and the
        address indexes are in random order, so committing each 10,000-row chunk wrote the
        same pages again and again (at 1,000,000 rows the cost grew with the square of the
        list). Another writer (the web app's unsubscribe) waits at most that long: the next
        chunk is read (the lists, the planner) with the lock free. An issue's first plan of
        ``BULK_MIN`` rows or more goes in at once instead (``_bulk_insert``).
        """
        it = iter(changes)
        # an issue without rows (its first send) has nothing to reopen or withdraw: its
        # rows are only inserted (a rerun after a crash mid-way finds rows, and checks)
        fresh = not self.has_rows(issue)
        if fresh:  # a long list's first plan goes in at once (see _bulk_insert)
            head = list(islice(it, BULK_MIN))
            if len(head) >= BULK_MIN:
                self._bulk_insert(issue, chain(head, it))
                return
            it = iter(head)
        chunk = list(islice(it, batch))
        while chunk:
            with self._write() as conn:
                began = time.monotonic()
                while chunk:
                    self._reconcile_chunk(conn, issue, chunk, fresh=fresh)
                    if time.monotonic() - began >= COMMIT_EVERY:
                        chunk = []  # the next one is read with the lock free
                        break
                    chunk = list(islice(it, batch))
            chunk = chunk or list(islice(it, batch))

    def _bulk_insert(self, issue: str, changes: Iterable[NewRecipient | str]) -> None:
        """An issue's first plan of a long list: every row in one transaction, the address
        indexes built again in one sorted pass instead of filled in random order.

        The rows are first staged in a private temporary table, with the lock free (the
        lists are read and checked meanwhile; on SQLite a thread writes them there beside
        the planning, ``store/staging.py``, in the form ``recipients`` keeps them,
        ``store/final_rows.py``); then one write transaction inserts them in list order
        and, unless the table holds many more rows of other issues (whose index entries
        would be sorted again too), drops and recreates ``ADDRESS_INDEXES``. SQLite's schema
        changes are transactional: a crash at any point leaves the store as it was before
        (no row, every index) or with every row, and a rerun completes it. The write lock is
        held for that transaction only (measured in docs/design.md). Should two staged rows
        share an address (the planner never yields that), the unique index refuses, the
        transaction is rolled back and the rows go in the usual way, first wins.
        """
        if self.is_postgres:
            self._bulk_insert_staged(issue, changes)
            return
        with self._staged(final_rows.FinalRows(self._conn, issue, self._now())) as staged:
            it = iter(changes)
            while chunk := list(islice(it, 10_000)):
                staged.put(staged.final.form(chunk))

    @contextmanager
    def first_plan(self, issue: str) -> Iterator[StagedPlan]:
        """An issue's first plan staged from list columns (SQLite, no suppression): the
        caller puts plain tuples into the ``StagedPlan``; when the block ends without an
        error, the rows go into ``recipients`` in one transaction, as ``_bulk_insert``'s
        do (the same copy, index builds, crash contract). An error leaves the store as
        it was: the staged rows are in a private database that closes with it."""
        if self.is_postgres:
            raise ValueError("a plan staged from columns is for SQLite stores")
        with self._staged(final_rows.ColumnRows(self._conn, issue, self._now())) as staged:
            yield staged

    @contextmanager
    def _staged(self, final: final_rows.FinalRows) -> Iterator[StagedPlan]:
        """The staging both first plans share: rows put into the private staged table (by
        a thread where SQLite allows it) with the store's lock free, then, when the block
        ends without an error, copied into ``recipients`` in one transaction."""
        conn = self._conn
        final_rows.create(conn)
        writer = None
        try:
            # the staged copy's CHECK on status (the store's own, which the copy must declare
            # for SQLite's transfer) cost a third of staging a row; ``form`` (and the column
            # planner) give only a new row's statuses, and ``recipients`` keeps its CHECK
            conn.execute("PRAGMA ignore_check_constraints = ON")
            try:
                conn.execute("BEGIN")  # the temporary table only: no lock on the store
                if staging.available():
                    writer = staging.StageWriter(
                        conn, final_rows.TABLE, sql=final_rows.INSERT_SQL,
                        one=final_rows.INSERT_ONE,
                        after=partial(final.stage_events, conn))
                staged = StagedPlan(conn, final, writer)
                yield staged
                staged.finish()
                conn.execute("COMMIT")
            finally:
                if writer is not None:
                    writer.close()  # before the connection is used again (planning failed)
                conn.execute("PRAGMA ignore_check_constraints = OFF")
            with self._long_wal():
                try:
                    self._insert_final(final, rebuild=True)
                except self._integrity:  # two rows of one address: the usual way
                    self._insert_final(final, rebuild=False)
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            final_rows.drop(conn)

    def _insert_final(self, final: final_rows.FinalRows, *, rebuild: bool) -> None:
        """The rows staged in their stored form into ``recipients``, in one transaction:
        copied as they are while the address indexes are dropped (SQLite's transfer), or,
        when another plan took ids meanwhile or the indexes stay, row by row."""
        with self._write() as conn:
            shift = final.bring_up_to_date(conn)
            before = final.before + shift
            rebuild = rebuild and before <= (final.next - final.before) * BULK_SHARE
            if rebuild:
                for name, _sql in ADDRESS_INDEXES:
                    conn.execute(f"DROP INDEX {name}")
            shifted = shift != 0 or not rebuild
            conn.execute(final_rows.insert_sql(conn, shifted=shifted),
                         (shift,) if shifted else ())
            if not shifted and final.events_stand(conn):
                # the events staged beside the rows, copied as they are (final_rows.py)
                conn.execute(f"INSERT INTO events SELECT * FROM {final_rows.EVENTS}")
            else:
                self._queue_events(conn, final.now, before)
            if rebuild:
                self._build_indexes(conn)

    def _bulk_insert_staged(self, issue: str, changes: Iterable[NewRecipient | str]) -> None:
        """PostgreSQL's first plan of a long list: the rows staged as planned, then
        inserted in one transaction with the indexes in place (``_insert_staged``)."""
        conn = self._conn
        conn.execute(PLAN_STAGE[self.backend])
        try:
            forgotten = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM suppressions"
                " WHERE email >= 'sha256:' AND email < 'sha256;')").fetchone()[0]
            conn.execute("DELETE FROM temp.plan_stage")
            it = iter(changes)
            conn.execute("BEGIN")  # the temporary table only: no lock on the store
            while chunk := list(islice(it, 10_000)):
                for r in chunk:
                    if isinstance(r, NewRecipient) and r.status not in NEW_STATUSES:
                        raise ValueError(f"a new recipient cannot have status {r.status!r}")
                rows = [(r.email, email_key(r.email), r.name, r.lang, r.list_name,
                         stored_fields(r.fields, r.fields_text),
                         r.status, r.detail, r.subject,
                         hashed_key(r.email) if forgotten else None)
                        for r in chunk if isinstance(r, NewRecipient)]  # a str: no row
                self._stage(conn, rows)
            conn.execute("COMMIT")
            self._insert_staged(issue)
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("DROP TABLE IF EXISTS temp.plan_stage")

    def _stage(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Rows into the staging table (PostgreSQL: ``executemany`` is one pipelined
        batch there)."""
        conn.executemany(staging.STAGE_SQL.format(table="temp.plan_stage")
                         + staging.STAGE_ONE, rows)

    def _insert_staged(self, issue: str) -> None:
        """The staged rows into ``recipients`` (ids in list order), in one transaction, the
        indexes in place (DROP INDEX would lock the table against every reader, the web's
        unsubscribe page, until the commit; PostgreSQL's B-trees take random inserts
        well)."""
        now = self._now()
        with self._write() as conn:
            before: int = conn.execute("SELECT coalesce(max(id), 0) FROM recipients"
                                       ).fetchone()[0]
            # f: the person was forgotten (see _insert); the hash is staged only when
            # someone was
            conn.execute(
                "INSERT INTO recipients (id, issue, email, email_key, name, lang,"
                " list_name, fields, status, smtp_response, created_at, subject)"
                " SELECT ?1 + seq, ?2, CASE WHEN f THEN hashed ELSE email END,"
                " CASE WHEN f THEN hashed ELSE email_key END, CASE WHEN f THEN NULL ELSE name"
                " END, lang, list_name, CASE WHEN f THEN '{}' ELSE fields END,"
                " CASE WHEN status = 'pending' AND (f OR EXISTS"
                " (SELECT 1 FROM suppressions s WHERE s.email = email_key))"
                " THEN 'suppressed' ELSE status END, CASE WHEN f THEN NULL ELSE detail END,"
                " ?3, CASE WHEN f THEN NULL ELSE subject END"
                " FROM (SELECT *, hashed IS NOT NULL AND EXISTS (SELECT 1 FROM suppressions s"
                " WHERE s.email = hashed) AS f FROM temp.plan_stage) AS staged WHERE true"
                " ORDER BY seq ON CONFLICT DO NOTHING",
                (before, issue, now))
            self._queue_events(conn, now, before)

    @staticmethod
    def _queue_events(conn: Connection, now: str, before: int) -> None:
        """One ``queued`` event per row a first plan inserted (ids above ``before``)."""
        conn.execute(
            "INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
            f" SELECT id, issue, email, 'queued', {final_rows.QUEUED_DETAIL}, ?"
            " FROM recipients WHERE id > ? ORDER BY id", (now, before))

    @staticmethod
    def _build_indexes(conn: Connection) -> None:
        # SQLite's sorter may use a helper thread per index build (the list reader child is
        # done by now, so its core is free): 1.6 -> 1.0 s of wall clock for the unique
        # index at a million rows, the same CPU. Each thread sorts runs as large as the
        # page cache: two 16 MB runs at once overflow a 16 MB L3 cache, 4 MB ones do not
        # (the three builds 2.5 to 2.8 s -> 1.9 to 2.1 s at a million rows, docs/design.md)
        conn.execute(f"PRAGMA threads = {_SORT_THREADS}")
        conn.execute(f"PRAGMA cache_size = -{_SORT_CACHE_KIB}")
        try:
            for _name, sql in ADDRESS_INDEXES:
                conn.execute(sql)
        finally:
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            conn.execute("PRAGMA threads = 0")

    def _reconcile_chunk(self, conn: Connection, issue: str,
                         chunk: list[NewRecipient | str], *, fresh: bool = False) -> None:
        """One chunk of ``reconcile``, inside the caller's write transaction."""
        rows = [c for c in chunk if isinstance(c, NewRecipient)]
        for row in rows:
            if row.status not in NEW_STATUSES:
                raise ValueError(f"a new recipient cannot have status {row.status!r}")
        now = self._now()
        gone = [(now, issue, c) for c in dict.fromkeys(
            email_key(c) for c in chunk if isinstance(c, str))]
        params = [(r.email, r.name, r.lang, r.list_name,
                   stored_fields(r.fields, r.fields_text), r.subject,
                   r.status, r.detail, issue, email_key(r.email), now) for r in rows]
        # Only addresses with a row can be reopened: asking the others costs a
        # statement each for nothing (all of them, the first time a list is sent).
        have = set() if fresh else self._have_rows(conn, issue, [p[9] for p in params])
        reopen = [p for p in params if p[9] in have]
        conn.executemany(_REOPEN_EVENT, reopen)
        conn.executemany(_REOPEN, [p[:10] for p in reopen])
        conn.executemany(
            "INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
            " SELECT id, issue, email, 'withdrawn', status || ': no longer in the list',"
            " ?1 FROM recipients WHERE issue = ?2 AND email_key = ?3"
            f" AND status IN {_OPEN_CLOSED}", gone)
        conn.executemany(
            "UPDATE recipients SET status = 'withdrawn' WHERE issue = ? AND email_key = ?"
            f" AND status IN {_OPEN_CLOSED}", [g[1:] for g in gone])
        # the addresses with no row yet (a row there is already is left alone); the
        # hash that finds a forgotten person is needed only if someone was forgotten
        forgotten = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM suppressions"
            " WHERE email >= 'sha256:' AND email < 'sha256;')").fetchone()[0]
        self._insert(conn, [
            (issue, email, key, name, lang, list_name, fields, status, detail, now,
             hashed_key(email) if forgotten else None, subject)
            for email, name, lang, list_name, fields, subject, status, detail, _i, key,
            _n in params], now)

    @staticmethod
    def _have_rows(conn: Connection, issue: str, keys: list[str]) -> set[str]:
        """The keys among ``keys`` that have a row for ``issue``."""
        found: set[str] = set()
        for start in range(0, len(keys), _PAGE):
            part = keys[start:start + _PAGE]
            marks = ", ".join("?" * len(part))
            found.update(key for (key,) in conn.execute(
                f"SELECT email_key FROM recipients WHERE issue = ? AND email_key IN ({marks})",
                (issue, *part)))
        return found

    def extent(self, issue: str) -> tuple[int, int]:
        """(rows, highest id) of ``issue`` now: a plan that met every one of these rows in the
        lists knows that no row has left them, without reading them all again."""
        rows, top = self._conn.execute("SELECT count(*), coalesce(max(id), 0) FROM recipients"
                                       " WHERE issue = ?", (issue,)).fetchone()
        return int(rows), int(top)

    def has_rows(self, issue: str) -> bool:
        """Whether ``issue`` has any row yet (before its first send it has none)."""
        found = self._conn.execute("SELECT EXISTS (SELECT 1 FROM recipients WHERE issue = ?)",
                                   (issue,))
        return bool(found.fetchone()[0])

    def priors(self, issue: str, keys: list[str]) -> dict[str, Prior]:
        """The rows of these keys as stored (at most ~500 keys), by key."""
        if not keys:
            return {}
        marks = ", ".join("?" * len(keys))
        cur = self._conn.execute(
            "SELECT email_key, status, smtp_code, smtp_response, email, name, lang, list_name,"
            f" fields, subject, id FROM recipients WHERE issue = ? AND email_key IN ({marks})",
            (issue, *keys))
        return {row[0]: Prior._make(row[1:]) for row in cur.fetchall()}

    def priors_after(self, issue: str, after: int, count: int) -> list[tuple[str, Prior]]:
        """(key, row) of the next ``count`` rows of ``issue`` by id after ``after``. A first
        plan gives ids in list order, so a rerun meets its rows in this order: a page read
        along the table finds them, where looking each up by address reads the address index
        and the table at random places (a third of a rerun's time at a million rows)."""
        cur = self._conn.execute(
            "SELECT email_key, status, smtp_code, smtp_response, email, name, lang, list_name,"
            " fields, subject, id FROM recipients WHERE issue = ? AND id > ? ORDER BY id"
            " LIMIT ?", (issue, after, count))
        return [(row[0], Prior._make(row[1:])) for row in cur.fetchall()]

    def issue_rows(self, issue: str) -> Iterator[tuple[str, str, str, str | None, str,
                                                       int | None, str | None]]:
        """(email, key, status, lang, list, smtp_code, smtp_response) of every row, paged."""
        columns = "email, email_key, status, lang, list_name, smtp_code, smtp_response"
        for _id, *row in self._paged(columns, "true", issue, _PAGE):
            yield tuple(row)

    def suppressed_keys(self) -> set[str]:
        """Every suppression entry: lowercased addresses, and hashes of forgotten ones."""
        return {row[0] for row in self._conn.execute("SELECT email FROM suppressions")}

    def _transition(self, issue: str, where: str, new_status: str, kind: str, *,
                    attempted: str | None = None) -> int:
        """Move every row of ``issue`` matching ``where`` to ``new_status``, logging each.
        ``attempted``: the rows' message went out without an answer, so that attempt counts
        and this is the row's response (the report says why it is unknown)."""
        now = self._now()
        with self._write() as conn:
            return self._move(conn, issue, where, new_status, kind, now, attempted=attempted)

    @staticmethod
    def _move(conn: Connection, issue: str, where: str, new_status: str, kind: str, now: str,
              *, attempted: str | None = None, params: tuple[Any, ...] = ()) -> int:
        """``_transition`` inside the caller's write transaction; ``params`` fill ``where``."""
        conn.execute(
            "INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
            " SELECT id, issue, email, ?, coalesce(?, status), ? FROM recipients"
            f" WHERE issue = ? AND {where} ORDER BY id",
            (kind, attempted, now, issue, *params),
        )
        if attempted is None:
            cur = conn.execute(f"UPDATE recipients SET status = ? WHERE issue = ? AND {where}",
                               (new_status, issue, *params))
        else:
            cur = conn.execute(
                "UPDATE recipients SET status = ?, attempts = attempts + 1, smtp_code = NULL,"
                f" smtp_response = ? WHERE issue = ? AND {where}",
                (new_status, attempted, issue, *params))
        return int(cur.rowcount)

    def apply_suppressions(self, issue: str) -> int:
        """Pending/unknown rows whose address is suppressed become ``suppressed``.

        Every row of the issue is looked at, so the test is only as wide as the suppressions
        need: none, nothing to do; no forgotten person's hash, no hash of every address (a
        SHA-256 in Python per row: a tenth of a rerun's time at 200,000 rows)."""
        anyone, hashed = self._conn.execute(
            "SELECT EXISTS (SELECT 1 FROM suppressions), EXISTS (SELECT 1 FROM suppressions"
            " WHERE email >= 'sha256:' AND email < 'sha256;')").fetchone()
        if not anyone:
            return 0
        test = _SUPPRESSED if hashed else "email_key IN (SELECT email FROM suppressions)"
        return self._transition(
            issue, f"status IN ('pending', 'unknown') AND {test}", "suppressed", "suppressed")

    def recover_inflight(self, issue: str) -> int:
        """A crash's leftover ``sending`` rows become ``unknown``; only under the send lock.
        Their message was handed to the server (the claim comes first), so the attempt
        counts, and the row says why it is unknown (it showed 0 attempts and no response)."""
        return self._transition(issue, "status = 'sending'", "unknown", "unknown",
                                attempted=INFLIGHT_WORDS)

    def requeue_unknown(self, issue: str, keys: Iterable[str] | None = None) -> int:
        """``unknown`` rows go back to ``pending`` (``--resend-unknown``): all of them, or
        those of ``keys`` only (the ones this run's plan sends: a row no longer in the list,
        or suppressed, stays ``unknown``, so a later send never mails it again unasked)."""
        if keys is None:
            return self._transition(issue, "status = 'unknown'", "pending", "requeued")
        wanted = list(dict.fromkeys(keys))
        now = self._now()
        moved = 0
        with self._write() as conn:  # every chunk in one transaction
            for start in range(0, len(wanted), _PAGE):
                chunk = tuple(wanted[start:start + _PAGE])
                where = ("status = 'unknown' AND email_key IN ("
                         + ", ".join("?" * len(chunk)) + ")")
                moved += self._move(conn, issue, where, "pending", "requeued", now,
                                    params=chunk)
        return moved

    # -- sending -------------------------------------------------------------------------------

    def _paged(self, columns: str, where: str, issue: str, batch: int,
               check: ClaimCheck | None = None) -> Iterator[Any]:
        """Rows of ``issue`` by id, one page at a time (keyset), so memory stays flat.

        Each page is fetched completely before it is yielded, so callers may write meanwhile.
        ``check`` notes each page's ids as read pending (``claim_check``).
        """
        last = 0
        while True:
            version = check.version() if check is not None else None
            page = self._conn.execute(
                f"SELECT id, {columns} FROM recipients WHERE issue = ? AND {where} AND id > ?"
                " ORDER BY id LIMIT ?",
                (issue, last, batch),
            ).fetchall()
            if check is not None:
                check.noted(version, [r[0] for r in page])
            yield from page
            if len(page) < batch:
                return
            last = page[-1][0]

    def iter_pending(self, issue: str, *, batch: int = _PAGE,
                     shard: tuple[int, int] | None = None) -> Iterator[Recipient]:
        """Pending rows by id. A row deferred back to ``pending`` waits for the next pass.

        ``shard`` (k, n): only rows whose id is k modulo n, one sending process's share.
        """
        columns = ("issue, email, name, lang, list_name, fields, status, attempts, message_id,"
                   " subject, smtp_code")
        where = "status = 'pending'"
        if shard is not None:
            k, n = int(shard[0]), int(shard[1])
            where += f" AND id % {n} = {k}"
        for (rid, iss, email, name, lang, list_name, fields, status, attempts, mid, subject,
             code) in self._paged(columns, where, issue, batch, self._claim_check()):
            yield Recipient(rid, iss, email, name, lang, list_name,
                            json.loads(fields) if fields != "{}" else {}, status, attempts, mid,
                            subject, code)

    def mark_sending(self, recipient_id: int, message_id: str) -> bool:
        """Claim a row just before handing it to the server; False when it is no longer pending.

        A row suppressed since it was read is not claimed, so the sender can skip it.
        """
        return recipient_id in self.record([], [(recipient_id, message_id)])

    @staticmethod
    def _claim(conn: Connection, recipient_id: int, message_id: str, now: str) -> bool:
        cur = conn.execute(
            "UPDATE recipients SET status = 'sending', message_id = ?, last_attempt_at = ?"
            " WHERE id = ? AND status IN ('pending', 'sending')",
            (message_id, now, recipient_id),
        )
        return cur.rowcount == 1

    def record(self, outcomes: Iterable[tuple[int, str, int | None, str]],
               claims: Iterable[tuple[int, str]] = ()) -> set[int]:
        """Outcomes (id, sent|deferred|failed, code, response), then claims (id, message id),
        in one commit; returns the ids claimed (a row suppressed meanwhile is not).

        The sender calls this right before transmitting, so a message's ``sent`` and its
        connection's next ``sending`` land together, and the claims of connections that are
        ready at the same moment share the commit: still never more than one ``sending`` row
        per connection, at a fraction of the commits of marking each separately.
        """
        now = self._now()
        with self._write() as conn:
            for recipient_id, kind, code, response in outcomes:
                self._apply(conn, recipient_id, kind, code, response, now)
            return {rid for rid, message_id in claims if self._claim(conn, rid, message_id, now)}

    @staticmethod
    def _apply(conn: Connection, recipient_id: int, kind: str, code: int | None,
               response: str, now: str) -> None:
        """One outcome: the row's new status and attempt count, plus its event."""
        cur = conn.execute(
            f"UPDATE recipients SET status = {_OUTCOME_SQL[kind]}, attempts = attempts + 1,"
            " smtp_code = ?, smtp_response = ?, last_attempt_at = ? WHERE id = ?",
            (code, response, now, recipient_id),
        )
        if cur.rowcount != 1:
            raise LookupError(f"no recipient with id {recipient_id}")
        conn.execute(
            "INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
            " SELECT id, issue, email, ?, ?, ? FROM recipients WHERE id = ?",
            (kind, response if code is None else f"{code} {response}", now, recipient_id),
        )

    # -- the claim journal's side (``services/journal.py``) --------------------------------------

    _stamp_second = -1
    _stamp_prefix = ""

    def stamp(self) -> str:
        """Now, as the store writes times: the journal keeps each outcome's own time.

        Twice a message, so the date part is formatted once a second (``_now``'s text,
        milliseconds truncated as ``isoformat`` does); a store on another clock (tests)
        asks it."""
        if self._clock is not _utc_now:
            return self._now()
        now = time.time()
        second = int(now)
        micro = round((now - second) * 1e6)  # as datetime.fromtimestamp rounds
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        if second != self._stamp_second:
            self._stamp_prefix = datetime.fromtimestamp(second, UTC).isoformat()[:19]
            self._stamp_second = second
        return f"{self._stamp_prefix}.{micro // 1000:03d}+00:00"

    _claims: ClaimCheck | None = None

    def _claim_check(self) -> ClaimCheck:
        """This connection's check of what is still claimable (made once the store is open
        in WAL mode, so its WAL index exists)."""
        if self._claims is None:
            self._claims = ClaimCheck(None if self.is_postgres else self.path)
        return self._claims

    def close(self) -> None:
        """The claim check's mapping of the WAL index is released with the connection."""
        if self._claims is not None:
            self._claims.close()
            self._claims = None
        super().close()

    def claimable(self, recipient_id: int) -> bool:
        """Whether the row may be sent now (still pending, or claimed by this run), with no
        commit. A row suppressed since it was queued is not claimable. Rows read by
        ``iter_pending`` are vouched for without a read while nothing has committed since
        (``store/claim_check.py``); any commit, anyone's, makes them read again."""
        return self._claim_check().claimable(recipient_id, self._still_claimable)

    def _still_claimable(self, ids: list[int]) -> set[int]:
        """Those of ``ids`` still pending or sending, in one read."""
        found: set[int] = set()
        for start in range(0, len(ids), _STAGE_ROWS):
            part = ids[start:start + _STAGE_ROWS]
            marks = ", ".join("?" * len(part))
            found.update(rid for (rid,) in self._conn.execute(
                f"SELECT id FROM recipients WHERE id IN ({marks})"
                " AND status IN ('pending', 'sending')", part))
        return found

    def record_batch(
            self, outcomes: Iterable[tuple[int, str, int, str, int | None, str, str, str]],
            inflight: Iterable[tuple[int, str, int, str, str]] = (),
            relays: Iterable[tuple[int, str, int, str]] = ()) -> None:
        """Bring rows up to date from the claim journal in one commit.

        ``outcomes``: (id, who, attempt, sent|deferred|failed|unknown, code, response, message
        id, time); ``inflight``: (id, who, attempt, message id, time) of messages on the wire
        now, which become ``sending`` (``unknown`` if the run never records their outcome);
        ``relays``: (id, who, attempt, relay URL) of the outcomes a relay gave. ``who`` is
        ``hashed_key`` of the row's address: a record never lands on another person's row.
        Each is applied only while the row's ``attempts`` still equals the journal's attempt
        number, so a batch applied twice (a crash between the commit and the journal's
        restart) counts nothing twice: the journal only moves a row forward, and where the
        store is already further on, the store wins.
        """
        with self._write() as conn:
            if self.is_postgres:  # a round trip per statement: one pipelined batch per run
                _forward_pg(conn, outcomes)
            else:
                _forward_sqlite(conn, outcomes)
            conn.executemany(
                "UPDATE recipients SET status = 'sending', message_id = ?,"
                " last_attempt_at = ? WHERE id = ? AND attempts = ?"
                " AND status IN ('pending', 'sending') AND mm_hashed(email_key) = ?",
                [(message_id, at, rid, attempt, who)
                 for rid, who, attempt, message_id, at in inflight])
            # (id, who, attempt, relay) of this batch's attempts, with several relays
            # (``store/relays.py``): set where that attempt's outcome was applied (a later
            # attempt's relay wins; a store further on keeps its own), on that person's row
            conn.executemany(
                "UPDATE recipients SET relay = ? WHERE id = ? AND attempts = ?"
                " AND mm_hashed(email_key) = ?",
                [(relay, rid, attempt + 1, who) for rid, who, attempt, relay in relays])

    def mark_sent(self, recipient_id: int, code: int | None, response: str) -> None:
        """The server accepted the message (250 after DATA)."""
        self.record([(recipient_id, "sent", code, response)])

    def mark_deferred(self, recipient_id: int, code: int | None, response: str) -> None:
        """Transient failure: back to ``pending`` (or ``suppressed`` if unsubscribed meanwhile)."""
        self.record([(recipient_id, "deferred", code, response)])

    def mark_failed(self, recipient_id: int, code: int | None, response: str) -> None:
        """Permanent failure (5xx): never retried."""
        self.record([(recipient_id, "failed", code, response)])

    # -- reporting -----------------------------------------------------------------------------

    def counts(self, issue: str) -> dict[str, int]:
        """The report's counters (the contract's six, then ``withdrawn``), zeros included;
        in-flight ``sending`` counts as unknown."""
        result = dict.fromkeys(REPORT_STATUSES, 0)
        for status, n in self._conn.execute(
            "SELECT status, count(*) FROM recipients WHERE issue = ? GROUP BY status", (issue,)
        ):
            result["unknown" if status == "sending" else status] += n
        return result

    def recipients(self, issue: str, *, relay: bool = False,
                   unsent: bool = False) -> Iterator[dict[str, Any]]:
        """Report rows with exactly the keys of docs/design.md "Reports", by id, paged so
        memory stays flat. ``relay`` adds the relay that carried each message (its
        URL; None for a row no relay answered for: pending, suppressed, ...); ``unsent``
        reads only the rows not ``sent`` (the report table's detail)."""
        columns = ("email, status, attempts, message_id, smtp_code, smtp_response,"
                   " last_attempt_at, relay")
        where = "status <> 'sent'" if unsent else "true"
        for _id, email, status, attempts, message_id, code, response, at, by in self._paged(
            columns, where, issue, _PAGE
        ):
            row = {
                "email": email,
                "status": status,
                "attempts": attempts,
                "message_id": message_id,
                "smtp_code": code,
                "smtp_response": response,
                "last_attempt_at": at,
            }
            if status == "sending":  # on the wire: as the next run (or the reaper) records it
                row.update(status="unknown", attempts=attempts + 1, smtp_code=None,
                           smtp_response=INFLIGHT_WORDS)
            if relay:
                row["relay"] = by if status in CARRIED else None
            yield row

    def issues(self) -> list[str]:
        """Issues with at least one recorded row, sorted."""
        cur = self._conn.execute("SELECT DISTINCT issue FROM recipients ORDER BY issue")
        return [r[0] for r in cur]


class StagedPlan:
    """``RecipientsMixin.first_plan``'s rows as they are staged: ``put`` rows in their
    stored form (``final_rows.COLUMNS``), their ids taken from ``ids`` in list order; a
    thread stages them where SQLite allows it."""

    def __init__(self, conn: Connection, final: final_rows.FinalRows,
                 writer: staging.StageWriter | None) -> None:
        self._conn, self.final, self._writer = conn, final, writer

    @property
    def now(self) -> str:
        """Every row's ``created_at`` (and its ``queued`` event's time)."""
        return self.final.now

    def ids(self, count: int) -> range:
        assert isinstance(self.final, final_rows.ColumnRows)  # ids of rows staged as columns
        return self.final.take(count)

    def put(self, rows: list[tuple[Any, ...]], one: str = final_rows.INSERT_ONE) -> None:
        """Rows in their stored form, or bound into ``one`` (``pending_one``'s)."""
        if self._writer is not None:
            self._writer.put(rows, one)
        else:
            staging.stage_rows(self._conn, final_rows.TABLE, rows, sql=final_rows.INSERT_SQL,
                               one=one)
            self.final.stage_events(self._conn, rows)

    def pending_one(self, list_name: str) -> str:
        """The placeholders of a ``pending`` row of ``list_name`` put as (id, email,
        email_key, name, lang, fields, subject): ``final_rows.ColumnRows.pending_one``."""
        assert isinstance(self.final, final_rows.ColumnRows)
        return self.final.pending_one(list_name)

    def finish(self) -> None:
        """Wait until every row put is staged (or raise what stopped the thread)."""
        if self._writer is not None:
            self._writer.finish()


def finished(counts: Mapping[str, int]) -> bool:
    """An issue's ``counts`` say it has rows and none is left to send: an ``unknown`` row
    waits for a person's ``send --resend-unknown``, never for cron. (``run-due`` also reopens
    such an issue whose lists changed while it has ``invalid`` rows: ``find_due``.)"""
    return sum(counts.values()) > 0 and counts["pending"] == 0
