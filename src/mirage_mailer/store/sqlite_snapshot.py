"""A SQLite tracking store read as one fixed snapshot, without writing to it: the source of
``store migrate``.

The file is opened read-only (``mode=ro``) and everything is read inside one read
transaction, so the copy, its row counts and its status counts all describe the same moment,
whatever another process commits meanwhile. Whether anyone did commit is asked afterwards
(``PRAGMA data_version``): a copy of a store that moved on would leave those changes behind.

Tables and columns are read from the file's own schema, never from a list kept here, so a
column a later migration adds is copied without anyone remembering to add it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mirage_mailer.store.core import StoreError
from mirage_mailer.util.errors import Problem, display_path

PAGE = 2_000  # rows fetched at a time: memory stays flat whatever the store's size
# Bookkeeping, not data: the target records its own migrations as it applies them.
NOT_COPIED = frozenset({"schema_migrations"})


def quoted(name: str) -> str:
    """An identifier as SQL text (both SQLite and PostgreSQL quote with double quotes)."""
    return '"' + name.replace('"', '""') + '"'


class SqliteSnapshot:
    """The store at one moment: its tables, their rows in id order, and their counts."""

    def __init__(self, path: Path, *, timeout: float = 10.0) -> None:
        self.path = path
        try:
            self._conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                         timeout=timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(f"cannot open the tracking database read-only: {exc}") from exc
        try:
            self._conn.execute("BEGIN")  # a read transaction: every read below sees one moment
            self.schema_version = self._scalar(
                "SELECT coalesce(max(version), 0) FROM schema_migrations")
            # data_version counts other connections' commits; read inside the transaction, it
            # is compared with its value after the transaction (``changed_since``)
            self._data_version = self._scalar("PRAGMA data_version")
        except sqlite3.Error as exc:
            self._conn.close()
            raise self._error(f"cannot read the tracking database: {exc}") from exc

    def _error(self, message: str) -> StoreError:
        return StoreError(Problem(display_path(self.path), None, message,
                                  "check the file, or name another one with --from"))

    def _scalar(self, sql: str) -> int:
        value: int = self._conn.execute(sql).fetchone()[0]
        return value

    def tables(self) -> dict[str, list[str]]:
        """Each data table with its columns, in the order the schema declares them."""
        names = [str(row[0]) for row in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]
        return {name: [str(col[1]) for col in self._conn.execute(
                    f"PRAGMA table_info({quoted(name)})")]
                for name in names if name not in NOT_COPIED}

    def rows(self, table: str, columns: list[str]) -> Iterator[tuple[Any, ...]]:
        """The table's rows in insertion (id) order, a page at a time."""
        try:
            cursor = self._conn.execute(f"SELECT {', '.join(quoted(c) for c in columns)} "
                                        f"FROM {quoted(table)} ORDER BY rowid")
            while page := cursor.fetchmany(PAGE):
                yield from page
        except sqlite3.Error as exc:  # a page damaged since the check: said, not a traceback
            raise self._error(f"cannot read table {table} of the tracking database: {exc}; "
                              "nothing was kept in the target") from None

    def count(self, table: str) -> int:
        return self._scalar(f"SELECT count(*) FROM {quoted(table)}")

    def status_counts(self) -> dict[tuple[str, str], int]:
        """(issue, status) -> rows: what ``report`` counts, compared on both sides."""
        return {(str(issue), str(status)): int(n) for issue, status, n in self._conn.execute(
            "SELECT issue, status, count(*) FROM recipients GROUP BY issue, status")}

    def changed_since_opened(self) -> bool:
        """Whether another process committed to the file since the snapshot was taken. Ends
        the snapshot: call it once, after the last read."""
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")
        return self._scalar("PRAGMA data_version") != self._data_version

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SqliteSnapshot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
