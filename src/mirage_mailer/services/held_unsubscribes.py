"""Unsubscribes ``serve`` took while the store could not record them (another process's
lock, a PostgreSQL server out of reach), kept so that none is lost.

Mail providers do not retry an RFC 8058 one-click POST, so a refused one would be lost. Each
one is kept as a file in ``.mirage/held-unsubscribes/`` (written and synced before the answer
goes out), then recorded by ``serve`` as soon as the store answers, and by ``send`` and
``run-due`` before they plan. A file names the link's issue and subject (the keyed hash its
token carries), never the address.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from mirage_mailer.store import email_key
from mirage_mailer.store.ports import Unsubscriber
from mirage_mailer.util.statedir import create_once, replace_atomically

FOLDER = "held-unsubscribes"
_LONGEST = 512  # an issue id or a subject is far shorter: anything longer is not ours
_MAX_BYTES = 4 * _LONGEST + 256  # a whole file of ours is shorter still
MAX_HELD = 10_000  # files waiting at once; a busy store is minutes, not days


@dataclass(frozen=True)
class Held:
    """One unsubscribe waiting for the store."""

    issue: str
    subject: str
    source: str
    at: datetime


class HeldFull(Exception):
    """The folder holds ``MAX_HELD`` files already: the caller answers "not recorded"."""


def hold(state_dir: Path, held: Held) -> None:
    """Keep ``held`` on disk (owner-only, synced) until ``record_held`` records it.

    One file per link (issue and subject): a replayed or repeated POST of one link rewrites
    its file, so one forwarded newsletter cannot fill the disk. The latest request's time is
    kept: against a sign-up confirmed in between, the person's last word counts. At most
    ``MAX_HELD`` links wait at once (``HeldFull``)."""
    data = json.dumps({"issue": held.issue, "subject": held.subject, "source": held.source,
                       "at": held.at.isoformat()}).encode()
    name = hashlib.sha256(f"{held.issue}\0{held.subject}".encode()).hexdigest()[:32]
    path = state_dir / FOLDER / f"{name}.json"
    if not path.exists():
        if len(waiting(state_dir)) >= MAX_HELD:
            raise HeldFull(f"{MAX_HELD} unsubscribes are held already")
        if create_once(path, data):
            return
    replace_atomically(path, data)  # a new file (inode): one being recorded is not touched


def waiting(state_dir: Path) -> list[Path]:
    """The held unsubscribes' files: those waiting, and those a recorder had taken when it
    stopped (``*.taking``)."""
    folder = state_dir / FOLDER
    if not folder.is_dir():
        return []
    return sorted([*folder.glob("*.json"), *folder.glob("*.taking")])


def record_held(store: Unsubscriber, state_dir: Path) -> int:
    """Record every held unsubscribe and remove its file; the number that suppressed an
    address. A store error propagates: the rest stay held for the next try. A file that is
    not one of ours is renamed ``*.invalid`` and left for the operator.

    Each file is first taken by renaming it to ``*.taking``: a request for the same link
    held meanwhile makes a new ``*.json``, recorded next time, instead of being removed
    unread with the one recorded now."""
    recorded = 0
    for path in waiting(state_dir):
        taken = path.with_suffix(".taking")
        if path != taken:
            try:
                path.rename(taken)
            except FileNotFoundError:  # another recorder took it (serve beside a send)
                continue
        held = _read(taken)
        if held is None:
            with suppress(OSError):
                taken.rename(taken.with_suffix(".invalid"))
            continue
        address = store.resolve_subject(held.subject, held.issue)
        if address is not None and store.suppress(
                address, source=held.source, at=held.at,
                reason=f"link in issue {held.issue} (held while the store was busy)"):
            recorded += 1
        taken.unlink(missing_ok=True)  # an erased address: nothing left to suppress
    return recorded


class _Resolver(Protocol):
    def resolve_subject(self, subject: str, issue: str | None = ...) -> str | None: ...


def held_keys(store: _Resolver, state_dir: Path) -> set[str]:
    """The addresses (as keys) that held unsubscribes name, read only: the dry run and the
    send prompt count them as suppressed, since the real send records them before it plans
    (one whose person confirmed a sign-up since is still counted here)."""
    keys = set()
    for path in waiting(state_dir):
        held = _read(path)
        address = store.resolve_subject(held.subject, held.issue) if held else None
        if address is not None:
            keys.add(email_key(address))
    return keys


def _read(path: Path) -> Held | None:
    """The file's content if it is what ``hold`` writes (hostile until checked): a regular
    file of at most ``_MAX_BYTES``, not followed through a link, opened without blocking (a
    FIFO dropped there must not hang ``send``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_BYTES:
                return None
            raw = os.read(fd, _MAX_BYTES + 1)
        finally:
            os.close(fd)
        if len(raw) > _MAX_BYTES:
            return None
        data = json.loads(raw)
        fields = [data[name] for name in ("issue", "subject", "source", "at")]
        if not all(isinstance(value, str) and 0 < len(value) <= _LONGEST for value in fields):
            return None
        at = datetime.fromisoformat(data["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if at.tzinfo is None:
        return None
    return Held(data["issue"], data["subject"], data["source"], at.astimezone(UTC))
