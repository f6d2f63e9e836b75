"""Before a real send: is the tracking store still the memory of who has each issue?

The store is the only record of who was sent what. A missing, zero-byte or emptied database
looks exactly like a brand-new project, and a new project sends to everyone; so once a project
has sent, that must not happen silently. "Has sent" cannot be read from ``.mirage/secret``
alone (``preview``, ``send --dry-run`` and ``serve`` create it too), so the first send that
records recipients also writes ``.mirage/sent``; a store found healthy with recipients in it
writes it as well, which covers projects that sent with an older version.

A damaged database is refused whatever the marker says. ``send --new-store`` is the explicit
way to start over: a damaged file is renamed aside (kept for recovery) after the
unsubscriptions still readable in it are copied into the new store; a missing or empty one is
simply replaced by a new store.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mirage_mailer.store.core import DAMAGED_HINT, StoreError, StoreUnavailable, is_damage
from mirage_mailer.store.readonly import cannot_write, reading_uri
from mirage_mailer.store.write_fault import BUSY_HINT
from mirage_mailer.util.database import Database, PostgresUrl
from mirage_mailer.util.errors import InputError, Problem, display_path
from mirage_mailer.util.statedir import SENT_MARKER, create_once
from mirage_mailer.util.statefault import fix_for, state_write_error

_MARKER_TEXT = (b"mirage-mailer has sent from this project: its tracking database is the only "
                b"record of who has each issue.\nsend and run-due refuse to start from a missing, "
                b"empty or damaged database while this file exists; 'send --new-store' starts "
                b"over on purpose.\n")
_TABLES = ("recipients", "suppressions", "events")


@dataclass(frozen=True)
class Health:
    state: str  # ok | missing | zero bytes | empty | damaged
    detail: str = ""
    rows: int = 0  # recipients recorded (state ok; not ``thorough``: 1 for any)


def inspect(database: Database, *, thorough: bool = True, reading: bool = False) -> Health:
    """What the database holds, without creating or changing anything. ``thorough`` reads
    every page for damage (a send's check); a report's check only asks what is there.
    ``reading``: the caller only reads (``send --dry-run``), so a store this user cannot
    write is read as it is, as a report's check reads it (``store/readonly.py``); a send
    that would write is refused by the read-write open, before anything is sent."""
    if isinstance(database, PostgresUrl):
        return _inspect_pg(database)
    try:
        size = database.stat().st_size
    except FileNotFoundError:
        return Health("missing")
    wal = Path(f"{database}-wal")
    if size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        return Health("zero bytes")
    try:
        mode = "rw" if thorough and not reading else "ro"  # a reader may not be able to write
        uri = (reading_uri(database) if mode == "ro" and cannot_write(database)
               else f"{database.resolve().as_uri()}?mode={mode}")
        conn = sqlite3.connect(uri, uri=True, timeout=10)
    except sqlite3.Error as exc:
        return _failed(database, exc)
    try:
        check = conn.execute("PRAGMA quick_check(1)").fetchone() if thorough else ("ok",)
        if check is None or check[0] != "ok":
            found = " ".join(str(check[0] if check else "?").split())
            return Health("damaged", found.replace("*** in database main *** ", ""))
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if not set(_TABLES) <= names:
            return Health("empty", "no tables")
        # Recipients, not any row: a store re-created since by 'unsubscribe' or a web sign-up
        # (before they checked) holds a suppression or a subscriber, and still knows nothing of
        # who was sent what. Only a send's check counts them; the others ask whether any is
        # there, which costs nothing on a store of millions (``check_kept`` runs per request).
        rows: int = conn.execute(
            "SELECT count(*) FROM recipients" if thorough else
            "SELECT EXISTS (SELECT 1 FROM recipients)").fetchone()[0]
        return Health("ok", rows=rows) if rows else Health("empty", "no recipient recorded")
    except sqlite3.Error as exc:
        return _failed(database, exc)
    finally:
        conn.close()


def _inspect_pg(database: PostgresUrl) -> Health:
    """A PostgreSQL store is lost when its database has no tables of ours ("missing": a new
    or wrong database) or no recipient row ("empty"); a server that cannot be reached is
    ``StoreUnavailable`` (exit 3), as for any use of the store. There is no file to damage:
    the server checks its own pages."""
    from mirage_mailer.store.pg import PgConnection

    conn = PgConnection(database, timeout=10)
    try:
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            return Health("missing")
        names = {str(row[0]) for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        if not set(_TABLES) <= names:
            return Health("empty", "no tables")
        rows = int(conn.execute("SELECT count(*) FROM recipients").fetchone()[0])
        return Health("ok", rows=rows) if rows else Health("empty", "no recipient recorded")
    finally:
        conn.close()


def _failed(database: Path, exc: sqlite3.Error) -> Health:
    """Damage is a state to act on; a busy or unreadable file is an error to report as is."""
    if is_damage(exc):
        return Health("damaged", str(exc))
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in (5, 6):  # BUSY, LOCKED
        raise StoreUnavailable(Problem(
            display_path(database), None, f"cannot read the tracking database: {exc}",
            BUSY_HINT)) from None
    if code in _DISK:
        raise _disk_fault(database, exc) from None
    raise StoreError(Problem(display_path(database), None,
                             f"cannot open the tracking database: {exc}",
                             "check the file, its permissions and tracking.database in "
                             "mirage.yaml")) from None


# SQLite's IOERR (SHMSIZE among them: no room for the -shm index that even a reader of a WAL
# database makes beside it) and FULL
_DISK = frozenset({10, 13})
_WHY = {errno.ENOSPC: " (the disk is full)",
        errno.EFBIG: " (this process may not make files that large)"}


def _disk_fault(database: Path, exc: sqlite3.Error) -> StoreUnavailable:
    """A full disk, a file size limit or a failing disk is the machine's state, not a wrong
    file or its permissions: exit 3 as for a lock held, with what to do about that disk
    (``util/statefault.py``). The store is intact: a rerun once there is room reads it."""
    number = _disk_errno(database.parent)
    return StoreUnavailable(Problem(
        display_path(database), None, f"cannot read the tracking database: {exc}"
        f"{_WHY.get(number, '')}", f"{fix_for(number)}; the tracking state is intact, "
        "run the same command again then"))


def _disk_errno(folder: Path) -> int:
    """Why SQLite could not write beside the database: ENOSPC (no room left), EFBIG (a file
    size limit, ``ulimit -f``) or, failing both, EIO (the disk reports an error)."""
    with contextlib.suppress(OSError):
        if os.statvfs(folder).f_bavail == 0:
            return errno.ENOSPC
    with contextlib.suppress(ImportError):
        import resource

        if resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
            return errno.EFBIG
    return errno.EIO


def has_sent(state_dir: Path) -> bool:
    return (state_dir / SENT_MARKER).exists()


def mark_sent(state_dir: Path) -> None:
    """Remember, outside the database, that this project has recorded a real send."""
    if not has_sent(state_dir):
        try:
            create_once(state_dir / SENT_MARKER, _MARKER_TEXT)
        except OSError as exc:  # before anything is sent: the rows are in the store
            raise state_write_error(exc, state_dir / SENT_MARKER) from None


def remember_sent(database: Database, state_dir: Path) -> None:
    """Write ``.mirage/sent`` when the store holds recipients but the marker is not there (a
    project that sent with a version before it), so the signing secret's guard knows too.
    A store that cannot be read says nothing either way: the command that uses it says why."""
    if has_sent(state_dir):
        return
    try:
        health = inspect(database, thorough=False)
    except StoreError:  # unreadable, busy, unreachable: not this check's to report
        return
    if health.state == "ok" and health.rows:
        mark_sent(state_dir)


def check_memory(database: Database, state_dir: Path, *, new_store: bool = False,
                 dry_run: bool = False, reading: bool = False) -> None:
    """Refuse (``StoreError``, exit 2) to send from a store that lost its memory.

    ``new_store`` accepts a missing or empty store and renames a damaged one aside (not for
    ``dry_run``, which changes nothing); it refuses a healthy store with recipients in it.
    ``reading``: nothing will be written (``send --dry-run``; not the plan a real send asks
    about, which is refused here as the send would be).
    """
    health = inspect(database, reading=reading)
    where = display_path(database)
    if health.state == "ok":
        if new_store:
            raise InputError(Problem(
                where, None, f"--new-store: the tracking database is intact ({health.rows} "
                "recipient row(s)); it only starts over from a missing, empty or damaged one",
                "drop --new-store to resume; to really start over, move the file away first"
                if isinstance(database, Path) else
                "drop --new-store to resume; to really start over, point tracking.database "
                "at an empty database"))
        if health.rows:
            mark_sent(state_dir)
        return
    if health.state == "damaged" and isinstance(database, Path):
        if not new_store:
            raise StoreError(Problem(where, None, "the tracking database is damaged "
                                     f"({health.detail}); nothing was sent", DAMAGED_HINT))
        if not dry_run:
            kept = _salvage_suppressions(database)
            _move_aside(database)
            _restore_suppressions(database, kept)
        return
    if has_sent(state_dir) and not new_store:
        raise StoreError(_lost(
            database, state_dir, health, "every reader would get the issue again; nothing "
            "was sent", "restore the database from a backup, or start over on purpose with "
            "'mirage-mailer send ISSUE_DIR --new-store'"))


def check_read_memory(database: Database, state_dir: Path) -> None:
    """Refuse (``StoreError``, exit 2) to report from a store that lost its memory, in the
    words ``check_memory`` refuses to send with: zero counts would read as "nobody got
    it". A damaged file is left to the open, which names the damage; only a project that
    has sent before is checked, so a new one reads as fast as ever."""
    _check_kept(database, state_dir, "a report would say nobody got any issue",
                "restore the database from a backup; 'mirage-mailer send ISSUE_DIR "
                "--new-store' starts over on purpose")


# What every command but send, run-due and report says to do about a lost store.
RESTORE_HINT = ("restore the database from the backup (docs/operations.md#backups), or start "
                "over on purpose with 'mirage-mailer send ISSUE_DIR --new-store'")
# What a command would do to a lost store: the two common outcomes.
RECORDS = ("what this command records now would be lost when the backup is restored; nothing "
           "was changed")
READS = ("every reader would look never sent and never unsubscribed; the store was left as "
         "it is")


def check_kept(database: Database, state_dir: Path, outcome: str) -> None:
    """Refuse (``StoreError``, exit 2) to open, and so create or fill, the store of a project
    that has sent once that store lost its memory; ``outcome`` says what would happen.

    An unsubscribe recorded into a new store vanishes when the backup is put back over it,
    and the reader gets the next issue; a reader of a new store shows every unsubscribed
    reader as active. So every command that writes the store (and every reader, which would
    otherwise write a schema into an emptied file) asks first, as ``send`` does. Cheap: a
    project that never sent costs one stat, and the check reads no row. A damaged file is
    left to the open, which names the damage."""
    _check_kept(database, state_dir, outcome, RESTORE_HINT)


class KeptCheck:
    """``check_kept`` for a process that opens the store again and again (``serve``): a
    SQLite file found whole is asked again only once it is another file or was emptied (its
    inode, or a zero size), so a request costs a stat, not a second connection. A PostgreSQL
    store is asked every time (``serve`` asks once per kept connection)."""

    def __init__(self, database: Database, state_dir: Path) -> None:
        self.database = database
        self.state_dir = state_dir
        self._whole: tuple[int, int] | None = None  # the file last found whole (dev, inode)

    def __call__(self, outcome: str) -> None:
        if not isinstance(self.database, Path):
            check_kept(self.database, self.state_dir, outcome)
            return
        try:
            found = self.database.stat()
        except OSError:
            key = None
        else:
            key = (found.st_dev, found.st_ino) if found.st_size else None
        if key is None or key != self._whole:
            check_kept(self.database, self.state_dir, outcome)
            self._whole = key


def _check_kept(database: Database, state_dir: Path, outcome: str, hint: str) -> None:
    if not has_sent(state_dir):
        return
    health = inspect(database, thorough=False)
    if health.state not in ("ok", "damaged"):
        raise StoreError(_lost(database, state_dir, health, outcome, hint))


def _lost(database: Database, state_dir: Path, health: Health, outcome: str,
          hint: str) -> Problem:
    """What happened to a store that lost its memory, and what that would mean."""
    what = {"missing": "is missing", "zero bytes": "is empty (zero bytes)",
            "empty": f"is empty ({health.detail})"}[health.state]
    if health.state == "missing" and isinstance(database, PostgresUrl):
        what = "has none of mirage-mailer's tables (a new or another database?)"
    return Problem(display_path(database), None, f"the tracking database {what}, but this "
                   f"project has sent before ({display_path(state_dir / SENT_MARKER)}): "
                   f"{outcome}", hint)


def _salvage_suppressions(database: Path) -> list[tuple[str, str, str | None, str]]:
    """Every unsubscription still readable in a damaged database (best effort).

    Starting over must not mail people who asked to stop: a suppression is a promise.
    """
    found: list[tuple[str, str, str | None, str]] = []
    try:
        conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return found
    try:
        for row in conn.execute("SELECT email, source, reason, created_at FROM suppressions"):
            found.append((str(row[0]), str(row[1]), row[2], str(row[3])))
    except sqlite3.Error:
        pass  # what was read before the damaged page is kept
    finally:
        conn.close()
    return found


def _restore_suppressions(database: Path, rows: list[tuple[str, str, str | None, str]]) -> None:
    if not rows:
        return
    from mirage_mailer.store import Store  # the full store, to create the new database

    with Store(database) as store, store._write() as conn:
        conn.executemany("INSERT INTO suppressions (email, source, reason, created_at)"
                         " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)


def _move_aside(database: Path) -> None:
    """Rename a damaged database (and its -wal/-shm) to ``<name>.damaged-<UTC time>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{database}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{database}.damaged-{stamp}{suffix}"))
