"""Writing a SQLite store's rows into an empty PostgreSQL store: the target of ``store migrate``.

Everything happens on one connection in one transaction (``PgTarget.transaction``): the
schema's migrations, every table's rows, the identity sequences, and the counts read back for
the comparison. PostgreSQL's DDL is transactional, so a failure anywhere (a row refused, a
difference in the counts, the connection lost) leaves the database exactly as it was: empty,
ready for the next try.

Rows go through ``COPY ... FROM STDIN`` (psycopg's ``cursor.copy`` and ``write_row``): they
stream from the source page by page and psycopg sends them in chunks, so memory stays flat
for a store of millions of rows, at a fraction of the cost of an INSERT per row. A column
with a serial or identity sequence is set past the largest id copied, so the next row
PostgreSQL numbers does not collide with a copied one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mirage_mailer.store.errors import StoreError, StoreUnavailable
from mirage_mailer.store.pg import NUL, WRITE_LOCK, driver, nul_free, translate_error
from mirage_mailer.store.pg_schema import PG_MIGRATIONS
from mirage_mailer.store.sqlite_snapshot import NOT_COPIED
from mirage_mailer.util.database import PostgresUrl
from mirage_mailer.util.errors import Problem

if TYPE_CHECKING:
    import psycopg

REPORT_EVERY = 10_000  # rows between two calls of ``on_rows`` while a table is copied
_VERSIONS = ('CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY,'
             ' name TEXT COLLATE "C" NOT NULL, applied_at TEXT COLLATE "C" NOT NULL)')
# psycopg logs (and Python prints, with no logging set up) a COPY it could not end on a lost
# connection; that is said once, as one line, by ``transaction``.
logging.getLogger("psycopg").addHandler(logging.NullHandler())


class PgTarget:
    """One PostgreSQL database receiving a store, on its own connection."""

    def __init__(self, database: PostgresUrl, *, timeout: float = 10.0) -> None:
        driven = driver()
        self.database = database
        self.shown = str(database)  # never holds a password (``parse_postgres``)
        self._psycopg = driven
        self.replaced: list[str] = []  # values whose NUL characters became U+FFFD
        try:
            self._conn: psycopg.Connection[Any] = driven.connect(
                database.url, connect_timeout=max(1, int(timeout)),
                application_name="mirage-mailer store migrate", password=database.password())
        except driven.OperationalError as exc:
            raise StoreUnavailable(self._problem(
                f"cannot connect to PostgreSQL ({_first_line(exc)}); nothing was copied",
                "check that the server is up and reachable, that the database exists "
                "(createdb), and the password (PGPASSWORD, ~/.pgpass or --password-env)"),
            ) from None
        except driven.Error as exc:
            raise translate_error(database, exc, "cannot connect to the PostgreSQL database; "
                                  "nothing was copied") from None

    def close(self) -> None:
        self._conn.close()

    def _problem(self, message: str, hint: str) -> Problem:
        return Problem(self.shown, None, message, hint)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The one transaction of a migration; a lost connection is exit 3, never a traceback."""
        try:
            with self._conn.transaction():
                # the store's own write lock: a second migration into this database, or a
                # mirage-mailer opening it meanwhile (which would create the schema), waits
                # for this transaction and then finds the store it made
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                yield
        except self._psycopg.OperationalError as exc:
            raise StoreUnavailable(self._problem(
                f"the connection to PostgreSQL failed during the migration ({_first_line(exc)}); "
                "nothing was kept there: the copy is one transaction",
                "check that the server is up and reachable, then rerun 'store migrate'"),
            ) from None
        except self._psycopg.Error as exc:  # a refusal: rights, a full disk, a constraint
            raise translate_error(self.database, exc, "PostgreSQL refused the migration "
                                  "(nothing was kept there: the copy is one transaction)"
                                  ) from None

    def tables(self) -> dict[str, list[str]]:
        """Each table of the current schema with its columns, in declaration order."""
        found: dict[str, list[str]] = {}
        for table, column in self._conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"):
            found.setdefault(str(table), []).append(str(column))
        return found

    def schema_version(self) -> int:
        """Migrations applied here: 0 when the database holds no store at all."""
        if "schema_migrations" not in self.tables():
            return 0
        row = self._conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        found = row.fetchone()
        return int(found[0]) if found else 0

    def migrate(self, version: int) -> None:
        """Apply the PostgreSQL migrations up to ``version`` (the source's), inside the
        transaction, as the store applies them when it opens a database (``StoreCore``)."""
        if version > len(PG_MIGRATIONS):
            raise StoreError(self._problem(
                f"the SQLite store has schema version {version}, newer than this "
                f"mirage-mailer knows ({len(PG_MIGRATIONS)})", "upgrade mirage-mailer"))
        self._conn.execute(_VERSIONS)
        current = self.schema_version()
        if current > version:
            raise StoreError(self._problem(
                f"the database has a store of schema version {current}, newer than the "
                f"SQLite store's ({version}); nothing was copied",
                "migrate into a new, empty database"))
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        for number, (name, script) in enumerate(PG_MIGRATIONS[current:version],
                                                start=current + 1):
            self._conn.execute(script.encode("utf-8"))  # several statements: no parameters
            self._conn.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                               "VALUES (%s, %s, %s)", (number, name, now))

    def held_rows(self, tables: Iterable[str]) -> dict[str, int]:
        """Tables among ``tables`` that exist here and hold rows, with their counts."""
        present = self.tables()
        counts = {name: self.count(name) for name in tables
                  if name in present and name not in NOT_COPIED}
        return {name: n for name, n in counts.items() if n}

    def count(self, table: str) -> int:
        row = self._conn.execute(
            self._sql.SQL("SELECT count(*) FROM {}").format(self._sql.Identifier(table)))
        found = row.fetchone()
        return int(found[0]) if found else 0

    @property
    def _sql(self) -> Any:
        return self._psycopg.sql

    def status_counts(self) -> dict[tuple[str, str], int]:
        """(issue, status) -> rows, as ``SqliteSnapshot.status_counts`` reads the source."""
        return {(str(issue), str(status)): int(n) for issue, status, n in self._conn.execute(
            "SELECT issue, status, count(*) FROM recipients GROUP BY issue, status")}

    def copy(self, table: str, columns: list[str], rows: Iterable[tuple[Any, ...]],
             on_rows: Callable[[int], None] | None = None) -> int:
        """Stream ``rows`` into ``table`` (same columns, same ids); returns how many."""
        sql = self._sql
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
        n = 0
        try:
            with self._conn.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    try:
                        copy.write_row(row)
                    except self._psycopg.DataError:  # raised before the row is sent
                        fixed = self._without_nul(table, columns, row)
                        if fixed is None:
                            raise
                        copy.write_row(fixed)
                    n += 1
                    if on_rows is not None and n % REPORT_EVERY == 0:
                        on_rows(n)
        except self._psycopg.OperationalError:
            raise
        except self._psycopg.Error as exc:  # a value PostgreSQL refuses (a wrong type)
            raise StoreError(self._problem(
                f"PostgreSQL refused a row of table {table} ({_first_line(exc)}); nothing was "
                "kept there: the copy is one transaction",
                "the SQLite file holds a value this schema cannot take; report it, with this "
                "line")) from None
        if on_rows is not None:
            on_rows(n)
        return n

    def _without_nul(self, table: str, columns: list[str],
                     row: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The row with U+FFFD for each NUL character, which PostgreSQL's text cannot hold
        (SQLite's can: a relay's reply, a bounce's diagnostic). Anything else refused is
        refused again (None). Each value changed is named in ``replaced`` for the user."""
        fixed = nul_free(row)
        if fixed is row:
            return None
        key = f" (id {row[0]})" if columns and columns[0] == "id" else ""
        self.replaced += [f"{table}.{column}{key}" for column, v in zip(columns, row, strict=True)
                          if isinstance(v, str) and NUL in v]
        return tuple(fixed)

    def reset_sequences(self, tables: dict[str, list[str]]) -> None:
        """Every serial or identity column of ``tables`` numbers on after its largest value."""
        sql = self._sql
        for table, columns in tables.items():
            for column in columns:
                found = self._conn.execute(
                    "SELECT pg_get_serial_sequence(%s, %s)",
                    (sql.Identifier(table).as_string(self._conn), column)).fetchone()
                if not found or found[0] is None:
                    continue
                self._conn.execute(
                    sql.SQL("SELECT setval(%s, coalesce((SELECT max({}) FROM {}), 0) + 1, false)")
                    .format(sql.Identifier(column), sql.Identifier(table)), (found[0],))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines()[0].split())
