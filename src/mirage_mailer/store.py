"""The tracking store: one row per issue and recipient, suppressions, and an append-only event log.

Why SQLite in WAL mode with ``synchronous=NORMAL``: a commit is a write to the WAL without an
fsync, so the sender can record ~thousands of outcomes a second, and a committed transaction
still survives the process being killed (only an OS crash or power cut can lose the last few).
Every method that changes a status commits before it returns, so a rerun never re-sends a
message the server accepted. All SQL lives in this module so that a PostgreSQL backend can be
added later behind the same methods.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from mirage_mailer.errors import ExitCode, MirageError, Problem, display_path

STATUSES = ("pending", "sending", "sent", "failed", "suppressed", "invalid", "unknown")
# "sending" is internal: it marks a message handed to the server. A crash leaves such rows
# behind; they are reported as "unknown" and recover_inflight() converts them.
REPORT_STATUSES = ("sent", "failed", "pending", "suppressed", "invalid", "unknown")
NEW_STATUSES = ("pending", "invalid", "suppressed")

# Applied in order, each once, recorded in schema_migrations. Never edit a released entry:
# append a new one, so an old .mirage/tracking.sqlite is upgraded in place.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "initial",
        """
        CREATE TABLE recipients (
            id INTEGER PRIMARY KEY, issue TEXT NOT NULL,
            email TEXT NOT NULL, email_key TEXT NOT NULL,  -- email_key: lowercased identity
            name TEXT, lang TEXT, list_name TEXT NOT NULL, fields TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN (
                'pending', 'sending', 'sent', 'failed', 'suppressed', 'invalid', 'unknown')),
            attempts INTEGER NOT NULL DEFAULT 0, message_id TEXT,
            smtp_code INTEGER, smtp_response TEXT,
            created_at TEXT NOT NULL, last_attempt_at TEXT);
        CREATE UNIQUE INDEX recipients_issue_email ON recipients (issue, email_key);
        CREATE TABLE events (  -- append-only; issue is NULL for unsubscriptions
            id INTEGER PRIMARY KEY, recipient_id INTEGER, issue TEXT,
            email TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT, at TEXT NOT NULL);
        CREATE TABLE suppressions (  -- email is lowercased
            email TEXT PRIMARY KEY, source TEXT NOT NULL, reason TEXT, created_at TEXT NOT NULL);
        """,
    ),
    (
        "lookup-indexes",
        """
        CREATE INDEX recipients_issue_status ON recipients (issue, status, id);
        CREATE INDEX recipients_email_key ON recipients (email_key);
        CREATE INDEX events_issue ON events (issue, id);
        """,
    ),
)

_SUPPRESSED = "email_key IN (SELECT email FROM suppressions)"
_PAGE = 500


class StoreError(MirageError):
    """The tracking database cannot be opened or is newer than this program."""

    exit_code = ExitCode.INVALID_INPUT


@dataclass(frozen=True)
class NewRecipient:
    """A subscriber row to queue for an issue; ``detail`` says why it is invalid/suppressed."""

    email: str
    name: str | None
    lang: str | None
    list_name: str
    fields: dict[str, str] = field(default_factory=dict)
    status: str = "pending"
    detail: str | None = None


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


def email_key(email: str) -> str:
    """The case-insensitive identity of an address (SQLite's lower() is ASCII-only, so Python's)."""
    return email.strip().lower()


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


def _insert_params(issue: str, r: NewRecipient, now: str) -> tuple[Any, ...]:
    fields = json.dumps(r.fields, ensure_ascii=False)
    key = email_key(r.email)
    return (issue, r.email, key, r.name, r.lang, r.list_name, fields, r.status, r.detail, now)


class Store:
    """SQLite tracking store; one instance per process, used from one thread."""

    def __init__(
        self, path: Path, *, timeout: float = 10.0, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a commit is never implicit.
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(f"cannot open the tracking database: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise self._error(f"cannot use the tracking database: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    def _error(self, message: str) -> StoreError:
        hint = "check the file and tracking.database in mirage.yaml"
        return StoreError(Problem(display_path(self.path), None, message, hint))

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="milliseconds")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed write transaction; IMMEDIATE takes the lock up front (no busy upgrade)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

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
            if current > len(MIGRATIONS):
                raise self._error(
                    f"the tracking database has schema version {current}, newer than this "
                    f"mirage-mailer knows ({len(MIGRATIONS)}); upgrade mirage-mailer"
                )
            for number, (name, script) in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in _split_sql(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (number, name, self._now()),
                )

    @property
    def schema_version(self) -> int:
        """Number of migrations applied to this database."""
        row = self._conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        version: int = row.fetchone()[0]
        return version

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
                max_id = conn.execute("SELECT coalesce(max(id), 0) FROM recipients")
                before: int = max_id.fetchone()[0]
                conn.executemany(
                    "INSERT OR IGNORE INTO recipients (issue, email, email_key, name, lang,"
                    " list_name, fields, status, smtp_response, created_at) VALUES"
                    " (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?8 = 'pending' AND EXISTS"
                    " (SELECT 1 FROM suppressions WHERE email = ?3) THEN 'suppressed' ELSE ?8 END,"
                    " ?9, ?10)",
                    (_insert_params(issue, r, now) for r in chunk),
                )
                # Rowids only grow inside our write lock, so the new rows are those above `before`.
                cur = conn.execute(
                    "INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
                    " SELECT id, issue, email, 'queued', CASE WHEN status = 'pending'"
                    " THEN list_name ELSE status || coalesce(': ' || smtp_response, '') END, ?"
                    " FROM recipients WHERE id > ? ORDER BY id",
                    (now, before),
                )
                added += cur.rowcount
        return added

    def _transition(self, issue: str, where: str, new_status: str, kind: str) -> int:
        """Move every row of ``issue`` matching ``where`` to ``new_status``, logging each."""
        now = self._now()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
                " SELECT id, issue, email, ?, status, ? FROM recipients"
                f" WHERE issue = ? AND {where} ORDER BY id",
                (kind, now, issue),
            )
            cur = conn.execute(
                f"UPDATE recipients SET status = ? WHERE issue = ? AND {where}", (new_status, issue)
            )
            return cur.rowcount

    def apply_suppressions(self, issue: str) -> int:
        """Pending/unknown rows whose address is suppressed become ``suppressed``."""
        return self._transition(
            issue, f"status IN ('pending', 'unknown') AND {_SUPPRESSED}", "suppressed", "suppressed"
        )

    def recover_inflight(self, issue: str) -> int:
        """A crash's leftover ``sending`` rows become ``unknown``; only under the send lock."""
        return self._transition(issue, "status = 'sending'", "unknown", "unknown")

    def requeue_unknown(self, issue: str) -> int:
        """``unknown`` rows go back to ``pending`` (``--resend-unknown``)."""
        return self._transition(issue, "status = 'unknown'", "pending", "requeued")

    # -- sending -------------------------------------------------------------------------------

    def _paged(self, columns: str, where: str, issue: str, batch: int) -> Iterator[Any]:
        """Rows of ``issue`` by id, one page at a time (keyset), so memory stays flat.

        Each page is fetched completely before it is yielded, so callers may write meanwhile.
        """
        last = 0
        while True:
            page = self._conn.execute(
                f"SELECT id, {columns} FROM recipients WHERE issue = ? AND {where} AND id > ?"
                " ORDER BY id LIMIT ?",
                (issue, last, batch),
            ).fetchall()
            yield from page
            if len(page) < batch:
                return
            last = page[-1][0]

    def iter_pending(self, issue: str, *, batch: int = _PAGE) -> Iterator[Recipient]:
        """Pending rows by id. A row deferred back to ``pending`` waits for the next pass."""
        columns = "issue, email, name, lang, list_name, fields, status, attempts, message_id"
        for rid, iss, email, name, lang, list_name, fields, status, attempts, mid in self._paged(
            columns, "status = 'pending'", issue, batch
        ):
            yield Recipient(
                rid, iss, email, name, lang, list_name, json.loads(fields), status, attempts, mid
            )

    def mark_sending(self, recipient_id: int, message_id: str) -> bool:
        """Claim a row just before handing it to the server; False when it is no longer pending.

        A row suppressed since it was read is not claimed, so the sender can skip it.
        """
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE recipients SET status = 'sending', message_id = ?, last_attempt_at = ?"
                " WHERE id = ? AND status IN ('pending', 'sending')",
                (message_id, self._now(), recipient_id),
            )
            return cur.rowcount == 1

    def _mark(
        self, recipient_id: int, status_sql: str, kind: str, code: int | None, response: str
    ) -> None:
        """Row update plus event insert, in one committed transaction (called ~1000 times/s)."""
        now = self._now()
        with self._write() as conn:
            cur = conn.execute(
                f"UPDATE recipients SET status = {status_sql}, attempts = attempts + 1,"
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

    def mark_sent(self, recipient_id: int, code: int | None, response: str) -> None:
        """The server accepted the message (250 after DATA)."""
        self._mark(recipient_id, "'sent'", "sent", code, response)

    def mark_deferred(self, recipient_id: int, code: int | None, response: str) -> None:
        """Transient failure: back to ``pending`` (or ``suppressed`` if unsubscribed meanwhile)."""
        status = f"CASE WHEN {_SUPPRESSED} THEN 'suppressed' ELSE 'pending' END"
        self._mark(recipient_id, status, "deferred", code, response)

    def mark_failed(self, recipient_id: int, code: int | None, response: str) -> None:
        """Permanent failure (5xx): never retried."""
        self._mark(recipient_id, "'failed'", "failed", code, response)

    # -- reporting -----------------------------------------------------------------------------

    def counts(self, issue: str) -> dict[str, int]:
        """The report's six counters, zeros included; in-flight ``sending`` counts as unknown."""
        result = dict.fromkeys(REPORT_STATUSES, 0)
        for status, n in self._conn.execute(
            "SELECT status, count(*) FROM recipients WHERE issue = ? GROUP BY status", (issue,)
        ):
            result["unknown" if status == "sending" else status] += n
        return result

    def recipients(self, issue: str) -> Iterator[dict[str, Any]]:
        """Report rows with exactly the DESIGN.md keys, by id, paged so memory stays flat."""
        columns = "email, status, attempts, message_id, smtp_code, smtp_response, last_attempt_at"
        for _id, email, status, attempts, message_id, code, response, at in self._paged(
            columns, "1", issue, _PAGE
        ):
            yield {
                "email": email,
                "status": "unknown" if status == "sending" else status,
                "attempts": attempts,
                "message_id": message_id,
                "smtp_code": code,
                "smtp_response": response,
                "last_attempt_at": at,
            }

    def issues(self) -> list[str]:
        """Issues with at least one recorded row, sorted."""
        cur = self._conn.execute("SELECT DISTINCT issue FROM recipients ORDER BY issue")
        return [r[0] for r in cur]

    def is_complete(self, issue: str) -> bool:
        """True when the issue has rows and none is left to send or ambiguous."""
        c = self.counts(issue)
        return sum(c.values()) > 0 and c["pending"] == 0 and c["unknown"] == 0

    # -- suppressions and events ---------------------------------------------------------------

    def suppress(self, email: str, *, source: str, reason: str | None = None) -> bool:
        """Never mail ``email`` again, from any list; True if it was not suppressed before.

        Flips pending/unknown rows of every issue even when the address was already listed,
        so rows queued by an older version are covered too.
        """
        key = email_key(email)
        now = self._now()
        with self._write() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO suppressions (email, source, reason, created_at)"
                " VALUES (?, ?, ?, ?)",
                (key, source, reason, now),
            )
            added = cur.rowcount == 1
            if added:
                conn.execute(
                    "INSERT INTO events (issue, email, kind, detail, at) VALUES (NULL, ?, ?, ?, ?)",
                    (key, "unsubscribed", source if reason is None else f"{source}: {reason}", now),
                )
            where = "email_key = ? AND status IN ('pending', 'unknown')"
            conn.execute(
                "INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
                f" SELECT id, issue, email, 'suppressed', status, ? FROM recipients WHERE {where}"
                " ORDER BY id",
                (now, key),
            )
            conn.execute(f"UPDATE recipients SET status = 'suppressed' WHERE {where}", (key,))
        return added

    def is_suppressed(self, email: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM suppressions WHERE email = ?", (email_key(email),))
        return row.fetchone() is not None

    def suppressions(self) -> list[dict[str, Any]]:
        """Every suppressed (lowercased) address, oldest first."""
        cur = self._conn.execute(
            "SELECT email, source, reason, created_at FROM suppressions ORDER BY created_at, email"
        )
        return [dict(zip(("email", "source", "reason", "created_at"), r, strict=True)) for r in cur]

    def events(self, issue: str | None = None) -> list[dict[str, Any]]:
        """The append-only log, oldest first; ``issue=None`` includes unsubscriptions."""
        sql = "SELECT issue, email, kind, detail, at FROM events"
        params: tuple[str, ...] = ()
        if issue is not None:
            sql += " WHERE issue = ?"
            params = (issue,)
        cur = self._conn.execute(sql + " ORDER BY id", params)
        return [dict(zip(("issue", "email", "kind", "detail", "at"), r, strict=True)) for r in cur]
