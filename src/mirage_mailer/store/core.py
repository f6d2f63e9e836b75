"""The tracking store: one row per issue and recipient, suppressions, and an append-only event log.

Why SQLite in WAL mode with ``synchronous=NORMAL``: a commit is a write to the WAL without an
fsync, so the sender can record ~thousands of outcomes a second, and a committed transaction
still survives the process being killed (only an OS crash or power cut can lose the last few).
Every method that changes a status commits before it returns, so a rerun never re-sends a
message the server accepted. The same store may live on a PostgreSQL server instead
(``tracking.database: postgresql://...``): this module opens either, and the mixins' one set
of SQL runs on both (``dialect.py``, ``pg.py``, ``pg_schema.py``).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mirage_mailer.store.checkpoint import checkpoint_behind
from mirage_mailer.store.dialect import POSTGRESQL, SQLITE, Connection
from mirage_mailer.store.errors import StoreError, StoreUnavailable
from mirage_mailer.store.readonly import cannot_write, connect_readonly, read_only_beside
from mirage_mailer.store.schema import MIGRATIONS
from mirage_mailer.store.write_fault import BUSY_HINT, write_fault_hint
from mirage_mailer.util.database import Database, PostgresUrl
from mirage_mailer.util.errors import Problem, display_path, is_busy
from mirage_mailer.util.fieldsjson import fields_json
from mirage_mailer.util.statedir import DIR_MODE, FILE_MODE, private_dir, tighten

if TYPE_CHECKING:
    from mirage_mailer.store.ledger import Ledger
    from mirage_mailer.store.pg import PgConnection

# StoreError and StoreUnavailable are defined in store/errors.py (pg.py raises them too) and
# re-exported here, where every user of the store has always imported them from.
__all__ = ["StoreError", "StoreUnavailable", "fields_json"]

# Primary SQLite result codes that mean "not now / not here", not a bug in our SQL:
# BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN.
_UNAVAILABLE = frozenset({5, 6, 8, 10, 13, 14})
# ... and those that mean the file itself is damaged: CORRUPT, NOTADB.
_DAMAGED = frozenset({11, 26})
# ... and those that a full or read-only disk explains, when the store is opened: READONLY,
# IOERR, FULL
_NO_ROOM = frozenset({8, 10, 13})
_AUTOCHECKPOINT_BYTES = 40_000_000  # WAL size after which a commit checkpoints
# A new store's page (older ones keep theirs, 4 KiB): a first plan of a million rows reads
# and writes its pages through the WAL about 1.5 million times at 4 KiB (its index builds and
# the checkpoint re-read the table), 0.4 million at 16 KiB: 1.5 s less system time (docs/design.md)
PAGE_SIZE = 16_384
CACHE_KIB = 16_000  # the page cache of a store connection
DAMAGED_HINT = ("restore it from a backup, or start over with 'mirage-mailer send ISSUE_DIR "
                "--new-store', which keeps the damaged file beside it")


def damaged_error(path: Path, exc: BaseException) -> StoreError:
    return StoreError(Problem(display_path(path), None,
                              f"the tracking database is damaged ({exc})", DAMAGED_HINT))


def _damage_found(path: Path) -> str | None:
    """What ``quick_check`` finds wrong in the file, or None: a damaged page can make a
    migration fail with an ordinary error ("table ... already exists"), whose fix "check
    tracking.database" would send the officer the wrong way."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("PRAGMA quick_check(1)").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc) if is_damage(exc) else None
    found = str(row[0]) if row else "?"
    return None if found == "ok" else " ".join(found.split()).replace(
        "*** in database main *** ", "")


