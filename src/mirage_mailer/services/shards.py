"""A send on several cores: the pending rows split between forked sending processes.

Why: one Python process carries the wire, the message building, the claims and the store on
one core, and the wire is only a third of that (docs/design.md, "Performance notes"); on a
machine with a second core, a second process doubles what the pipeline can push. Each
process runs the whole single-process pipeline (``sending``) on its share of the pending rows
(row id modulo the number of processes) with its own store connection, its own claim journal
(``journal_path(..., shard=k)``) and its share of the connections, so the crash contract
holds for each and in sum: at most ``concurrency`` recipients ``unknown``. They pace as one:
the parent makes the pacer's shared memory before it forks (``delivery/pace_shared.py``).

The parent only watches: it forwards a stop signal, sums the progress the processes report
through a pipe, and gathers their closing words. A process that dies (SIGKILL, the OOM
killer) leaves its journal, which the parent replays once its siblings have finished: the
run then ends with exit 3 and a rerun resumes. The kernel kills the processes when the
parent dies (``PR_SET_PDEATHSIG``), so no orphan keeps sending while a rerun starts; the
send lock (``flock``) is shared with them and held until the last one has exited.

Linux only (fork, prctl); elsewhere a send stays in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mirage_mailer.delivery import DeliveryAborted, DeliveryStats
from mirage_mailer.util.errors import Problem

T = TypeVar("T")
_HEADER = struct.Struct("!I")
PROGRESS_EVERY = 0.1  # seconds between a process's progress reports
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
GO = b"g"  # the parent's word to each child once every fork has succeeded (``start``)


@dataclass
class ShardDone:
    """A sending process's closing words (pickled through its pipe)."""

    shard: int
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)  # sent, failed, deferred, unknown
    per_language: dict[str, int] = field(default_factory=dict)
    stats: DeliveryStats | None = None
    stop_signal: int | None = None
    # why it ended early: ("aborted" | "input" | "delivery" | "store" | "unavailable" |
    # "crash", problems): ``error_kind``
    error: tuple[str, list[Problem]] | None = None


@dataclass
class Shard:
    """The parent's view of one sending process."""

    index: int
    pid: int
    fd: int
    buffer: bytearray = field(default_factory=bytearray)
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)
    notes: list[str] = field(default_factory=list)  # the child's warning lines, in order
    done: ShardDone | None = None
    status: int | None = None  # os.waitpid's status once reaped

    @property
    def died(self) -> str | None:
        """How it ended without its closing words ("killed by SIGKILL"), or None."""
        if self.done is not None or self.status is None:
            return None
        if os.WIFSIGNALED(self.status):
            return f"killed by {signal.Signals(os.WTERMSIG(self.status)).name}"
        return f"exited with code {os.waitstatus_to_exitcode(self.status)}"


def supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class Channel:
    """The child's end of its pipe: progress now and then, the closing words once."""

    def __init__(self, fd: int, shard: int) -> None:
        self.fd = fd
        self.shard = shard
        self.last = 0.0

    def _send(self, message: object) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        frame = _HEADER.pack(len(data)) + data
        while frame:
            written = os.write(self.fd, frame)
            frame = frame[written:]

    def progress(self, counts: tuple[int, int, int, int], *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY:
            self.last = now
            self._send(("p", counts))

    def note(self, line: str) -> None:
        """A warning line for the officer (a relay that offers AUTH to a run without a login),
        said at once by the parent."""
        self._send(("n", line))

    def finish(self, done: ShardDone) -> None:
        self._send(("d", done))


class ChildStop:
    """The ``StopSource`` of a sending process: SIGINT or SIGTERM (forwarded by the parent,
    or Ctrl-C on the terminal's whole process group) stops it as it stops a one-process send.
    A signal that comes before its event loop runs is remembered, not lost."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self._stop: asyncio.Event | None = None
        self._early_stop = False
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._early)

    def _early(self, signum: int, _frame: object) -> None:
        self._early_stop = True
        self._stopped_by(signal.Signals(signum))

    def _stopped_by(self, sig: signal.Signals) -> None:
        if self.signal is None:
            self.signal = sig
        if self._stop is not None:
            self._stop.set()

    def remember(self) -> None:
        """Already so from the start (``_early``): a process forks no sending processes."""

    def arm(self, stop: asyncio.Event) -> Callable[[], None]:
        loop = asyncio.get_running_loop()
        self._stop = stop
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._stopped_by, sig)
        if self._early_stop:
            stop.set()

        def disarm() -> None:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
                signal.signal(sig, self._early)  # not the default: that would kill us
            self._stop = None
        return disarm


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGKILL when the parent dies (then at most this process's messages
    on the wire are ``unknown``); leave at once if it already has."""
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


Body = Callable[[int, Channel, ChildStop], ShardDone]


def _child(index: int, fd: int, go: int, body: Body, parent: int,
           mask: set[int | signal.Signals]) -> None:
    """The forked process: run ``body`` and report; never returns, never runs the parent's
    exit handlers (``os._exit``), never touches what it inherited besides its pipes. It is
    born with the stop signals blocked (``start``) and takes them (``mask``: the parent's
    own) once its handlers are in: one that came meanwhile stops it then, not lost to, or
    raised by, the parent's handlers it inherited. It sends nothing before the parent says
    go (``go``'s byte): when a later fork fails, the pipe closes unread and it leaves."""
    code = 0
    channel = Channel(fd, index)
    try:
        stopper = ChildStop()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _die_with_parent(parent)
        if os.read(go, 1) != GO:  # no go: the parent sends alone, in one process
            return
        os.close(go)
        channel.finish(body(index, channel, stopper))
    except BaseException as exc:  # every failure goes to the parent as words, not a trace
        code = 70
        from mirage_mailer.util.errors import MirageError
        from mirage_mailer.util.statefault import is_state_fault, state_write_error

        if isinstance(exc, OSError) and is_state_fault(exc):  # a full disk is no crash
            exc = state_write_error(exc)
        if isinstance(exc, MirageError):
            kind = error_kind(exc)
            problems = exc.problems
        else:
            kind = "crash"
            problems = [Problem("mirage-mailer", None,
                                f"sending process {index} failed: {type(exc).__name__}: {exc}")]
        with contextlib.suppress(Exception):
            channel.finish(ShardDone(index, error=(kind, problems)))
    finally:
        os._exit(code)


def error_kind(exc: BaseException) -> str:
    """How the parent raises a process's error again, with the same exit code: a store
    locked or out of room ("unavailable", exit 3) is no unreadable store ("store", exit 2),
    which a class name alone did not tell apart (a locked store ended a two-process send with
    exit 2, "invalid input", after hundreds of messages had gone)."""
    from mirage_mailer.store.errors import StoreError, StoreUnavailable
    from mirage_mailer.util.errors import ExitCode, MirageError

    if isinstance(exc, DeliveryAborted):
        return "aborted"
    if isinstance(exc, StoreUnavailable):
        return "unavailable"
    if isinstance(exc, StoreError):
        return "store"
    if isinstance(exc, MirageError) and exc.exit_code == ExitCode.INVALID_INPUT:
        return "input"
    return "delivery"


def start(count: int, body: Body, shards: list[Shard] | None = None) -> list[Shard]:
    """Fork ``count`` sending processes running ``body(index, channel, stopper)``; each is
    added to ``shards`` as soon as it exists, so a fork that fails leaves the caller the
    ones to reap. None of them sends before every fork has succeeded: each waits for a go,
    since each sends only its share of the rows (row id modulo ``count``). A fork that
    fails (a process or memory limit) raises its ``OSError`` and the ones made leave
    without sending, so the caller can send in one process. The stop signals are blocked
    in this thread across the forks, so that a child gets its own handlers before one can
    reach it (``_child``); the parent's handler only remembers by then
    (``SignalStop.remember``) and runs once they are unblocked."""
    parent = os.getpid()
    for stream in (sys.stdout, sys.stderr):  # nothing buffered may be written twice
        with contextlib.suppress(Exception):
            stream.flush()
    shards = [] if shards is None else shards
    go_read, go_write = os.pipe()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for index in range(count):
            read_fd, write_fd = os.pipe()
            try:
                pid = os.fork()
            except OSError:
                os.close(read_fd)
                os.close(write_fd)
                raise
            if pid == 0:  # pragma: no cover - the child; its coverage is not collected
                os.close(read_fd)
                os.close(go_write)
                for other in shards:
                    os.close(other.fd)
                _child(index, write_fd, go_read, body, parent, mask)
            os.close(write_fd)
            shards.append(Shard(index, pid, read_fd))
        os.write(go_write, GO * count)  # a few bytes: a pipe takes them without blocking
    finally:
        os.close(go_write)  # unwritten (a fork failed): the children read the end, and leave
        os.close(go_read)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return shards


async def watch(shards: list[Shard], stopper: Any, on_progress: Callable[[], None]) -> None:
    """Until every process has closed its pipe: sum progress, forward a stop signal."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    disarm = stopper.arm(stop) if stopper is not None else None
    open_fds = {s.fd for s in shards}
    all_closed = asyncio.Event()

    def readable(shard: Shard) -> None:
        try:
            data = os.read(shard.fd, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            loop.remove_reader(shard.fd)
            open_fds.discard(shard.fd)
            if not open_fds:
                all_closed.set()
            return
        shard.buffer += data
        _frames(shard, on_progress)

    async def forward() -> None:
        await stop.wait()
        sig = getattr(stopper, "signal", None) or signal.SIGTERM
        for shard in shards:
            if shard.status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(shard.pid, sig)

    for shard in shards:
        os.set_blocking(shard.fd, False)
        loop.add_reader(shard.fd, readable, shard)
    forwarder = loop.create_task(forward())
    try:
        await all_closed.wait()
    finally:
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarder
        for shard in shards:
            if shard.fd in open_fds:
                loop.remove_reader(shard.fd)
        if disarm is not None:
            disarm()


def _frames(shard: Shard, on_progress: Callable[[], None]) -> None:
    buffer = shard.buffer
    while len(buffer) >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer)
        if len(buffer) < _HEADER.size + size:
            return
        kind, payload = pickle.loads(bytes(buffer[_HEADER.size:_HEADER.size + size]))
        del buffer[:_HEADER.size + size]
        if kind == "p":
            shard.counts = payload
            on_progress()
        elif kind == "n":
            shard.notes.append(payload)
            on_progress()
        elif kind == "d":
            shard.done = payload
            shard.counts = payload.counts
            on_progress()


def reap(shards: list[Shard]) -> None:
    """Wait for every process; one still running (the parent failed) is stopped first."""
    for shard in shards:
        if shard.status is not None:
            continue
        pid, status = os.waitpid(shard.pid, os.WNOHANG)
        if pid == 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(shard.pid, signal.SIGTERM)  # finish what is on the wire, then stop
            pid, status = os.waitpid(shard.pid, 0)
        shard.status = status
        with contextlib.suppress(OSError):
            os.close(shard.fd)


def run(shards: list[Shard], stopper: Any, on_progress: Callable[[], None],
        runner: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    """Watch the processes on the send's event loop (``runner``), then reap them all."""
    try:
        runner(watch(shards, stopper, on_progress))
    finally:
        reap(shards)


def merged_stats(shards: list[Shard]) -> DeliveryStats:
    """One run's figures from its processes': counts add up, the run lasts as its longest,
    and the pace (learnt and cut once, in shared memory) is what the last one saw."""
    parts = [s.done.stats for s in shards if s.done is not None and s.done.stats is not None]
    last = max(parts, key=lambda p: p.elapsed, default=None)
    return DeliveryStats(
        sent=sum(p.sent for p in parts), failed=sum(p.failed for p in parts),
        deferred_final=sum(p.deferred_final for p in parts),
        unknown=sum(p.unknown for p in parts), attempts=sum(p.attempts for p in parts),
        connections=sum(p.connections for p in parts),
        throttled=sum(p.throttled for p in parts),
        reoffered=sum(p.reoffered for p in parts),
        rate_cuts=max((p.rate_cuts for p in parts), default=0),
        elapsed=last.elapsed if last is not None else 0.0,
        stopped=any(p.stopped for p in parts),
        paced_rate=last.paced_rate if last is not None else None)


def share(total: int, count: int, index: int) -> int:
    """Process ``index``'s part of ``total`` connections (4 over 2: 2 and 2; 3: 2 and 1)."""
    return total // count + (1 if index < total % count else 0)
