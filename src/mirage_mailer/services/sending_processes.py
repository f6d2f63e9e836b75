"""``send`` on several sending processes: who runs where, and what the parent does after.

The mechanics (fork, pipes, signals) are ``shards``; the pipeline each process runs is
``sending._send_rows``; docs/design.md ("Sending processes") says why and what holds.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

from mirage_mailer.delivery import DeliveryAborted, DeliveryStats
from mirage_mailer.project.config import Settings
from mirage_mailer.services import shards
from mirage_mailer.services.journal import settle
from mirage_mailer.services.outbound import resumable
from mirage_mailer.services.shards import ShardDone
from mirage_mailer.store import Store, StoreError, open_store
from mirage_mailer.util.errors import DeliveryError, InputError, Problem, display_path

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


def process_count(settings: Settings, options: SendOptions, to_send: int) -> int:
    """How many sending processes this send uses (``transport.processes``, at most one per
    core and per connection). One where sharing would change what a user set: a rate (one
    pacer must hold it), ``--limit`` (the plan's first N, in order), the Maildir outbox."""
    t = settings.transport
    if (t.scheme not in ("smtp", "smtps") or options.limit is not None
            or options.rate is not None or t.rate_per_second is not None
            or t.rate_per_hour is not None or not shards.supported()):
        return 1
    total = options.concurrency or t.concurrency
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return max(1, min(t.processes, total, cores, to_send // MIN_PER_PROCESS))


def send_on_processes(prep: Preparation, options: SendOptions, store: Store, wanted: set[str],
                  to_send: int, outcome: SendOutcome, count: int,
                  progress: ProgressHook | None, stopper: StopSource | None) -> None:
    """``_send_rows`` in ``count`` forked processes, each on its share of the rows and the
    connections (``services/shards.py``); the parent sums up and settles what they left."""
    from mirage_mailer.services.sending import SendOutcome, _send_rows, database, run_loop

    project = prep.project
    settings = project.settings
    issue = project.issue
    total = options.concurrency or settings.transport.concurrency

    def body(index: int, channel: shards.Channel, child_stop: shards.ChildStop) -> ShardDone:
        mine = SendOutcome(issue.id, "send")
        done = ShardDone(index)

        def report(p: Progress) -> None:
            channel.progress((p.sent, p.failed, p.deferred, p.unknown))

        with open_store(database(project)) as own:
            try:
                _send_rows(prep, options, own, wanted, to_send, mine, report, child_stop,
                           shard=(index, count), concurrency=shards.share(total, count, index),
                           on_pushback=channel.pushback)
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
        if progress:
            progress(t)

    started: list[shards.Shard] = []
    try:
        started += shards.start(count, body)
        shards.run(started, stopper, on_progress, lambda main: run_loop(settings, main))
    finally:
        shards.reap(started)
        settle(store, settings.state_dir, issue.id)  # the journal of a process that died
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
    if any(s.pushback for s in started) and outcome.stop_signal is None:
        # the relay pushed back (a 4xx, a dropped link): the processes stopped, and the
        # rest goes out from here on one pacer, which learns the relay's pace as before
        _send_rows(prep, options, store, wanted, to_send, outcome, progress, stopper)
        if outcome.stats is not None:
            outcome.stats = shards.add_stats(merged_stats, outcome.stats)


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
        if kind == "input":
            raise InputError(problems)
        if kind == "store":
            raise StoreError(problems)
        raise DeliveryError(problems)