def is_damage(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _DAMAGED


class _Cursor(sqlite3.Cursor):
    """A cursor whose "database disk image is malformed" is a ``StoreError`` (exit 2, one
    line): a damaged page can surface in any query, far from where the store was opened."""

    def _damaged(self, exc: sqlite3.Error) -> StoreError:
        conn = self.connection
        return damaged_error(conn.path if isinstance(conn, _Connection) else Path("?"), exc)

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        try:
            super().execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise self._damaged(exc) from None
            raise
        return self

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _Cursor:
        try:
            super().executemany(sql, seq_of_parameters)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise self._damaged(exc) from None
            raise
        return self

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise self._damaged(exc) from None
            raise

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(self.arraysize if size is None else size)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise self._damaged(exc) from None
            raise

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise self._damaged(exc) from None
            raise

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise self._damaged(exc) from None
            raise


class _Connection(sqlite3.Connection):
    """Every statement runs on a ``_Cursor`` (``Connection.execute`` bypasses ``cursor()``)."""

    path: Path

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        return self.cursor(_Cursor).execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _Cursor:
        return self.cursor(_Cursor).executemany(sql, seq_of_parameters)


@dataclass(slots=True)
class NewRecipient:
    """A subscriber row to queue for an issue; ``detail`` says why it is invalid/suppressed.
    Read-only by convention, not ``frozen``: planning a list makes one per row, and a frozen
    dataclass takes four times as long to build."""

    email: str
    name: str | None
    lang: str | None
    list_name: str
    fields: dict[str, str] = field(default_factory=dict)
    status: str = "pending"
    detail: str | None = None
    subject: str | None = None  # keyed hash of the address, for token look-ups
    fields_text: str | None = None  # ``fields_json(fields)`` when the list reader wrote it


@dataclass(frozen=True)
class Recipient:
    """A row read back for sending."""

    id: int
    issue: str
    email: str
    name: str | None
    lang: str | None
    list_name: str
    fields: dict[str, str]
    status: str
    attempts: int
    message_id: str | None
    subject: str | None = None  # keyed hash of the address, stored when queued
    smtp_code: int | None = None  # the last reply's code (a 5xx on a pending row: held back)

    @property
    def refused_before(self) -> bool:
        """Pending after a 5xx: an earlier run held it back as a possible refusal of the
        message (or stopped on the relay's refusal of the session) instead of failing it."""
        return self.smtp_code is not None and 500 <= self.smtp_code < 600


class Prior(NamedTuple):
    """An issue's row as the store holds it, for the planner: what happened to the person,
    and the values a list edit may change (compared before anything is rewritten)."""

    status: str
    smtp_code: int | None
    smtp_response: str | None
    email: str
    name: str | None
    lang: str | None
    list_name: str
    fields: str  # as stored: ``fields_json``
    subject: str | None
    id: int


def email_key(email: str) -> str:
    """The case-insensitive identity of an address (SQLite's lower() is ASCII-only, so Python's)."""
    return email.strip().lower()


def _private_files(path: Path) -> None:
    """Create the database file owner-only (0600) before SQLite does, so its -wal and -shm,
    which SQLite creates with the database's own mode, are owner-only too; an existing
    database left readable by others is tightened. A new folder for it is 0700."""
    if not path.parent.is_dir():
        private_dir(path.parent)
    elif path.parent.name == ".mirage":
        tighten(path.parent, DIR_MODE)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, FILE_MODE))
    tighten(path, FILE_MODE)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _split_sql(script: str) -> Iterator[str]:
    """Statements of a script; executescript() would commit our migration transaction early."""
    buf = ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                yield buf.strip()
            buf = ""


def hashed_key(email: str) -> str:
    """What a forgotten person's suppression keeps: enough to refuse them, not to name them."""
    return "sha256:" + hashlib.sha256(email_key(email).encode("utf-8")).hexdigest()


def is_hashed(email: str) -> bool:
    """The row's address is a forgotten person's hash (``hashed_key``), not an address."""
    return email.startswith("sha256:")


def _hashed_or_none(value: object) -> str | None:
    return hashed_key(value) if isinstance(value, str) else None


def _insert_params(issue: str, r: NewRecipient, now: str) -> tuple[Any, ...]:
    fields = fields_json(r.fields)
    key = email_key(r.email)
    return (issue, r.email, key, r.name, r.lang, r.list_name, fields, r.status, r.detail, now,
            hashed_key(r.email), r.subject)


