"""The PostgreSQL side of the store's connection: psycopg 3, imported only when a
``postgresql://`` store is opened, so the SQLite default never needs it.

``PgConnection`` gives the mixins sqlite3's statement surface (``execute``, ``executemany``,
``in_transaction``; cursors with ``fetch*`` and ``rowcount``) over one autocommit psycopg
connection, on which the store issues BEGIN/COMMIT itself, as it does on SQLite. Each SQL
text is translated once (``dialect.translate``). A server that cannot be reached, goes away
or keeps a lock too long is ``StoreUnavailable`` (exit 3, a rerun resumes): libpq reports a
refused login or a database that does not exist the same way, without a code to tell them
apart. Once connected, a server that refuses what the store needs (rights on the schema) is
``StoreError`` (exit 2). The URL in every message is the one from mirage.yaml, which never
holds a password.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from mirage_mailer.store.dialect import Cursor, arrange, arrange_many, translate
from mirage_mailer.store.errors import StoreError, StoreUnavailable
from mirage_mailer.util.database import PostgresUrl
from mirage_mailer.util.errors import Problem

if TYPE_CHECKING:
    import psycopg

INSTALL_HINT = "pip install 'mirage-mailer[postgresql]'"
# pg_advisory_xact_lock's key for the store's writers: one constant, so every mirage-mailer
# process writing to this database (on any host) queues behind the one writing now, as
# SQLite's BEGIN IMMEDIATE makes them do on one file. ("mirage" in ASCII.)
WRITE_LOCK = 0x6D6972616765
MIN_SERVER = 110000  # PostgreSQL 11, as libpq numbers versions
UNAVAILABLE_HINT = ("check that the PostgreSQL server is running and reachable, and the "
                    "credentials (PGPASSWORD, ~/.pgpass or tracking.password_env); a rerun "
                    "resumes where this one stopped")


NUL = "\0"
REPLACEMENT = "\ufffd"


def nul_free(parameters: Sequence[Any]) -> Sequence[Any]:
    """``parameters`` with U+FFFD for each NUL character, which PostgreSQL's text cannot hold
    and SQLite's can (a relay's reply, a bounce's diagnostic, a list's field): without it,
    psycopg's DataError would lose the outcome being recorded. The same sequence when no str
    holds a NUL, the common case, at the cost of one memchr per str."""
    for value in parameters:
        if isinstance(value, str) and NUL in value:
            return [v.replace(NUL, REPLACEMENT) if isinstance(v, str) else v
                    for v in parameters]
    return parameters


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines()[0].split())


def driver() -> Any:
    """psycopg, or a ``StoreError`` (exit 2) saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise StoreError(Problem(
            "tracking.database", None,
            "a postgresql:// tracking database needs psycopg, which is not installed",
            INSTALL_HINT)) from None
    return psycopg


def translate_error(database: PostgresUrl, exc: BaseException, doing: str) -> StoreError:
    """One line for a server's refusal or absence; which exit code depends on the kind."""
    psycopg = driver()
    where = str(database)
    if isinstance(exc, psycopg.OperationalError):
        return StoreUnavailable(Problem(where, None, f"{doing}: {_first_line(exc)}",
                                          UNAVAILABLE_HINT))
    return StoreError(Problem(
        where, None, f"{doing}: {_first_line(exc)}",
        "check tracking.database in mirage.yaml and the rights of its user on the database"))


def _refusal(exc: BaseException) -> bool:
    """A server's refusal of what the store needs, not a bug in our SQL."""
    from psycopg import errors

    return isinstance(exc, errors.InsufficientPrivilege | errors.InvalidCatalogName
                      | errors.InvalidSchemaName | errors.ReadOnlySqlTransaction)


