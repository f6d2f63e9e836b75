"""The embedded outbox: a real Maildir that Thunderbird, mutt or Evolution open as a folder.

Delivery follows the Maildir rules (write into tmp/, fsync, rename into new/ under a unique
name), so a crash never leaves a half-written message where a mail client would show it, and
a message counts as delivered only once it is in new/.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mirage_mailer.delivery.model import (
    Claim,
    DeliveryAborted,
    DeliveryStats,
    Envelope,
    Outcome,
    Result,
)
from mirage_mailer.delivery.wire import from_wire
from mirage_mailer.util.addresses import ascii_address
from mirage_mailer.util.errors import Problem, display_path
from mirage_mailer.util.statedir import DIR_MODE

DELIVERED = "delivered to Maildir"
# A message in new/ is the local equivalent of a relay's 250 after DATA: a sent row has an
# integer code on every transport (the report's contract shape, "smtp_code": 250). A write that
# fails keeps None: no server answered, and the recipient stays pending for a rerun.
ACCEPTED = 250
_counter = itertools.count()


def ensure_maildir(root: Path) -> None:
    """Create root/{tmp,new,cur} (a Maildir is only valid with all three). The folders made
    here are owner-only, as the messages in them (0600) hold readers' addresses; a folder that
    already exists keeps its mode: it may be a shared mailbox someone else set up."""
    for sub in ("tmp", "new", "cur"):
        _private_folder(root / sub)


def _private_folder(path: Path) -> None:
    """Create ``path`` and its missing parents 0700; leave existing folders as they are."""
    if path.is_dir() or path.parent == path:
        return
    _private_folder(path.parent)
    path.mkdir(mode=DIR_MODE, exist_ok=True)


@functools.cache
def _host() -> str:
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


def unique_name() -> str:
    """``time.MusecPpidQn.host``: unique per the Maildir spec, even within one microsecond."""
    now = time.time()
    host = _host()
    seconds = int(now)
    micro = int((now - seconds) * 1_000_000)
    return f"{seconds}.M{micro}P{os.getpid()}Q{next(_counter)}.{host}"


def write_message(root: Path, envelope: Envelope) -> Path:
    """Write one message durably into new/ and return its path.

    Like a local delivery agent, prepend Return-Path and Delivered-To: the envelope is
    otherwise lost in a Maildir, and a test copy's To header need not match its recipient.
    """
    name = unique_name()
    tmp = root / "tmp" / name
    body = (from_wire(envelope.data) if envelope.wired
            else envelope.data.replace(b"\r\n", b"\n"))
    trace = (f"Return-Path: <{ascii_address(envelope.sender)}>\n"  # as SMTP would carry it
             f"Delivered-To: {ascii_address(envelope.recipient)}\n").encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(trace + body)
            fh.flush()
            os.fsync(fh.fileno())
        final = root / "new" / name
        os.rename(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def _sync_dir(path: Path) -> None:
    """Make the renames into new/ durable; once per run is enough for crash safety."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


async def deliver_maildir(
    root: Path,
    envelopes: Iterator[Envelope],
    *,
    on_attempt: Claim,
    on_result: Callable[[Result], None],
    stop: asyncio.Event | None = None,
) -> DeliveryStats:
    """Write every envelope into the Maildir at ``root``; an unwritable folder aborts (exit 3)."""
    started = time.monotonic()
    sent = attempts = 0
    stopped = False
    try:
        ensure_maildir(root)
    except OSError as exc:
        raise DeliveryAborted(Problem(display_path(root), None,
                                      f"cannot create the Maildir: {exc.strerror or exc}",
                                      "check the path in transport.url and its permissions"),
                              DeliveryStats()) from None
    try:
        while not (stop is not None and stop.is_set()):
            envelope = next(envelopes, None)
            if envelope is None:
                break
            if not await on_attempt(envelope):
                continue  # withdrawn by the caller: not written
            attempts += 1
            try:
                write_message(root, envelope)
            except OSError as exc:
                on_result(Result(envelope, Outcome.DEFERRED, None,
                                 f"cannot write to the Maildir: {exc.strerror or exc}", True))
                stats = DeliveryStats(sent=sent, deferred_final=1, attempts=attempts,
                                      elapsed=time.monotonic() - started)
                raise DeliveryAborted(Problem(display_path(root), None,
                                              f"cannot write to the Maildir: "
                                              f"{exc.strerror or exc}",
                                              "check free disk space and permissions"),
                                      stats) from None
            sent += 1
            on_result(Result(envelope, Outcome.SENT, ACCEPTED, DELIVERED, True))
            await asyncio.sleep(0)  # let a Ctrl-C handler set the stop event
        stopped = stop is not None and stop.is_set()
    finally:
        _sync_dir(root / "new")
    return DeliveryStats(sent=sent, attempts=attempts, elapsed=time.monotonic() - started,
                         stopped=stopped)
