"""``send`` on several sending processes: who runs where, and what the parent does after.

The mechanics (fork, pipes, signals) are ``shards``; the pipeline each process runs is
``sending._send_rows``; the pace they share is ``delivery/pace_shared.py``; docs/design.md
("Sending processes") says why and what holds.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

from mirage_mailer.delivery import DeliveryAborted, DeliveryStats, SharedState
from mirage_mailer.project.config import Settings
from mirage_mailer.services import shards
from mirage_mailer.services.journal import journal_roots, settle
from mirage_mailer.services.outbound import resumable
from mirage_mailer.services.shards import ShardDone
from mirage_mailer.store import Store, StoreError, StoreUnavailable, open_store
from mirage_mailer.util.errors import (
    DeliveryError,
    InputError,
    MirageError,
    Problem,
    display_path,
)

if TYPE_CHECKING:
    from mirage_mailer.services.preparation import Preparation
    from mirage_mailer.services.sending import (
        Progress,
        ProgressHook,
        SendOptions,
        SendOutcome,
        StopSource,
    )


MIN_PER_PROCESS = 200  # below this many messages a process, forking is not worth it
AUTO_PROCESSES = 2  # transport.processes: auto, where the machine has the cores
AUTO_MIN_RATE = 200.0  # msg/s: below a configured pace this low, auto keeps one process


def process_count(settings: Settings, options: SendOptions, to_send: int) -> int:
    """How many sending processes this send uses (``transport.processes``; ``auto``: two),
    at most one per core, per connection and per 200 messages. One where sharing would
    change what a user set: ``--limit`` (the plan's first N, in order), the Maildir outbox.
    ``auto`` also keeps one for a configured pace under 200 msg/s, which one process keeps
    up with; a number set in the config is taken with any rate (the pace is shared)."""
    t = settings.transport
    if (t.scheme not in ("smtp", "smtps") or options.limit is not None or t.relays
            or not shards.supported()):
        return 1
    wanted = t.processes
    if wanted is None:
        wanted = AUTO_PROCESSES if _configured_pace(settings, options) >= AUTO_MIN_RATE else 1
    total = options.concurrency or t.concurrency
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return max(1, min(wanted, total, cores, to_send // MIN_PER_PROCESS))


def _configured_pace(settings: Settings, options: SendOptions) -> float:
    """The strictest pace the user set, in msg/s (infinite: none)."""
    t = settings.transport
    per_second = options.rate if options.rate is not None else t.rate_per_second
    paces = [p for p in (per_second, t.rate_per_hour and t.rate_per_hour / 3600) if p]
    return min(paces, default=float("inf"))


def send_on_processes(prep: Preparation, options: SendOptions, store: Store, wanted: set[str],
                  to_send: int, outcome: SendOutcome, count: int,
                  progress: ProgressHook | None, stopper: StopSource | None) -> None:
    """``_send_rows`` in ``count`` forked processes, each on its share of the rows and the
    connections (``services/shards.py``), all on one pace (``SharedState``, made here before
    the fork); the parent sums up and settles what they left."""
    from mirage_mailer.services.sending import SendOutcome, _send_rows, database, run_loop

    project = prep.project
    settings = project.settings
    issue = project.issue
    total = options.concurrency or settings.transport.concurrency

    def body(index: int, channel: shards.Channel, child_stop: shards.ChildStop) -> ShardDone:
        mine = SendOutcome(issue.id, "send")
        done = ShardDone(index)

        def report(p: Progress) -> None:
            for line in p.notes[len(noted):]:  # said at once, by the parent
                channel.note(line)
                noted.append(line)
            channel.progress((p.sent, p.failed, p.deferred, p.unknown))

        noted: list[str] = []

        with open_store(database(project), state_dir=project.settings.state_dir) as own:
            try:
                _send_rows(prep, options, own, wanted, to_send, mine, report, child_stop,
                           shard=(index, count), concurrency=shards.share(total, count, index),
                           shared_pace=pace)
            except DeliveryAborted as exc:
                done.error = ("aborted", exc.problems)
                mine.stats = exc.stats
        t = mine.this_run
        done.counts = (t.sent, t.failed, t.deferred, t.unknown)
        done.per_language = dict(mine.per_language)
        done.stats = mine.stats
        done.stop_signal = child_stop.signal
        return done

    def on_progress() -> None:
        t = outcome.this_run
        t.sent, t.failed, t.deferred, t.unknown = (
            sum(s.counts[i] for s in started) for i in range(4))
        for shard in started:  # every process meets the same relay: each line once
            for line in shard.notes:
                if line not in t.notes:
                    t.notes.append(line)
        if progress:
            progress(t)

    if stopper is not None:  # children will send: a stop from now on is kept, not raised
        stopper.remember()
    try:
        pace = SharedState(per_hour=settings.transport.rate_per_hour)
    except OSError:  # no shared memory to be had (a file limit): one process, one pace
        _send_rows(prep, options, store, wanted, to_send, outcome, progress, stopper)
        return
    started: list[shards.Shard] = []
    try:
        shards.start(count, body, started)  # filled fork by fork
    except OSError as exc:  # a process or memory limit: those made leave unsent (``start``)
        shards.reap(started)
        pace.close()
        outcome.this_run.notes.append(
            f"could not start sending process {len(started) + 1} of {count} "
            f"({exc.strerror or exc}): sending in one process")
        _send_rows(prep, options, store, wanted, to_send, outcome, progress, stopper)
        return
    try:
        shards.run(started, stopper, on_progress, lambda main: run_loop(settings, main))
    finally:
        shards.reap(started)
        pace.close()
        settle(store, journal_roots(settings.state_dir, settings.tracking.database),
               issue.id)  # the journal of a process that died
        store.recover_inflight(issue.id)
    outcome.stats = merged_stats = shards.merged_stats(started)
    for shard in started:
        if shard.done is not None:
            outcome.per_language.update(shard.done.per_language)
    if stopper is not None and stopper.signal is not None:
        outcome.stop_signal = stopper.signal
    else:
        stopped = [s.done.stop_signal for s in started if s.done and s.done.stop_signal]
        outcome.stop_signal = signal.Signals(stopped[0]) if stopped else None
    _raise_shard_error(settings, started, merged_stats, store.counts(issue.id))


def _raise_shard_error(settings: Settings, started: list[shards.Shard], stats: DeliveryStats,
                       counts: dict[str, int]) -> None:
    """A process that died, or one that stopped the run, as the one-process send says it."""
    for shard in started:
        if (how := shard.died) is not None:
            raise resumable(settings, DeliveryAborted(Problem(
                display_path(settings.path), None,
                f"sending process {shard.index + 1} of {len(started)} (pid {shard.pid}) was "
                f"{how}; what it had on the wire is now unknown"), stats), counts)
    errors = [s.done.error for s in started if s.done is not None and s.done.error]
    for kind, problems in errors:
        if kind == "aborted":
            raise resumable(settings, DeliveryAborted(problems[0], stats), counts)
    for kind, problems in errors:
        raise _AGAIN.get(kind, DeliveryError)(problems)


# a sending process's error as the parent raises it (``shards.error_kind``): same exit code
_AGAIN: dict[str, type[MirageError]] = {
    "input": InputError, "store": StoreError, "unavailable": StoreUnavailable}