class PgConnection:
    """sqlite3's statement surface over a psycopg connection (see the module's docstring)."""

    def __init__(self, database: PostgresUrl, *, timeout: float) -> None:
        pg = driver()
        self.database = database
        self._psycopg = pg
        unset = database.password_env
        if unset and not os.environ.get(unset):
            # never another credential instead (PGPASSWORD, ~/.pgpass): the configuration
            # names where the password is, and this host does not have it (exit 2)
            raise StoreError(Problem(
                str(database), None,
                f"tracking.password_env names {unset}, which is not set on this host",
                f"set {unset} to the database password in the environment of this command "
                "(cron included), or remove tracking.password_env to use PGPASSWORD or "
                "~/.pgpass"))
        try:
            self._conn: psycopg.Connection[Any] = pg.connect(
                database.url, autocommit=True, cursor_factory=pg.RawCursor,
                connect_timeout=max(1, int(timeout)), application_name="mirage-mailer",
                password=database.password())
        except pg.Error as exc:
            raise translate_error(database, exc, "cannot connect to the tracking database"
                                  ) from None
        try:
            version = self._conn.info.server_version
            if version < MIN_SERVER:  # sha256() (mm_hashed) came with PostgreSQL 11
                raise StoreError(Problem(
                    str(database), None, f"the server runs PostgreSQL {version // 10000}; "
                    "mirage-mailer needs PostgreSQL 11 or later", "upgrade the server"))
            # a set-up statement, not libpq's options=, which would replace the URL's own
            # (e.g. a search_path); lock waits end like SQLite's busy timeout
            self.execute(f"SET lock_timeout = {int(timeout * 1000)}")
        except BaseException:
            self._conn.close()
            raise

    # sqlite3's two diagnostics, which the tests use to see what a store asks and writes:
    # every statement as the store wrote it (before translation), and the rows changed.
    total_changes = 0
    _trace: Callable[[str], object] | None = None

    def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        self._trace = callback

    def _count(self, sql: str, cur: Any, times: int = 1) -> None:
        if self._trace is not None:
            for _ in range(times):
                self._trace(sql)
        if cur.rowcount > 0 and sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.total_changes += cur.rowcount

    def _fail(self, exc: Exception) -> Exception:
        if isinstance(exc, self._psycopg.OperationalError) or _refusal(exc):
            return translate_error(self.database, exc, "the tracking database failed")
        return exc

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        text, order = translate(sql)
        try:  # a connection the server closed fails already here
            cur = self._conn.cursor()
            cur.execute(text, nul_free(arrange(order, parameters)) if parameters else None)
        except self._psycopg.Error as exc:
            raise self._fail(exc) from None
        self._count(sql, cur)
        return cast(Cursor, cur)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Cursor:
        text, order = translate(sql)
        try:
            cur = self._conn.cursor()
            batch = [nul_free(p) for p in arrange_many(order, seq_of_parameters)]
            if batch:
                cur.executemany(text, batch)
        except self._psycopg.Error as exc:
            raise self._fail(exc) from None
        self._count(sql, cur, len(batch))
        return cast(Cursor, cur)

    def script(self, sql: str) -> None:
        """Several statements at once, untranslated (the PostgreSQL migrations)."""
        try:
            self._conn.execute(sql.encode("utf-8"))
        except self._psycopg.Error as exc:
            raise self._fail(exc) from None

    @property
    def in_transaction(self) -> bool:
        status = self._conn.info.transaction_status
        return bool(status != self._psycopg.pq.TransactionStatus.IDLE)

    def rollback(self) -> None:
        """Roll back what is open; a connection already lost has nothing left to undo."""
        try:
            if self.in_transaction:
                self._conn.execute(b"ROLLBACK")
        except self._psycopg.Error:
            pass

    def close(self) -> None:
        self._conn.close()

    def integrity_errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg.IntegrityError,)


def has_store(database: PostgresUrl, *, timeout: float = 10.0) -> bool:
    """Whether the database holds a store (its ``schema_migrations``), asked without creating
    anything: a read-only command on an empty database must leave it empty, as it leaves
    no SQLite file behind. An unreachable server is ``StoreUnavailable``, as for any use."""
    conn = PgConnection(database, timeout=timeout)
    try:
        found = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        return found is not None and found[0] is not None
    finally:
        conn.close()


def write_lock_sql(shared: bool) -> str | None:
    """The statement that starts a writer's turn (None: row locks only, ``shared``)."""
    return None if shared else f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"

