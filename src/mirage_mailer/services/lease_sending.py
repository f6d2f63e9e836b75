"""``send`` on a PostgreSQL store: one of possibly several senders of an issue, on one host or
many, sharing its recipients by leases (``store/leases.py``), each sent exactly once.

No per-issue file lock and no claim journal (another host can read neither): the store is the
journal (``lease_recorder``). The flow: reap the issue's dead senders; plan (reconcile, as on
SQLite, under the store's write lock); register this sender; claim pending rows in batches
and send them; when nothing is claimable, reap once more and try again, then stop; release
what is left (pending rows back to the pool) and leave. Rows other live senders hold are
theirs: the summary says how many. docs/design.md ("Several senders") says what holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mirage_mailer.compose.message import Personal
from mirage_mailer.delivery import DeliveryAborted, Envelope, Result
from mirage_mailer.project.config import Settings
from mirage_mailer.services.lease_recorder import LeaseRecorder
from mirage_mailer.services.outbound import resumable
from mirage_mailer.services.preparation import for_the_wire
from mirage_mailer.services.verp import envelope_sender
from mirage_mailer.store import (
    LeaseStore,
    Reaped,
    Recipient,
    SenderInfo,
    StoreUnavailable,
    email_key,
)
from mirage_mailer.util.database import PostgresUrl
from mirage_mailer.util.errors import (
    DeliveryError,
    MirageError,
    Problem,
    display_path,
)

if TYPE_CHECKING:
    from mirage_mailer.services.preparation import Preparation
    from mirage_mailer.services.sending import (
        ProgressHook,
        SendOptions,
        SendOutcome,
        StopSource,
    )

CLAIM_BATCH = 100  # rows leased per claim (docs/design.md, "Several senders": measured)
RECOUNT_EVERY = 2.0  # seconds between counts of what is still claimable (the progress total)


class LeaseLost(DeliveryError):
    """This sender stalled longer than its lease and was reaped: exit 3, a rerun resumes."""



@dataclass
class _Track:
    message_id: str
    claimed: bool = False  # marked 'sending' for the attempt now on the wire


class _Stop:
    """The caller's stop (Ctrl-C, SIGTERM) plus this sender's own: a lost lease. Armed inside
    the run's loop, where it also starts the heartbeat."""

    def __init__(self, inner: StopSource | None, recorder: LeaseRecorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.event: asyncio.Event | None = None

    @property
    def signal(self) -> signal.Signals | None:
        return self.inner.signal if self.inner is not None else None

    @signal.setter
    def signal(self, value: signal.Signals | None) -> None:
        if self.inner is not None:
            self.inner.signal = value

    def remember(self) -> None:
        if self.inner is not None:
            self.inner.remember()

    def arm(self, stop: asyncio.Event) -> Callable[[], None]:
        self.event = stop
        self.recorder.on_lost = stop.set
        self.recorder.start()
        disarm = self.inner.arm(stop) if self.inner is not None else None

        def off() -> None:
            self.recorder.close()
            if disarm is not None:
                disarm()
        return off


def send_leased(prep: Preparation, options: SendOptions, store: LeaseStore, wanted: set[str],
                outcome: SendOutcome, progress: ProgressHook | None,
                stopper: StopSource | None) -> None:
    """Register, claim and send until nothing is claimable, then release and leave.

    Raises ``LeaseLost`` (exit 3) when this sender was reaped while it ran, and the usual
    ``DeliveryAborted`` (exit 3) when the relay cannot be used; either way the rows it held
    are back in the pool (or ``unknown``, for those on the wire) for a rerun or another
    sender."""
    from mirage_mailer.services.sending import _count, _deliver

    project = prep.project
    settings = project.settings
    issue = project.issue
    lease = float(settings.tracking.lease_seconds)
    owner = uuid.uuid4().hex
    keys = sorted(wanted) if options.limit is not None else None
    langs = _languages(prep, store) if options.lang else None
    tracked: dict[int, _Track] = {}
    sender = envelope_sender(settings, issue.id)
    recorder = LeaseRecorder(store, owner, lease, issue=issue.id)
    store.register_sender(owner, issue.id, socket.gethostname(), os.getpid(), lease,
                          durable=settings.tracking.durable_commits)
    warning = pace_elsewhere(settings, options.rate, store.senders(issue.id))
    if warning is not None:
        outcome.this_run.notes.append(warning)
        if progress:
            progress(outcome.this_run)

    run = outcome.this_run
    counted_at = -RECOUNT_EVERY  # the first claim counts

    def total(queued: int, claimable: int) -> None:
        """The progress total: what this run finished or holds, and what nobody holds yet
        (the plan's figure also counts rows other live senders hold: never ours)."""
        run.total = run.done + run.deferred + len(tracked) + queued + claimable

    def recount(queued: int, *, now: bool = False) -> None:
        nonlocal counted_at
        if now or time.monotonic() - counted_at >= RECOUNT_EVERY:
            counted_at = time.monotonic()
            total(queued, store.unclaimed(issue.id, keys=keys, langs=langs))

    def ours(rows: list[Recipient]) -> Iterator[tuple[Recipient, str]]:
        for row in rows:
            lang = issue.pick_language(row.lang)
            if lang in prep.rendered and (keys is None or email_key(row.email) in wanted):
                yield row, lang  # else not this run's (released at the end, untouched)

    def envelopes() -> Iterator[Envelope]:
        after = 0  # the highest id claimed: the next claim reads on from there
        reaped = False
        while not recorder.lost:
            began = time.perf_counter()
            rows = store.claim(owner, issue.id, CLAIM_BATCH, after=after, keys=keys,
                               langs=langs)
            recorder.commit_seconds += time.perf_counter() - began
            if rows is None:  # reaped while it ran
                recorder.lose()
                return
            if not rows:
                if after:  # once more from the start: rows given back below the cursor
                    after = 0
                    continue
                if reaped:
                    total(0, 0)  # what is left is with other live senders
                    return
                try:  # a dead sender's rows come back to the pool
                    got = store.reap(issue.id)
                except StoreUnavailable:  # a lock wait or deadlock: the next run reaps it;
                    got = Reaped()        # a lost connection fails the next claim anyway
                if got.senders or got.unknown:
                    outcome.this_run.notes.append(got.words())
                    recount(0, now=True)
                    if progress:
                        progress(outcome.this_run)
                reaped = True
                continue
            reaped = False
            after = rows[-1].id
            batch = list(ours(rows))
            recount(len(batch))
            for row, lang in batch:
                message_id = prep.factory.new_message_id()
                person = Personal(row.email, row.name, row.list_name, row.fields, row.subject)
                data = prep.factory.build(person, lang, message_id=message_id)
                tracked[row.id] = _Track(message_id)
                outcome.per_language[lang] += 1
                yield Envelope(row.id, sender(row.id, row.email), row.email, data,
                               refused_before=row.refused_before)
                if recorder.lost:
                    return

    async def on_attempt(envelope: Envelope) -> bool:
        track = tracked[envelope.key]
        if await recorder.claim(envelope.key, track.message_id):
            track.claimed = True
            return True
        tracked.pop(envelope.key, None)  # unsubscribed, withdrawn, or no longer ours
        return False

    def on_result(result: Result) -> None:
        key = result.envelope.key
        track = tracked[key]
        recorder.hold(key, result.outcome.value, result.code, result.response,
                      track.message_id, claimed=track.claimed, relay=result.relay)
        track.claimed = False
        if result.final:
            del tracked[key]
            _count(outcome.this_run, result)
            if progress:
                progress(outcome.this_run)

    stop = _Stop(stopper, recorder)
    try:
        _deliver(project, for_the_wire(prep, envelopes()), outcome, on_attempt=on_attempt,
                 on_result=on_result, stopper=stop, concurrency=options.concurrency,
                 rate=options.rate, progress=progress)
    except DeliveryAborted as exc:
        _leave(store, owner, recorder)
        raise resumable(settings, exc, store.counts(issue.id)) from None
    except BaseException:
        with contextlib.suppress(MirageError):  # the store itself failed: its lease runs
            _leave(store, owner, recorder)      # out, and the first word is the one to say
        raise
    _leave(store, owner, recorder)
    outcome.claim_seconds = recorder.commit_seconds
    outcome.commits = recorder.commits
    if recorder.lost:
        raise LeaseLost(Problem(
            display_path(settings.path), settings.line_of.get("tracking.lease_seconds"),
            f"{issue.id}: this sender's lease expired (it stalled longer than "
            f"tracking.lease_seconds, {lease:g} s) and the other senders took its recipients "
            "back; what it sent before is recorded, what it had on the wire then is unknown",
            "run the same command again to resume"))
    if recorder.failure is not None:
        raise recorder.failure


def pace_elsewhere(settings: Settings, rate: float | None,
                   senders: list[SenderInfo]) -> str | None:
    """The line to say when live senders of the issue on other hosts share the relay: the
    configured rates hold per host (the pace ledger is a file under ``.mirage/``), so the
    relay may see their sum. Sharing the pace through the store would put a round trip to
    the server on every message's start (docs/guide/several-senders.md says why not)."""
    transport = settings.transport
    paced = [rate, transport.rate_per_second, transport.rate_per_hour,
             *(r for relay in transport.relays for r in (relay.rate_per_second,
                                                         relay.rate_per_hour))]
    here = socket.gethostname()
    hosts = sorted({s.host for s in senders if s.expires_in > 0 and s.host != here})
    if not hosts or not any(paced):
        return None
    n = len(hosts) + 1
    return (f"{len(hosts)} other host(s) are sending this issue now ({', '.join(hosts)}): "
            f"rate_per_second and rate_per_hour hold per host, so the relay may see up to "
            f"{n} times them; set each host's rates to the provider's figure / {n} "
            "(docs/guide/several-senders.md)")


def _leave(store: LeaseStore, owner: str, recorder: LeaseRecorder) -> None:
    """Release this sender's rows (unless it was reaped: then none are its own)."""
    recorder.close()
    if not recorder.lost:
        store.release(owner)


def _languages(prep: Preparation, store: LeaseStore) -> list[str]:
    """``--lang``: the stored ``lang`` values ('' for none) whose readers get this run's
    language, so claims take only their rows."""
    issue = prep.project.issue
    return [value for value in store.pending_langs(issue.id)
            if issue.pick_language(value or None) in prep.rendered]


def shared_store(settings: Settings) -> bool:
    """Whether the tracking store is a PostgreSQL server that several senders may share."""
    return isinstance(settings.tracking.database, PostgresUrl)


def with_others(store: LeaseStore, outcome: SendOutcome) -> None:
    """The issue's counts, and what other live senders hold of them now (theirs to finish,
    not a rerun's): read one after the other while they work, so kept within the counts."""
    outcome.counts = store.counts(outcome.issue)
    pending, on_wire = store.leased_elsewhere(outcome.issue)
    outcome.elsewhere = min(pending, outcome.counts.get("pending", 0))
    outcome.elsewhere_on_wire = min(on_wire, outcome.counts.get("unknown", 0))
