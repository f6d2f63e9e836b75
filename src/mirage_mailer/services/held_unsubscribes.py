"""Unsubscribes ``serve`` took while the store could not record them (another process's
lock, a PostgreSQL server out of reach), kept so that none is lost.

Mail providers do not retry an RFC 8058 one-click POST, so a refused one would be lost. Each
one is kept as a file in ``.mirage/held-unsubscribes/`` (written and synced before the answer
goes out), then recorded by ``serve`` as soon as the store answers, and by ``send`` and
``run-due`` before they plan. A file names the link's issue and subject (the keyed hash its
token carries), never the address.
"""

from __future__ import annotations

import json
import secrets
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mirage_mailer.store.ports import Unsubscriber
from mirage_mailer.util.statedir import create_once

FOLDER = "held-unsubscribes"
_LONGEST = 512  # an issue id or a subject is far shorter: anything longer is not ours


@dataclass(frozen=True)
class Held:
    """One unsubscribe waiting for the store."""

    issue: str
    subject: str
    source: str
    at: datetime


def hold(state_dir: Path, held: Held) -> None:
    """Keep ``held`` on disk (owner-only, synced) until ``record_held`` records it."""
    data = json.dumps({"issue": held.issue, "subject": held.subject, "source": held.source,
                       "at": held.at.isoformat()}).encode()
    while not create_once(state_dir / FOLDER / f"{time.time_ns()}-{secrets.token_hex(4)}.json",
                          data):
        pass  # the same name twice is all but impossible; never overwrite one


def waiting(state_dir: Path) -> list[Path]:
    """The held unsubscribes' files, oldest first."""
    folder = state_dir / FOLDER
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def record_held(store: Unsubscriber, state_dir: Path) -> int:
    """Record every held unsubscribe and remove its file; the number that suppressed an
    address. A store error propagates: the rest stay held for the next try. A file that is
    not one of ours is renamed ``*.invalid`` and left for the operator."""
    recorded = 0
    for path in waiting(state_dir):
        held = _read(path)
        if held is None:
            with suppress(OSError):
                path.rename(path.with_suffix(".invalid"))
            continue
        address = store.resolve_subject(held.subject, held.issue)
        if address is not None and store.suppress(
                address, source=held.source, at=held.at,
                reason=f"link in issue {held.issue} (held while the store was busy)"):
            recorded += 1
        path.unlink(missing_ok=True)  # an erased address: nothing left to suppress
    return recorded


def _read(path: Path) -> Held | None:
    """The file's content if it is what ``hold`` writes (hostile until checked)."""
    try:
        data = json.loads(path.read_bytes())
        fields = [data[name] for name in ("issue", "subject", "source", "at")]
        if not all(isinstance(value, str) and 0 < len(value) <= _LONGEST for value in fields):
            return None
        at = datetime.fromisoformat(data["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if at.tzinfo is None:
        return None
    return Held(data["issue"], data["subject"], data["source"], at.astimezone(UTC))
