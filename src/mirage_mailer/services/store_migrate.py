"""``store migrate``: copy a project's SQLite tracking store into an empty PostgreSQL database.

The store is the only memory of who has each issue, so the copy must be whole or nothing:

* The source is brought up to date first, as any command would: opened normally, so an older
  file gets this version's migrations (each in its own transaction, as every command applies
  them), and a crashed send's claim journal is replayed into it, under the send locks (its
  last outcomes exist nowhere else). Everything after that reads it through a read-only
  snapshot; the file is never changed otherwise. Upgrading in place rather than migrating a
  copy: the next command would upgrade it anyway, the replay needs the current schema, and a
  copy of a large store costs its size in disk and time for nothing.
* While the copy runs, the project's send locks, the run-due lock and the process-bounces
  lock are held, so no send, cron run or bounce run writes meanwhile; one that holds a lock
  already refuses the migration (exit 3). Anything else that writes to the file during the
  copy (the web host) is noticed at the end, and the copy is dropped.
* The target must hold no store (or one without a single row); everything (schema, rows,
  sequences, the comparison) is one PostgreSQL transaction: a failure leaves it as it was.

Tables and columns come from the two schemas themselves, never from a list here: a table the
source has and the target lacks, or a column missing on the target, stops the migration
before anything is copied, rather than dropping data silently.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirage_mailer.project.config import Settings
from mirage_mailer.project.config_checks import redact
from mirage_mailer.services.journal import (
    issue_journals,
    journal_roots,
    journals,
    read_journal,
    settle,
)
from mirage_mailer.services.store_locks import run_due_lock, send_lock, store_lock_dir
from mirage_mailer.store import Store, StoreError, StoreUnavailable
from mirage_mailer.store.guard import inspect
from mirage_mailer.store.journal_runs import PREFIX as JOURNAL_MARK
from mirage_mailer.store.sqlite_snapshot import SqliteSnapshot
from mirage_mailer.store.transfer import PgTarget
from mirage_mailer.util.database import PostgresUrl, is_postgres, parse_postgres
from mirage_mailer.util.envnames import is_env_name, not_an_env_name
from mirage_mailer.util.errors import DeliveryError, InputError, Problem, display_path, shorten
from mirage_mailer.util.locks import STATE_LOCKS, Lock, Locks

# (table, rows copied so far, rows in the table): for a progress line
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TableCount:
    name: str
    source: int
    target: int


@dataclass
class Migrated:
    """What was copied, and the comparison that let it be committed."""

    source: Path
    target: str  # the URL without its password
    version: int  # schema version on both sides
    password_env: str | None = None  # the variable holding the password, for mirage.yaml
    tables: list[TableCount] = field(default_factory=list)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)  # issue -> status -> n
    replayed: int = 0  # journal records of a stopped send applied to the source first
    replaced: list[str] = field(default_factory=list)  # table.column (id) with a NUL made U+FFFD


def migrate_store(settings: Settings, url: str, *, source: Path | None = None,
                  password_env: str | None = None,
                  on_progress: Progress | None = None) -> Migrated:
    """Copy the SQLite store (``tracking.database``, or ``source``) into ``url``."""
    database = checked_target(url, password_env)
    path = _source_path(settings, source)
    _check_source(path)
    own = (path == settings.tracking.database
           or path.parent == settings.state_dir.resolve())
    with _quiet_project(settings if own else None) as replay_into:
        replayed = replay_into(path)
        with SqliteSnapshot(path) as snapshot:
            target = PgTarget(database)
            try:
                return _copy(snapshot, target, replayed, on_progress)
            finally:
                target.close()


def checked_target(url: str, password_env: str | None) -> PostgresUrl:
    """The target as ``tracking.database`` would name it: a postgresql:// URL without a
    password (the password comes from the environment, as for the store itself)."""
    shown = redact(url.partition("?")[0])
    if password_env is not None:
        if not is_env_name(password_env):
            raise InputError(not_an_env_name("--password-env", "MIRAGE_DB_PASSWORD"))
        if not os.environ.get(password_env):
            raise InputError(Problem("--password-env", None, f"the variable {password_env} "
                                     "is not set", f"export {password_env}=... first"))
    if not is_postgres(url):
        raise InputError(Problem("--to", None, f"{shorten(shown)!r} is not a PostgreSQL URL",
                                 "give postgresql://USER@HOST[:PORT]/DATABASE"))
    try:
        return parse_postgres(url, password_env)
    except ValueError as exc:
        raise InputError(Problem("--to", None, f"{shorten(shown)!r} {exc}",
                                 "remove it from the URL; give it as PGPASSWORD, in ~/.pgpass, "
                                 "or in the variable --password-env names")) from None


def _source_path(settings: Settings, source: Path | None) -> Path:
    if source is not None:
        return source.resolve()
    if not isinstance(settings.tracking.database, Path):
        raise InputError(Problem(display_path(settings.path), settings.line_of.get("tracking"),
                                 "tracking.database already names a PostgreSQL database",
                                 "name the SQLite file to copy with --from"))
    return settings.tracking.database.resolve()


def _check_source(path: Path) -> None:
    """A file to copy: there, a SQLite store, and not damaged (a copy would hide the damage)."""
    health = inspect(path)
    where = display_path(path)
    if health.state in ("missing", "zero bytes"):
        raise InputError(Problem(where, None, f"no tracking database to migrate ({health.state})",
                                 "name the SQLite file with --from, or check tracking.database "
                                 "in mirage.yaml"))
    if health.state == "damaged":
        raise StoreError(Problem(where, None, f"the tracking database is damaged "
                                 f"({health.detail}); nothing was copied",
                                 "restore it from a backup first"))
    if health.state == "empty" and health.detail == "no tables":
        raise InputError(Problem(where, None, "not a mirage-mailer tracking database (it has "
                                 "no recipients, events or suppressions tables)",
                                 "name the project's .mirage/tracking.sqlite with --from"))


def _writers(settings: Settings) -> list[Lock | Locks]:
    """The locks of everything that writes to a project's store unattended: run-due,
    process-bounces, and the send of each issue that has ever been sent (or left a journal);
    the store's (``store_locks``) and the folder's."""
    state_dir = settings.state_dir
    issues = {p.stem for p in journals(state_dir)}
    for folder in {store_lock_dir(settings), state_dir / STATE_LOCKS}:
        issues |= {p.stem.removeprefix("send-") for p in folder.glob("send-*.lock")}
    return [run_due_lock(settings),
            Lock(state_dir / STATE_LOCKS / "process-bounces.lock", "process-bounces"),
            *(send_lock(settings, issue) for issue in sorted(issues))]


@contextlib.contextmanager
def _quiet_project(settings: Settings | None) -> Iterator[Callable[[Path], int]]:
    """Hold every lock a writer of the project's store takes, for the length of the copy;
    yields the step that brings the store up to date (for a file that is not the project's
    store: no locks, and no journals to replay, which are that store's)."""
    state_dir = settings.state_dir if settings is not None else None
    held: list[Lock | Locks] = []
    try:
        for lock in _writers(settings) if settings is not None else []:
            try:
                lock.acquire()
            except DeliveryError as exc:
                raise DeliveryError([Problem(p.path, p.line, f"{p.message}; nothing was copied",
                                             "wait for it to finish (or stop it), then rerun "
                                             "'store migrate'") for p in exc.problems]) from None
            held.append(lock)
        yield lambda path: _bring_up_to_date(path, state_dir)
    finally:
        for lock in reversed(held):
            lock.release()


def _bring_up_to_date(path: Path, state_dir: Path | None) -> int:
    """Open the store normally (an older file is upgraded, as by any command) and replay the
    journals stopped sends left; returns how many records were replayed."""
    with Store(path) as store:
        if state_dir is None:
            return 0
        done = 0
        roots = journal_roots(state_dir, path)
        # and the runs whose journal is gone (their reserved rows become unknown)
        for issue in sorted({p.stem for p in journals(roots)} | store.journal_issues()):
            for journal in issue_journals(roots, issue):
                found = read_journal(journal)
                if found.issue == issue:
                    done += len(found.outcomes) + len(found.claims)
            settle(store, roots, issue)
        return done


def _copy(snapshot: SqliteSnapshot, target: PgTarget, replayed: int,
          on_progress: Progress | None) -> Migrated:
    result = Migrated(snapshot.path, target.shown, snapshot.schema_version,
                      target.database.password_env, replayed=replayed)
    tables = snapshot.tables()
    with target.transaction():
        _check_empty(target, tables)
        target.migrate(snapshot.schema_version)
        _check_schemas(target, tables)
        totals: dict[str, int] = {}
        for name, columns in tables.items():
            totals[name] = total = snapshot.count(name)
            report = None if on_progress is None else _reporter(on_progress, name, total)
            target.copy(name, columns, _unmarked(name, columns, snapshot.rows(name, columns)),
                        report)
        target.reset_sequences(tables)
        # counted again on the target, not taken from what the copy said it wrote
        result.tables = [TableCount(name, n, target.count(name)) for name, n in totals.items()]
        source_statuses, target_statuses = snapshot.status_counts(), target.status_counts()
        _compare(target.shown, result.tables, source_statuses, target_statuses)
        if snapshot.changed_since_opened():
            raise StoreUnavailable(Problem(
                display_path(snapshot.path), None, "the tracking database changed while it "
                "was copied (the web host, or another command, wrote to it); nothing was kept "
                f"in {target.shown}", "stop 'serve' and cron for the project, then rerun "
                "'store migrate'"))
    result.replaced = target.replaced
    for (issue, status), n in sorted(source_statuses.items()):
        result.statuses.setdefault(issue, {})[status] = n
    return result


def _unmarked(name: str, columns: list[str],
              rows: Iterable[tuple[Any, ...]]) -> Iterable[tuple[Any, ...]]:
    """The rows without a SQLite send's reservation marks (``store/journal_runs.py``): the
    column is the PostgreSQL senders' own, where a mark would keep a pending row from every
    sender. The source file is left as it is (read, never written)."""
    if name != "recipients" or "lease_owner" not in columns:
        return rows
    at = columns.index("lease_owner")
    return ((*row[:at], None, *row[at + 1:])
            if isinstance(row[at], str) and row[at].startswith(JOURNAL_MARK) else row
            for row in rows)


def _reporter(on_progress: Progress, name: str, total: int) -> Callable[[int], None]:
    return lambda done: on_progress(name, done, total)


def _check_empty(target: PgTarget, tables: dict[str, list[str]]) -> None:
    """Stores are never merged: the target holds no store, or one with no row at all."""
    held = target.held_rows(tables)
    if held:
        rows = ", ".join(f"{n} in {name}" for name, n in sorted(held.items()))
        raise InputError(Problem(target.shown, None, f"the database already holds a "
                                 f"mirage-mailer store ({rows}); stores are never merged, "
                                 "nothing was copied",
                                 "migrate into a new, empty database (createdb), or drop "
                                 "this one's tables if they are really not needed"))


def _check_schemas(target: PgTarget, tables: dict[str, list[str]]) -> None:
    """Every source table and column has a place in the target, or nothing is copied."""
    theirs = target.tables()
    missing = [name for name in tables if name not in theirs]
    missing += [f"{name}.{column}" for name, columns in tables.items() if name in theirs
                for column in columns if column not in theirs[name]]
    if missing:
        raise StoreError(Problem(target.shown, None, "the PostgreSQL schema has no place for "
                                 f"{', '.join(missing)} of the SQLite store; nothing was copied",
                                 "this mirage-mailer cannot migrate this store: report it"))


def _compare(shown: str, tables: list[TableCount], source: dict[tuple[str, str], int],
             target: dict[tuple[str, str], int]) -> None:
    """Any difference between the two sides undoes the copy (exit 3)."""
    wrong = [f"{t.name}: {t.source} in SQLite, {t.target} in PostgreSQL" for t in tables
             if t.source != t.target]
    wrong += [f"{issue} {status}: {source.get((issue, status), 0)} in SQLite, "
              f"{target.get((issue, status), 0)} in PostgreSQL"
              for issue, status in sorted(source.keys() | target.keys())
              if source.get((issue, status), 0) != target.get((issue, status), 0)]
    if wrong:
        raise StoreUnavailable(Problem(shown, None, "the copy does not match the SQLite store ("
                                       + "; ".join(wrong) + "); nothing was kept",
                                       "report it; the SQLite store is unchanged"))
