"""An issue's first plan of a long list, staged as ``recipients`` will keep it (SQLite).

Why: the one write transaction of a first plan spent half its time (2.7 of 5.3 s at a
million rows) turning staged rows into stored ones: an ``INSERT ... SELECT`` that looked
every row up among the suppressions and wrote it field by field. Here each row is staged
in its stored form (its id, its status, a forgotten person's hash) while the list is read,
in a private temporary database, in a table declared exactly as ``recipients`` (its SQL
read from the schema, with the same indexes but the address ones), so that the transaction
copies them with ``INSERT INTO recipients SELECT * FROM mm_plan.plan_rows``, which SQLite
runs as its transfer optimisation (each record copied as it is: 0.7 s at a million rows)
while the address indexes are dropped.

What the stored form took from the store when staging began (the highest id, the
suppressions) is read again under the write lock. When the suppressions moved meanwhile
(an unsubscribe during the reading), the staged rows they touch are brought up to date
first; when another plan took ids meanwhile, the rows go in shifted, row by row. Either
way the stored rows are those the ``INSERT ... SELECT`` from the raw rows would have
written at that moment.

Each chunk's ``queued`` events are staged too, by the same thread, in a table declared as
``events`` (``stage_events``): under the write lock they are copied as they are, which took
0.6 s at a million rows where making them from the stored rows took 1.6 s. They stand only
if nothing moved since staging began (no id shifted, no suppression changed a row, no other
event recorded); else they are made from the stored rows, as before (``events_stand``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from mirage_mailer.store.core import CACHE_KIB, NewRecipient, email_key, hashed_key
from mirage_mailer.store.dialect import Connection
from mirage_mailer.store.schema import ADDRESS_INDEXES, NEW_STATUSES
from mirage_mailer.util.fieldsjson import stored_fields

SCHEMA = "mm_plan"  # a private database of its own: dropping it is closing a file
TABLE = f"{SCHEMA}.plan_rows"
EVENTS = f"{SCHEMA}.plan_events"
COLUMNS = ("id, issue, email, email_key, name, lang, list_name, fields, status,"
           " smtp_response, created_at, subject")
INSERT_SQL = f"INSERT INTO {TABLE} ({COLUMNS}) VALUES "
INSERT_ONE = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_HASHED = "sha256:"
_ADDRESS = {name for name, _sql in ADDRESS_INDEXES}
_CREATE = re.compile(r'^\s*CREATE TABLE (?:IF NOT EXISTS )?(?:"recipients"|recipients\b)')
_INDEX = re.compile(r'^\s*CREATE (UNIQUE )?INDEX (\w+) ON (?:"recipients"|recipients\b)')
_CREATE_EVENTS = re.compile(r'^\s*CREATE TABLE (?:IF NOT EXISTS )?(?:"events"|events\b)')
_INDEX_EVENTS = re.compile(r'^\s*CREATE (UNIQUE )?INDEX (\w+) ON (?:"events"|events\b)')
# A ``queued`` event's detail, from its row: the list, or why the row is not sent
QUEUED_DETAIL = ("CASE WHEN status = 'pending' THEN list_name"
                 " ELSE status || coalesce(': ' || smtp_response, '') END")
# A first plan's ``queued`` event of a staged row, as ``RecipientsMixin._queue_events``
# makes it from the stored row: ?1 what the event ids add to the row ids, ?2 the time,
# ?3 and ?4 the chunk's first and last row id
_STAGE_EVENTS = (
    f"INSERT INTO {EVENTS} (id, recipient_id, issue, email, kind, detail, at)"
    f" SELECT id + ?1, id, issue, email, 'queued', {QUEUED_DETAIL}, ?2"
    f" FROM {TABLE} WHERE id BETWEEN ?3 AND ?4 ORDER BY id")


def create(conn: Connection) -> None:
    """``mm_plan.plan_rows``, declared as ``recipients`` is now, with its indexes but the
    address ones (the transfer needs each index of the target in the source too), in a
    private temporary database (SQLite deletes its file as it opens it, so nothing of it
    outlives the process; dropping a million-row temporary table instead took 1.2 s)."""
    table, = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table'"
                          " AND name = 'recipients'").fetchone()
    events, = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table'"
                           " AND name = 'events'").fetchone()
    drop(conn)
    conn.execute(f"ATTACH '' AS {SCHEMA}")
    # SQLite gives an attached database its default 2 MB cache: the staging thread's
    # ``stage_events`` then read each chunk's rows back from the file (217 MB of reads at a
    # million rows, strace): it gets the store's cache, and its page size (fewer reads)
    page, = conn.execute("PRAGMA main.page_size").fetchone()
    conn.execute(f"PRAGMA {SCHEMA}.page_size = {int(page)}")
    conn.execute(f"PRAGMA {SCHEMA}.cache_size = -{CACHE_KIB}")
    conn.execute(_declared(_CREATE, f"CREATE TABLE {TABLE}", table))
    for name, sql in _indexes(conn, "recipients"):
        if name not in _ADDRESS:
            conn.execute(_declared(_INDEX, rf"CREATE \1INDEX {SCHEMA}.plan_rows_\2 ON plan_rows",
                                   sql))
    # the events' copy needs every index of ``events`` in its source too (partial ones, which
    # hold no ``queued`` event, stay empty)
    conn.execute(_declared(_CREATE_EVENTS, f"CREATE TABLE {EVENTS}", events))
    for _name, sql in _indexes(conn, "events"):
        conn.execute(_declared(_INDEX_EVENTS,
                               rf"CREATE \1INDEX {SCHEMA}.plan_events_\2 ON plan_events", sql))


def _indexes(conn: Connection, table: str) -> list[tuple[str, str]]:
    return conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                        " AND tbl_name = ? AND sql IS NOT NULL", (table,)).fetchall()


def _declared(pattern: re.Pattern[str], replacement: str, sql: str) -> str:
    """``sql`` with its head rewritten, or an error (never the store's own table)."""
    new, count = pattern.subn(replacement, sql, count=1)
    if not count:
        raise ValueError(f"unexpected schema for a staged plan: {sql[:80]!r}")
    return new


def drop(conn: Connection) -> None:
    """Close the private database (outside a transaction), if open."""
    if any(row[1] == SCHEMA for row in conn.execute("PRAGMA database_list")):
        conn.execute(f"DETACH {SCHEMA}")


def _suppressions(conn: Connection) -> frozenset[str]:
    return frozenset(row[0] for row in conn.execute("SELECT email FROM suppressions"))


class FinalRows:
    """``form`` turns planned rows into stored ones, in list order, with ids after the
    table's highest when it began; ``bring_up_to_date`` (under the write lock) says by how
    much the ids moved since, after fixing what new or removed suppressions change."""

    def __init__(self, conn: Connection, issue: str, now: str) -> None:
        self.issue = issue
        self.now = now
        self.before = _top_id(conn, "recipients")
        self.next = self.before
        self.events_before = _top_id(conn, "events")
        self.changed = False  # a suppression changed staged rows (their events are stale)
        self.suppressed = _suppressions(conn)
        self.forgotten = any(key.startswith(_HASHED) for key in self.suppressed)
        # rows a suppression changed: (id, key) made 'suppressed', and (id, raw values)
        # of a forgotten person's row kept under the hash, to undo if it goes
        self.altered: list[tuple[int, str]] = []
        self.hidden: list[tuple[int, tuple[Any, ...]]] = []

    def form(self, chunk: Iterable[NewRecipient | str]) -> list[tuple[Any, ...]]:
        """The stored form of the chunk's new rows (a ``str`` is no row), as the
        ``INSERT ... SELECT`` from staged rows wrote them."""
        rows: list[tuple[Any, ...]] = []
        issue, now, suppressed = self.issue, self.now, self.suppressed
        rid = self.next
        for r in chunk:
            if not isinstance(r, NewRecipient):
                continue
            status = r.status
            if status not in NEW_STATUSES:
                raise ValueError(f"a new recipient cannot have status {status!r}")
            rid += 1
            key = email_key(r.email)
            fields = stored_fields(r.fields, r.fields_text)
            if self.forgotten and (hashed := hashed_key(r.email)) in suppressed:
                self.hidden.append((rid, (r.email, key, r.name, fields, status, r.detail,
                                          r.subject)))
                rows.append((rid, issue, hashed, hashed, None, r.lang, r.list_name, "{}",
                             "suppressed" if status == "pending" else status, None, now,
                             None))
                continue
            if status == "pending" and key in suppressed:
                self.altered.append((rid, key))
                status = "suppressed"
            rows.append((rid, issue, r.email, key, r.name, r.lang, r.list_name, fields,
                         status, r.detail, now, r.subject))
        self.next = rid
        return rows

    def bring_up_to_date(self, conn: Connection) -> int:
        """Under the write lock: staged rows made as the suppressions are now; returns how
        far the table's highest id moved since ``__init__`` (0: the ids stand)."""
        now = _suppressions(conn)
        if now != self.suppressed:
            self._resuppress(conn, now)
            self.changed = True
        return _top_id(conn, "recipients") - self.before

    def _resuppress(self, conn: Connection, now: frozenset[str]) -> None:
        added, removed = now - self.suppressed, self.suppressed - now
        back = [(rid,) for rid, key in self.altered if key in removed]
        conn.executemany(f"UPDATE {TABLE} SET status = 'pending' WHERE id = ?", back)
        for rid, (email, key, name, fields, status, detail, subject) in self.hidden:
            if hashed_key(email) in removed:
                if status == "pending" and key in now:
                    status = "suppressed"
                conn.execute(
                    f"UPDATE {TABLE} SET email = ?, email_key = ?, name = ?, fields = ?,"
                    " status = ?, smtp_response = ?, subject = ? WHERE id = ?",
                    (email, key, name, fields, status, detail, subject, rid))
        plain = [key for key in added if not key.startswith(_HASHED)]
        hashes = [key for key in added if key.startswith(_HASHED)]
        if plain:
            conn.execute(f"UPDATE {TABLE} SET status = 'suppressed' WHERE status = 'pending'"
                         " AND email_key IN (SELECT value FROM json_each(?))",
                         (json.dumps(plain),))
        if hashes:  # someone forgotten meanwhile: their row keeps only the hash
            conn.execute(
                f"UPDATE {TABLE} SET email = mm_hashed(email_key),"
                " email_key = mm_hashed(email_key), name = NULL, fields = '{}',"
                " status = CASE WHEN status = 'pending' THEN 'suppressed' ELSE status END,"
                " smtp_response = NULL, subject = NULL"
                f" WHERE email_key NOT LIKE '{_HASHED}%'"
                " AND mm_hashed(email_key) IN (SELECT value FROM json_each(?))",
                (json.dumps(hashes),))

    def stage_events(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """The ``queued`` events of a chunk just staged (its ids in order, without a gap),
        with ids after the events' highest when staging began."""
        if not rows:
            return
        first, last = rows[0][0], rows[-1][0]
        if last - first + 1 != len(rows):
            raise ValueError("a staged chunk's ids must follow one another")
        conn.execute(_STAGE_EVENTS, (self.events_before - self.before, self.now, first, last))

    def events_stand(self, conn: Connection) -> bool:
        """Under the write lock, after ``bring_up_to_date``, for rows copied with their ids
        as staged: whether the staged events are still those the stored rows make (no row
        changed, no event recorded since)."""
        return not self.changed and _top_id(conn, "events") == self.events_before


def _top_id(conn: Connection, table: str) -> int:
    """The table's highest id, 0 when empty (``table`` is one of ours, never input)."""
    top: int = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
    return top


def insert_sql(conn: Connection, *, shifted: bool) -> str:
    """Into ``recipients``: as they are (SQLite's transfer of whole records, which needs
    the plain ``SELECT *``), or with the ids moved by ``?1`` and, should two rows share an
    address, the first one kept (indexes in place)."""
    if not shifted:
        return f"INSERT INTO recipients SELECT * FROM {TABLE}"
    names = [row[1] for row in conn.execute("PRAGMA table_info(recipients)")]
    cols = ", ".join(names)
    picked = ", ".join("id + ?1" if name == "id" else name for name in names)
    return (f"INSERT INTO recipients ({cols}) SELECT {picked} FROM {TABLE}"
            " WHERE true ORDER BY id ON CONFLICT DO NOTHING")



class ColumnRows(FinalRows):
    """An issue's first plan staged from list columns (``services/plan_store.py``): the
    caller builds each row's stored form itself, as plain tuples, with the ids ``take``
    gives in list order. Only for a store without suppressions when staging begins (so no
    row is made ``suppressed`` or hashed here); ``bring_up_to_date`` applies any made
    since, as for ``form``'s rows."""

    def __init__(self, conn: Connection, issue: str, now: str) -> None:
        super().__init__(conn, issue, now)
        if self.suppressed:
            raise ValueError("a plan staged from columns needs a store without suppressions")

    def take(self, count: int) -> range:
        """The ids of the next ``count`` rows."""
        ids = range(self.next + 1, self.next + 1 + count)
        self.next += count
        return ids

    def pending_one(self, list_name: str) -> str:
        """``INSERT_ONE`` for a ``pending`` row of ``list_name``, whose (id, email,
        email_key, name, lang, fields, subject) alone are bound: the issue, list, status,
        response and time are the same on every row, and binding them cost a quarter of
        staging a row (``bench/stage_binding.py``: 5.8 -> 4.2 µs)."""
        return (f"(?, {sql_text(self.issue)}, ?, ?, ?, ?, {sql_text(list_name)}, ?,"
                f" 'pending', NULL, {sql_text(self.now)}, ?)")


def sql_text(value: str) -> str:
    """``value`` as an SQL string literal: quotes doubled; a NUL, which would end the
    literal in SQLite's C string, is refused (issue ids and list names never hold one)."""
    if "\x00" in value:
        raise ValueError("a NUL character cannot be written as an SQL literal")
    return "'" + value.replace("'", "''") + "'"
