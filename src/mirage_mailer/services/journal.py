"""The claim journal: what a send is doing, a line each, before the store knows it.

A message needs a durable mark before it leaves (``claim``) and after the server answered
(``outcome``), so that a crash leaves at most ``concurrency`` recipients ``unknown``. One
SQLite commit per mark cost about a fifth of a send's time; a line copied into a shared
mapping of this file is in the kernel's page cache once copied (``Journal``), so it survives
the process being killed at any moment (SIGKILL included), and costs no system call. The
store is brought up to date in batches (``SendRecorder``), after which the journal starts
over; a run that ends normally removes it.

The next send of the issue (and ``report``, when no send holds the issue's lock) replays a
journal it finds into the store before anything else: outcomes are applied, a claim with no
outcome leaves its row ``sending`` (so ``unknown``). An outcome line names the relay that
answered (with several relays), so a replayed ``sent`` row still says who carried it; a line
without one (a journal of an older version, or a single relay) replays as before. Replay only
moves a row forward: a record
is applied only while the row's attempt count still equals the record's, so replaying twice
changes nothing, and where the store is already further on, the store wins. A line cut in the
middle (the process died while copying it) and anything unreadable is skipped; its message
was never handed to the server before the line was complete.

What the journal guarantees is written down in docs/design.md ("Claim journal").
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring, encode_basestring_ascii
from pathlib import Path
from typing import Protocol

from mirage_mailer.util.database import Database
from mirage_mailer.util.errors import DeliveryError
from mirage_mailer.util.locks import Lock
from mirage_mailer.util.statedir import FILE_MODE, private_dir, tighten
from mirage_mailer.util.statefault import state_write_error

MAGIC = "mirage-mailer journal 1"  # header: MAGIC, the issue as JSON (an older version's)
# header: MAGIC2, then JSON [issue, run token]: the token the store registered for this
# journal (``store/journal_runs.py``), so a journal of another store is never replayed
MAGIC2 = "mirage-mailer journal 2"

# (id, who, attempt, kind, code, response, message id, time): an outcome as ``record_batch``
# takes it; ``who`` is the hash of the row's address (``store.hashed_key``), so a record never
# lands on another person's row (a store started over reuses row ids)
Outcome = tuple[int, str, int, str, int | None, str, str, str]
# (id, who, attempt, message id, time): a claim
Claimed = tuple[int, str, int, str, str]
# (id, who, attempt, relay): the relay that gave an attempt's outcome (several relays)
Carried = tuple[int, str, int, str]
_KINDS = frozenset({"sent", "deferred", "failed", "unknown"})


Where = Path | Sequence[Path]  # a folder holding ``journal/``, or several (the first is new)


def journal_roots(state_dir: Path, database: Database) -> list[Path]:
    """Where an issue's journals live, new place first. A journal belongs with its store: a
    SQLite file outside ``state_dir`` (two project folders may share it) keeps its journals
    beside it, in ``<file>.mirage/journal/``, so every folder's send and ``report`` finds
    them; otherwise ``state_dir/journal/``. The second entry is that older place, where a
    version before this one left them."""
    if isinstance(database, Path):
        folder = database.parent.resolve()
        state = state_dir.resolve()
        if folder != state and state not in folder.parents:
            return [folder / f"{database.name}.mirage", state_dir]
    return [state_dir]


def _roots(where: Where) -> list[Path]:
    return [where] if isinstance(where, Path) else list(where)


def journal_path(state_dir: Path, issue: str, shard: int = 0) -> Path:
    """One journal per issue, as the send lock is: sends of two issues may run at once; and
    one per sending process of a send (``services/shards.py``): process k > 0 writes
    ``journal/<k>/<issue>.log``, so every file keeps one writer."""
    if shard:
        return state_dir / "journal" / str(shard) / f"{issue}.log"
    return state_dir / "journal" / f"{issue}.log"


def issue_journals(where: Where, issue: str) -> list[Path]:
    """Every journal of ``issue`` on disk: the first process's and its siblings', in each
    of ``where``."""
    found: list[Path] = []
    for root in _roots(where):
        folder = root / "journal"
        found.append(folder / f"{issue}.log")
        if folder.is_dir():
            found += sorted(p / f"{issue}.log" for p in folder.iterdir()
                            if p.is_dir() and p.name.isdigit())
    return [p for p in found if p.exists()]


class Journal:
    """The append-only file of one running send (opened under the issue's send lock).

    Lines are copied into a shared mapping of the file (``mmap``), not written with a
    ``write()`` each: the mapping's pages are the kernel's page cache, so a line is there the
    moment it is copied, and reaches the file whatever happens to the process, exactly as a
    returned ``write()`` does, for no system call (two ``write()`` calls a message were 11 %
    of a send's samples, py-spy). The file is given its blocks ahead (``posix_fallocate``),
    so a full disk is an error here, never a fault in the middle of a copy; what follows the
    last line is zeros, where a reader stops (``read_journal``).
    """

    SPAN = 1 << 20  # bytes the file is grown by, and first given

    def __init__(self, path: Path, issue: str, run: str | None = None) -> None:
        """``run``: the token the store registered for this journal (``register_journal``);
        None writes an older version's header, replayed without that check (tests)."""
        self.path = path
        self.issue = issue
        self.run = run
        self._map: mmap.mmap | None = None
        self._size = 0
        self._at = 0  # where the next line goes: the end of the last whole line
        self._header = (f"{MAGIC} {json.dumps(issue)}\n" if run is None
                        else f"{MAGIC2} {json.dumps([issue, run])}\n").encode()
        try:
            private_dir(path.parent)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        except OSError as exc:
            raise state_write_error(exc, path) from None
        tighten(path, FILE_MODE)
        try:
            self._grow(self.SPAN)
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            with contextlib.suppress(OSError):  # an empty journal: nothing to replay
                path.unlink()
            raise
        self._write(self._header)

    def _grow(self, size: int) -> None:
        """Give the file ``size`` bytes of blocks and map them all. A full disk raises
        ``StateWriteError`` (exit 3) here, before any line is lost: the caller
        (``SendRecorder``) then brings the store up to date, which empties the journal."""
        try:
            os.posix_fallocate(self._fd, 0, size)
        except OSError as exc:
            raise state_write_error(exc, self.path) from None
        if self._map is not None:
            self._map.close()
        self._map = mmap.mmap(self._fd, size)  # shared, read and write
        self._size = size

    def _write(self, line: bytes) -> None:
        view = self._map
        if view is None:
            raise ValueError("the journal is closed")
        at = self._at
        end = at + len(line)
        if end > self._size:
            self._grow(max(2 * self._size, end + self.SPAN))
            view = self._map
            assert view is not None
        view[at:end] = line  # in the page cache once copied: a line is whole, or cut
        self._at = end

    # The JSON in a line is ``json.dumps``' text, written with its C string encoders: the
    # encoder object ``dumps`` sets up per call cost more than the rest of a line.

    def claim(self, key: int, who: str, attempt: int, message_id: str, at: str) -> None:
        """Before the message leaves: a crash from now on leaves the row ``unknown``."""
        mid = encode_basestring_ascii(message_id)  # json.dumps(message_id)
        self._write(f"c {key} {who} {attempt} {at} {mid}\n".encode())

    def outcome(self, key: int, who: str, attempt: int, kind: str, code: int | None,
                response: str, message_id: str, at: str, relay: str = "") -> None:
        """After the server's answer (or its silence after the end of DATA); ``relay``, with
        several relays, is the one that answered: a third item in the line's JSON list."""
        # json.dumps([message_id, response(, relay)], ensure_ascii=False)
        tail = f"[{encode_basestring(message_id)}, {encode_basestring(response)}" + (
            f", {encode_basestring(relay)}]" if relay else "]")
        self._write(f"o {key} {who} {attempt} {at} {kind} {code or 0} {tail}\n".encode())

    def restart(self) -> None:
        """The store now holds everything written so far: start an empty journal. The old
        lines are zeroed (a crash meanwhile leaves some of them, which the store already
        holds: replaying them changes nothing)."""
        view = self._map
        if view is None:
            raise ValueError("the journal is closed")
        start = len(self._header)
        view[start:self._at] = bytes(self._at - start)
        self._at = start

    def remove(self) -> None:
        """The run ended and the store holds all of it: no journal is left behind."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def close(self) -> None:
        """Unmap and close; the file keeps its lines, cut to their length."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._at)
            os.close(self._fd)
            self._fd = -1


@dataclass
class Replay:
    """A journal read back: its issue, and its complete records in order."""

    issue: str | None  # None: not a journal (or its first line was cut)
    outcomes: list[Outcome]
    claims: list[Claimed]  # claims with no outcome after them: on the wire at the crash
    skipped: int  # lines cut in the middle or unreadable
    relays: list[Carried] = field(default_factory=list)  # of the outcomes that name one
    run: str | None = None  # the token in its header (None: an older version's journal)
    # lines are missing: the header, a line before the last, or the file was cut short (a
    # crashed send's file ends in zeros); what it holds may not be all that was claimed
    damaged: bool = False


def read_journal(path: Path) -> Replay:
    """Parse a journal; only whole, well-formed lines count (see the module docstring).
    A running send's file ends in zeros (``Journal``): its lines end at the first. A line
    cut in the middle is the last one (the process died copying it); an unreadable line
    anywhere else, or a file of this version with no zeros at its end, means the file was
    damaged after the fact (``damaged``)."""
    raw = path.read_bytes()
    data = raw.split(b"\0", 1)[0]
    lines = data.split(b"\n")
    whole, cut = lines[:-1], lines[-1]  # after the last newline: empty, or a cut line
    skipped = 1 if cut else 0
    header = _header(whole[0]) if whole else None
    if header is None:
        return Replay(None, [], [], skipped + len(whole), damaged=True)
    issue, run = header
    outcomes: list[Outcome] = []
    relays: list[Carried] = []
    open_claims: dict[int, Claimed] = {}
    damaged = run is not None and len(data) == len(raw)  # cut short: no zeros left
    for line in whole[1:]:
        parsed = _parse(line)
        if parsed is None:
            skipped += 1
            damaged = True
            continue
        record, relay = parsed
        if len(record) == 5:
            open_claims[record[0]] = record
        else:
            outcomes.append(record)
            open_claims.pop(record[0], None)
            if relay:
                relays.append((record[0], record[1], record[2], relay))
    return Replay(issue, outcomes, list(open_claims.values()), skipped, relays, run, damaged)


def _header(line: bytes) -> tuple[str, str | None] | None:
    """(issue, run token) of a journal's first line; None when it is not one."""
    try:
        if line.startswith(MAGIC2.encode() + b" "):
            issue, run = json.loads(line[len(MAGIC2) + 1:].decode())
            if isinstance(issue, str) and isinstance(run, str) and run:
                return issue, run
        elif line.startswith(MAGIC.encode() + b" "):
            issue = json.loads(line[len(MAGIC) + 1:].decode())
            if isinstance(issue, str):
                return issue, None
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    return None


def _parse(line: bytes) -> tuple[Outcome | Claimed, str] | None:
    """A record and the relay its outcome names ("" for none, and for a claim)."""
    try:
        text = line.decode()
        if text.startswith("c "):
            _, key, who, attempt, at, mid = text.split(" ", 5)
            message_id = json.loads(mid)
            if not isinstance(message_id, str):
                return None
            return (int(key), who, int(attempt), message_id, at), ""
        if text.startswith("o "):
            _, key, who, attempt, at, kind, code, tail = text.split(" ", 7)
            items = json.loads(tail)
            if not isinstance(items, list) or len(items) not in (2, 3):
                return None
            message_id, said, relay = (*items, "")[:3]  # no relay: an older journal
            if kind not in _KINDS or not all(isinstance(v, str)
                                             for v in (message_id, said, relay)):
                return None
            return ((int(key), who, int(attempt), kind, int(code) or None, said, message_id,
                     at), relay)
    except (ValueError, UnicodeDecodeError):
        return None
    return None


def journals(where: Where) -> Iterator[Path]:
    """Every journal a crashed send may have left (a sending process's own included)."""
    for root in _roots(where):
        folder = root / "journal"
        if folder.is_dir():
            yield from sorted([*folder.glob("*.log"), *folder.glob("[0-9]*/*.log")])


@dataclass
class Settled:
    """What bringing an issue's journals in found: the first journal's replay, the rows it
    had to make ``unknown`` because a journal was lost or damaged, and one warning line per
    journal set aside or missing (the caller says them: the core never prints)."""

    first: Replay | None = None
    unknown: int = 0
    warnings: list[str] = field(default_factory=list)


def settle(store: JournalStore, where: Where, issue: str) -> Settled | None:
    """Replay the issue's journals, if a crashed send left any, into the store; then remove
    them, and end the issue's runs the store still has open (``store/journal_runs.py``).
    None: there was nothing to do.

    Call under the issue's send lock, before anything else reads the rows. A file whose
    first line names another issue is not this issue's to replay: it is kept aside
    (``.foreign``), never applied here; so is one whose run this store never registered (a
    journal of another store). A file that cannot be read whole is applied as far as it
    can be read and kept aside (``.damaged``), never deleted; the rows its run reserved
    and left ``pending`` become ``unknown``, as do those of a run whose journal is gone.
    """
    paths = issue_journals(where, issue)
    runs = store.journal_runs(issue)
    if not paths and not runs:
        return None
    live = store.live_journal_runs(issue)  # another folder's send sharing the store: its own
    done = Settled()
    whole: set[str] = set()  # runs whose journal was read complete
    seen: set[str] = set()
    unreadable = 0  # files kept aside whose run could not be read: not missing
    for path in paths:
        if _run_of(path) in live:
            continue
        replay = _settle_one(store, path, issue, runs, done.warnings)
        done.first = done.first or replay
        unreadable += replay.issue is None
        if replay.run is not None and replay.issue == issue:
            seen.add(replay.run)
            if not replay.damaged:
                whole.add(replay.run)
    done.unknown = store.end_journal_runs(issue, whole, seen)
    if done.unknown and len(runs - seen - live) > unreadable:
        done.warnings.append(
            f"{journal_path(_roots(where)[0], issue)}: the claim journal of a stopped send of "
            f"{issue} is missing")
    if done.unknown:
        done.warnings.append(
            f"{done.unknown} recipient(s) that send may have mailed are now 'unknown' (never"
            " sent again unasked): see 'mirage-mailer report', then re-send them with"
            " 'send --resend-unknown' if they did not get the issue")
    return done


def _run_of(path: Path) -> str | None:
    """The run token in a journal's first line, read alone (None: none, or unreadable)."""
    try:
        with path.open("rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    header = _header(first.rstrip(b"\n")) if first.endswith(b"\n") else None
    return header[1] if header is not None else None


def _settle_one(store: JournalStore, path: Path, issue: str, runs: set[str],
                warnings: list[str]) -> Replay:
    replay = read_journal(path)
    if replay.issue is not None and replay.issue != issue:
        path.replace(path.with_suffix(".foreign"))
        return replay
    if replay.run is not None and replay.run not in runs:
        if replay.outcomes or replay.claims:  # another store's, or this store's since restored
            aside = path.with_suffix(".foreign")
            path.replace(aside)
            warnings.append(f"{path}: a claim journal this tracking store never started (a"
                            f" copied project folder?), kept aside as {aside.name}, not"
                            " replayed")
        else:  # a run that ended between deregistering and removing its empty journal
            path.unlink()
        return replay
    if replay.outcomes or replay.claims:
        store.record_batch(replay.outcomes, replay.claims, replay.relays)
    if replay.damaged:
        aside = path.with_suffix(".damaged")
        path.replace(aside)
        warnings.append(f"{path}: the claim journal of a stopped send is damaged (kept as"
                        f" {aside.name}); what it could not tell is recorded 'unknown'")
    else:
        path.unlink()
    return replay


def settle_all(store: JournalStore, state_dir: Path, where: Where | None = None,
               locks: Path | None = None) -> list[str]:
    """Replay every journal whose send is not running (``report`` after a crash), and end
    the runs whose journal is gone: a send that holds its issue's lock keeps its journal,
    and will bring the store up to date. A store opened read-only (a folder this user
    cannot write) cannot take them: they stay for the next send. ``locks`` is the store's
    lock folder (``store_locks.store_lock_dir``; default ``state_dir/locks``): a send from
    another folder sharing the store holds its lock there.

    Returns the warnings of ``settle`` (a journal lost, damaged or foreign, rows now
    ``unknown``), for the caller to say as ``send`` does: the settling is done once, and
    whoever ran it is the only one who can tell the operator."""
    warnings: list[str] = []
    if getattr(store, "read_only", False):
        return warnings
    where = state_dir if where is None else where
    locks = state_dir / "locks" if locks is None else locks
    issues = {path.stem for path in journals(where)} | store.journal_issues()
    for issue in sorted(issues):
        lock = Lock(locks / f"send-{issue}.lock", f"a send of {issue}")
        try:
            lock.acquire()
        except DeliveryError:
            continue
        try:
            settled = settle(store, where, issue)
        finally:
            lock.release()
        if settled is not None:
            warnings += settled.warnings
    return warnings


def lock_path(state_dir: Path, issue: str) -> Path:
    """The send lock of an issue with the default store (``sending.send`` holds it for the
    whole run; ``store_locks.send_lock_paths`` says where it is for any store)."""
    return state_dir / "locks" / f"send-{issue}.lock"


class JournalStore(Protocol):
    def journal_runs(self, issue: str) -> set[str]: ...

    def live_journal_runs(self, issue: str) -> set[str]: ...

    def journal_issues(self) -> set[str]: ...

    def end_journal_runs(self, issue: str, whole: set[str], seen: set[str]) -> int: ...

    def record_batch(self, outcomes: Iterable[Outcome], inflight: Iterable[Claimed] = ...,
                     relays: Iterable[Carried] = ...) -> None: ...