def _until_free(step: Callable[[], object], timeout: float) -> None:
    """Run a set-up step, again while another opener holds the lock, for up to ``timeout``.

    Two processes opening a brand-new database at once (cron beside ``preview``) meet in
    SQLite's lock upgrade: switching to WAL or creating the schema can answer "database is
    locked" at once, without waiting in the busy handler. Waiting a moment and trying again
    is the cure; a lock held for longer is reported as before.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _to_wal(conn: sqlite3.Connection) -> None:
    """Switch a file still in another journal mode (an old store, a copy, an operator's
    ``PRAGMA journal_mode=DELETE``) to WAL, if no other connection has it open right now.

    The switch needs the file to itself: a mere reader elsewhere would block it, and every
    opener, read-only ones included, would wait and fail. So it is tried once, without
    waiting; while busy the store keeps its mode (correct, writes just wait for readers)
    and the next opener switches it.
    """
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    conn.execute("PRAGMA busy_timeout=0")
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        if not is_busy(exc):
            raise


def _autocheckpoint(conn: sqlite3.Connection) -> int:
    """``wal_autocheckpoint`` counts pages: the same WAL size whatever the file's page size
    (older stores keep 4 KiB pages, newer ones ``PAGE_SIZE``)."""
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return max(1, _AUTOCHECKPOINT_BYTES // page)


class StoreCore:
    """The tracking store's connection, writes and migrations, on SQLite (a file) or
    PostgreSQL (a server: ``postgresql://``); one instance per process, used from one thread.
    The mixins' SQL runs on both (``store/dialect.py``)."""

    def __init__(
        self, path: Database, *, timeout: float = 10.0, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self._clock = clock
        self._timeout = timeout
        self._behind: threading.Thread | None = None  # a checkpoint running (checkpoint.py)
        self.database: Database = path if isinstance(path, PostgresUrl) else Path(path)
        self._integrity: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)
        self.read_only = False  # opened in a folder this user cannot write
        # the folder's record of what this store must know (``store/ledger.py``), when the
        # command attached it; ``_noted`` holds a write's records until its commit
        self.ledger: Ledger | None = None
        self._noted: list[dict[str, Any]] = []
        if isinstance(self.database, PostgresUrl):
            self.backend = POSTGRESQL
            self.path = Path(".")  # no file: see ``database``
            self._open_pg(self.database, timeout)
        else:
            self.backend = SQLITE
            self.path = self.database
            self._open_sqlite(timeout)

    def _open_pg(self, database: PostgresUrl, timeout: float) -> None:
        from mirage_mailer.store.pg import PgConnection

        pg = PgConnection(database, timeout=timeout)
        self._pg: PgConnection | None = pg
        self._conn: Connection = pg
        self._integrity = pg.integrity_errors()
        try:
            self._migrate_pg()
        except BaseException:
            pg.close()
            raise

    def _open_sqlite(self, timeout: float) -> None:
        self._pg = None
        if cannot_write(self.path):
            self._open_sqlite_readonly(timeout)
            return
        try:
            _private_files(self.path)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a commit is never implicit.
            # check_same_thread=False: a long first plan stages its rows on a thread
            # (store/staging.py), which SQLite's serialized mode allows
            conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                   factory=_Connection, check_same_thread=False)
            conn.path = self.path
            self._sqlite: _Connection = conn
            self._conn = conn
        except (OSError, sqlite3.Error) as exc:
            raise self._error(f"cannot open the tracking database: {exc}") from exc
        try:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file only (see PAGE_SIZE)
            _to_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints are where WAL mode fsyncs; ten times fewer of them (WAL up to ~40 MB,
            # truncated back afterwards) made recording a send about a fifth cheaper.
            self._autocheckpoint = _autocheckpoint(conn)
            conn.execute(f"PRAGMA wal_autocheckpoint={self._autocheckpoint}")
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            conn.create_function("mm_hashed", 1, _hashed_or_none, deterministic=True)
            _until_free(self._migrate, timeout)
            for suffix in ("-wal", "-shm"):  # created with the database's mode; older ones not
                tighten(Path(f"{self.path}{suffix}"), FILE_MODE)
        except sqlite3.Error as exc:
            conn.close()
            if is_damage(exc):
                raise damaged_error(self.path, exc) from None
            if is_busy(exc):
                raise StoreUnavailable(Problem(
                    display_path(self.path), None, f"cannot open the tracking database: {exc}",
                    f"{BUSY_HINT}; a rerun resumes where this one stopped")) from None
            if (beside := read_only_beside(self.path, exc)) is not None:
                raise StoreUnavailable(beside) from None
            if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in _NO_ROOM:
                raise StoreUnavailable(Problem(
                    display_path(self.path), None, f"cannot write to the tracking database: "
                    f"{exc}", "free space on that disk, or make the folder writable by this "
                    "user; a rerun resumes where this one stopped")) from None
            if found := _damage_found(self.path):  # a half-read schema: "already exists"
                raise damaged_error(self.path, RuntimeError(found)) from None
            raise self._error(f"cannot use the tracking database: {exc}") from exc
        except BaseException:
            conn.close()
            raise

    def _open_sqlite_readonly(self, timeout: float) -> None:
        """A store this user cannot write (``store/readonly.py``): read it as it is. A write
        fails as on a read-only disk (``StoreUnavailable``, exit 3)."""
        try:
            conn = connect_readonly(self.path, timeout, _Connection)
        except sqlite3.Error as exc:
            if is_damage(exc):
                raise damaged_error(self.path, exc) from None
            raise self._error(f"cannot read the tracking database: {exc}") from exc
        assert isinstance(conn, _Connection)
        conn.path = self.path
        self._sqlite = conn
        self._conn = conn
        self.read_only = True
        try:
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            conn.create_function("mm_hashed", 1, _hashed_or_none, deterministic=True)
            known = self.schema_version
        except sqlite3.Error as exc:
            conn.close()
            if is_damage(exc):
                raise damaged_error(self.path, exc) from None
            raise self._error(f"cannot read the tracking database: {exc}") from exc
        if known != len(MIGRATIONS):
            conn.close()
            self._check_version(known, len(MIGRATIONS))
            raise StoreError(Problem(
                display_path(self.path), None, "the tracking database needs an upgrade, "
                "which cannot be written in a folder this user cannot write",
                "make the folder writable by this user, or run this as the user who sends"))

    @property
    def is_postgres(self) -> bool:
        return self._pg is not None

    def _error(self, message: str) -> StoreError:
        hint = "check the file and tracking.database in mirage.yaml"
        if self.is_postgres:
            hint = "check tracking.database in mirage.yaml"
        return StoreError(Problem(display_path(self.database), None, message, hint))

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="milliseconds")

    @contextmanager
    def _write(self, *, shared: bool = False) -> Iterator[Connection]:
        """One committed write transaction, with every other writer kept out until it ends.

        SQLite: BEGIN IMMEDIATE takes the file's write lock up front (no busy upgrade).
        PostgreSQL: the transaction first takes one advisory lock (``pg.WRITE_LOCK``), so
        code that relies on being the only writer (ids as max(id) + 1) stays right with
        many clients on many hosts; ``shared=True`` skips it (row locks only), for writes
        that are safe side by side. A lock held too long by another process, a full disk,
        an I/O error or a server gone raises ``StoreUnavailable`` (exit 3), after rolling
        back, so nothing is half-recorded.
        """
        if self._pg is not None:
            try:
                with self._write_pg(self._pg, shared) as conn:
                    yield conn
            except BaseException:
                self._noted = []
                raise
            self._after_commit()
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._noted = []
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code not in _UNAVAILABLE:
                raise
            hint = write_fault_hint(self.path, code)
            if self.read_only:
                hint = "make the folder writable by this user"
            elif (beside := read_only_beside(self.path, exc)) is not None:
                raise StoreUnavailable(beside) from None
            raise StoreUnavailable(Problem(
                display_path(self.path), None, f"cannot write to the tracking database: {exc}",
                f"{hint}; a rerun resumes where this one stopped")) from None
        self._after_commit()

    def note(self, record: dict[str, Any]) -> None:
        """A suppression written in the open transaction, for the ledger once it commits."""
        if self.ledger is not None:
            self._noted.append(record)

    def latest_mark(self) -> tuple[int, str] | None:
        """The store's newest event (id, time): what a ledger record says this store held."""
        row = self._conn.execute("SELECT id, at FROM events ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def _after_commit(self) -> None:
        """Suppressions just committed go into the ledger, with the store's mark (synced: a
        promise to a person); an erasure also leaves the file without the address."""
        if not self._noted or self.ledger is None:
            return
        noted, self._noted = self._noted, []
        mark = self.latest_mark()
        for record in noted:
            record["m"] = None if mark is None else list(mark)
        self.ledger.append(noted, sync=True)
        for record in noted:
            if record["k"] == "forget":
                self.ledger.erase(record["h"])

    @contextmanager
    def _long_wal(self) -> Iterator[None]:
        """Around a write transaction of many pages (an issue's first plan of a long list):
        its commit does not checkpoint in the foreground; a thread does it beside what
        follows (``store/checkpoint.py`` says why that is safe)."""
        if self._pg is not None:
            yield
            return
        self._join_behind()
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        try:
            yield
        finally:
            self._conn.execute(f"PRAGMA wal_autocheckpoint={self._autocheckpoint}")
        self._behind = checkpoint_behind(self.path, self._timeout)

    def _join_behind(self) -> None:
        if self._behind is not None:
            self._behind.join()
            self._behind = None

    @staticmethod
    @contextmanager
    def _write_pg(pg: PgConnection, shared: bool) -> Iterator[Connection]:
        from mirage_mailer.store.pg import write_lock_sql

        pg.execute("BEGIN")
        try:
            lock = write_lock_sql(shared)
            if lock is not None:
                pg.execute(lock)
            yield pg
            pg.execute("COMMIT")
        except BaseException:
            pg.rollback()
            raise

    def _check_version(self, current: int, known: int) -> None:
        if current > known:
            raise self._error(
                f"the tracking database has schema version {current}, newer than this "
                f"mirage-mailer knows ({known}); upgrade mirage-mailer"
            )

    def _migrate(self) -> None:
        """Apply pending MIGRATIONS, reading the version under the write lock (two openers race)."""
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        if self.schema_version == len(MIGRATIONS):
            return
        with self._write() as conn:
            version = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            current: int = version.fetchone()[0]
            self._check_version(current, len(MIGRATIONS))
            for number, (name, script) in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in _split_sql(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (number, name, self._now()),
                )

    def _migrate_pg(self) -> None:
        """Apply pending PG_MIGRATIONS under the advisory write lock (two openers race; the
        lock is taken before the version table is even created)."""
        from mirage_mailer.store.pg_schema import PG_MIGRATIONS

        assert self._pg is not None
        if self.schema_version == len(PG_MIGRATIONS):
            return
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY,"
                ' name TEXT COLLATE "C" NOT NULL, applied_at TEXT COLLATE "C" NOT NULL)')
            version = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            current = int(version.fetchone()[0])
            self._check_version(current, len(PG_MIGRATIONS))
            for number, (name, script) in enumerate(PG_MIGRATIONS[current:], start=current + 1):
                self._pg.script(script)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (number, name, self._now()),
                )

    @property
    def schema_version(self) -> int:
        """Number of migrations applied to this database."""
        if self._pg is not None and self._conn.execute(
                "SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            return 0
        row = self._conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(row.fetchone()[0])

    def ping(self) -> None:
        """One round trip: ``StoreUnavailable`` when the server dropped the connection, so a
        long-lived holder (the web app) replaces it before use."""
        self._conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self._join_behind()  # closing the last connection checkpoints: let the thread end
        if self._pg is not None:
            self._pg.close()
        else:
            self._sqlite.close()

    def __enter__(self) -> StoreCore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
