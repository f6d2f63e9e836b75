"""Send throughput, memory and throttle pacing of the real ``send`` pipeline over local SMTP.

Each measured run is ``python -m mirage_mailer send ISSUE --yes`` on a fresh copy of the
sample project (``init_project``) with a generated list of N recipients, sending to an SMTP
sink on 127.0.0.1 in a separate process (Postfix's ``smtp-sink`` when installed, otherwise
``bench/sink_process.py``): with two cores, a sink inside the sender would distort the figures.
The whole pipeline is timed (store, personalisation, pool), and compared with a raw aiosmtplib
loop over the same number of connections, so the ratio does not depend on the machine. A second
loop sends the same prebuilt message through send's own transmission code (``Connection.send``,
whose DATA skips aiosmtplib's regex normalisation): the gap to it is what personalisation, the
store and the pool cost, which the first ratio alone would hide.

    python bench/send_throughput.py [--recipients 10000] [--concurrency 4]
    python bench/send_throughput.py --memory        # N=10,000 vs N=100,000: peak RSS ratio
    python bench/send_throughput.py --throttle 200  # relay limited to R msg/s: pacing, no loss
    python bench/send_throughput.py --pacing        # token buckets at 5, 50, 500 msg/s, burst 10
    python bench/send_throughput.py --greylist      # 0 %, 3 %, 10 % of recipients 451 once
    python bench/send_throughput.py --rtt 20        # a relay 20 ms away: messages a round trip
    python bench/send_throughput.py --recipients 30000 --event-loop uvloop  # issue 13's figure
    python bench/send_throughput.py --processes 2   # also: 2 processes vs 1, same run
    python bench/send_throughput.py --pacing --processes 2  # paced: 1 vs 2 processes

``--rounds K`` alternates pipeline and raw runs and compares the best of each (a shared
machine only ever slows a run down); ``--profile FILE`` runs the send under cProfile.
Exit 1 when mail went missing or a send failed; a missed speed target is only reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import aiosmtplib
import yaml

from mirage_mailer.compose.message import MessageFactory, Personal
from mirage_mailer.delivery.classify import Verdict
from mirage_mailer.delivery.connection import Connection, ConnectSettings
from mirage_mailer.project.scaffold import init_project
from mirage_mailer.services.loader import open_project, render
from mirage_mailer.util.tokens import Signer

ISSUE = "issues/2021-10-partners-meeting"
HOST = "127.0.0.1"
SMTP_SINK = Path("/usr/sbin/smtp-sink")
SINK_SCRIPT = Path(__file__).resolve().parent / "sink_process.py"
PROXY_SCRIPT = Path(__file__).resolve().parent / "latency_proxy.py"
SUMMARY = re.compile(r"this run: sent (\d+), failed (\d+) in ([\d.]+)s, (\d+) msg/s")
TARGET_RAW_RATIO = 0.8
TARGET_WALL_SAME = 0.8  # issue 13: whole send, wall clock, vs the same-path loop
TARGET_WALL_RAW = 1.5  # issue 13: whole send, wall clock, vs the raw aiosmtplib loop
TARGET_RSS_RATIO = 1.3
TARGET_THROTTLE_RATIO = 0.9
PACING_RATES = (5.0, 50.0, 500.0)
PACING_BURST = 10
GREYLIST_FRACTIONS = (0.0, 0.03, 0.10)
TARGET_GREYLIST_RATIO = 0.8
PROCESSES: int | str | None = None  # transport.processes of the measured sends (--processes)


# ---------------------------------------------------------------------------------- sinks


@dataclass
class SinkReport:
    """What the sink accepted; ``recipients`` only where the sink can tell (aiosmtpd)."""

    kind: str
    accepted: int
    recipients: list[str] | None = None
    connections: int | None = None
    refused: int = 0
    disconnects: int = 0
    greylisted: int = 0


def free_port() -> int:
    """A port the OS just handed out; smtp-sink wants a number, not port 0."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(port: int, proc: subprocess.Popen[Any], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Sink:
    """An SMTP sink in a child process; ``with Sink(...) as sink: sink.url``; then ``report``."""

    def __init__(self, kind: str, workdir: Path, throttle: float | None = None, *,
                 rules: tuple[str, ...] = (), rules_label: str = "") -> None:
        if (throttle is not None or rules) and kind != "aiosmtpd":
            raise ValueError("only the aiosmtpd sink can throttle")
        self.kind = kind
        self.workdir = workdir
        self.throttle = throttle
        self.rules = rules  # more sink_process.py options (--token-bucket R, --greylist F)
        self.rules_label = rules_label
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.out: IO[bytes] | None = None
        self.report: SinkReport | None = None

    @property
    def url(self) -> str:
        return f"smtp://{HOST}:{self.port}"

    @property
    def label(self) -> str:
        what = "Postfix smtp-sink" if self.kind == "smtp-sink" else "aiosmtpd SmtpSink"
        if self.throttle is not None:
            what += f" with Throttle({self.throttle:g})"
        if self.rules_label:
            what += f" with {self.rules_label}"
        pid = self.proc.pid if self.proc else "?"
        return f"{what} at {HOST}:{self.port}, separate process {pid}"

    def __enter__(self) -> Sink:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.kind == "smtp-sink":
            self._start_smtp_sink()
        else:
            self._start_aiosmtpd()
        return self

    def _start_smtp_sink(self) -> None:
        for _ in range(5):  # the port may be taken between free_port() and bind()
            self.port = free_port()
            command = [str(SMTP_SINK), "-c"]
            if os.geteuid() == 0:
                command += ["-u", "nobody"]  # smtp-sink refuses to keep root privileges
            command += [f"{HOST}:{self.port}", "256"]
            self.out = (self.workdir / "smtp-sink.out").open("wb")
            self.proc = subprocess.Popen(command, stdout=self.out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            if wait_listening(self.port, self.proc):
                return
            self._terminate()
        raise RuntimeError("smtp-sink did not start; see " + str(self.workdir))

    def _start_aiosmtpd(self) -> None:
        command = [sys.executable, str(SINK_SCRIPT), "--report", str(self._report_path)]
        if self.throttle is not None:
            command += ["--throttle", str(self.throttle)]
        command += self.rules
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("port "):
            self._terminate()
            raise RuntimeError(f"sink_process.py did not start (said {line!r})")
        self.port = int(line.split()[1])

    @property
    def _report_path(self) -> Path:
        return self.workdir / "sink-report.json"

    def _terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.out is not None:
            self.out.close()
            self.out = None

    def stop(self) -> SinkReport:
        """Stop the sink and read what it accepted (smtp-sink's -c counters, or the JSON)."""
        if self.report is not None:
            return self.report
        assert self.proc is not None
        if self.kind == "aiosmtpd" and self.proc.stdin is not None:
            self.proc.stdin.close()  # the sink's cue to write its report and exit
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
        self._terminate()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.kind == "smtp-sink":
            counters = (self.workdir / "smtp-sink.out").read_text(errors="replace")
            mesg = re.findall(r"mesg=(\d+)", counters)
            sess = re.findall(r"sess=(\d+)", counters)
            probes = 1  # wait_listening() connected once; smtp-sink counts it as a session
            self.report = SinkReport(self.kind, int(mesg[-1]) if mesg else 0,
                                     connections=int(sess[-1]) - probes if sess else None)
        else:
            data = json.loads(self._report_path.read_text(encoding="utf-8"))
            self.report = SinkReport(self.kind, data["accepted"], data["recipients"],
                                     data["connections"], data["refused"], data["disconnects"],
                                     data.get("greylisted", 0))
        return self.report

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.report is None:
            self._terminate()


# -------------------------------------------------------------------------------- project


def address(n: int) -> str:
    return f"reader{n:06d}@example.org"


def make_project(root: Path, recipients: int, concurrency: int,
                 event_loop: str = "asyncio", processes: int | str | None = None) -> Path:
    """The sample project with a list of N readers (every 4th in French, like real lists)."""
    init_project(root)
    with (root / "lists" / "subscribers.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "name", "lang", "organisation"])
        for n in range(recipients):
            writer.writerow([address(n), f"Réader {n}", "fr" if n % 4 == 3 else "en",
                             f"Organisation {n % 97}"])
    config = root / "mirage.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["transport"].update(starttls="never", rate_per_second=None, rate_per_hour=None,
                             concurrency=concurrency)
    if event_loop != "asyncio":
        data["transport"]["event_loop"] = event_loop
    processes = PROCESSES if processes is None else processes
    if processes is not None:
        data["transport"]["processes"] = processes
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                      encoding="utf-8")
    return root


def point_at(root: Path, url: str) -> None:
    config = root / "mirage.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["transport"]["url"] = url
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                      encoding="utf-8")


def sample_message(root: Path) -> tuple[str, bytes]:
    """(envelope sender, one English message) built as the pipeline builds it: same size."""
    project = open_project(root / "mirage.yaml", root / ISSUE)
    rendered = render(project, {"organisation"})
    factory = MessageFactory(project.settings, project.issue.id, rendered, Signer(b"bench"))
    person = Personal(address(0), "Réader 0", "subscribers", {"organisation": "Organisation 0"})
    return project.settings.sender.return_path, factory.build(person, "en")


# ----------------------------------------------------------------------------------- send


@dataclass
class SendRun:
    command: str
    exit_code: int
    wall: float  # seconds from spawn to exit, start-up and rendering included
    peak_rss_kib: int
    summary: str
    sent: int = 0
    failed: int = 0
    cli_elapsed: float = 0.0
    cli_rate: float = 0.0
    stderr_tail: list[str] = field(default_factory=list)
    cpu: float = 0.0  # user + system seconds of the send and its sending processes
    processes: int = 1  # the most sending processes seen at once (the parent alone: 1)

    @property
    def wall_rate(self) -> float:
        return self.sent / self.wall if self.wall > 0 else 0.0


def clean_env() -> dict[str, str]:
    """The caller's environment minus SMTP credentials, which would make send try AUTH."""
    env = dict(os.environ)
    for name in ("MIRAGE_SMTP_USER", "MIRAGE_SMTP_PASSWORD"):
        env.pop(name, None)
    return env


def children(pid: int) -> int:
    """How many processes ``pid`` has forked and not reaped (its sending processes)."""
    try:
        return len(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return 0


def wait_child(proc: subprocess.Popen[bytes], timeout: float,
               seen: list[int] | None = None) -> tuple[int, int, float]:
    """(exit code, peak RSS in KiB, CPU seconds) of this child and the processes it waited
    for (its sending processes): wait4 gives their rusage, not ours. ``seen`` gets the most
    sending processes the child had at once, looked at every 50 ms."""
    deadline = time.monotonic() + timeout
    looked = 0.0
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if seen is not None and time.monotonic() - looked >= 0.05:
                looked = time.monotonic()
                seen[0] = max(seen[0], children(proc.pid))
            if time.monotonic() > deadline:
                print(f"  send still running after {timeout:.0f}s: killed")
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
    except BaseException:  # interrupted ourselves: leave no sender behind
        proc.kill()
        os.wait4(proc.pid, 0)
        proc.returncode = -9
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def run_send(root: Path, timeout: float, profile: Path | None = None) -> SendRun:
    args = ["-m", "mirage_mailer", "send", ISSUE, "--yes"]
    if profile is not None:
        args = ["-m", "cProfile", "-o", str(profile), *args]
    command = [sys.executable, *args]
    shown = f"cd {root} && {shlex.join(['python', *args])}"
    out_path, err_path = root.parent / f"{root.name}.stdout", root.parent / f"{root.name}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=root, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=clean_env())
        seen = [0]
        code, rss, cpu = wait_child(proc, timeout, seen)
        wall = time.perf_counter() - started
    lines = out_path.read_text(encoding="utf-8", errors="replace").splitlines()
    errors = err_path.read_text(encoding="utf-8", errors="replace").splitlines()
    run = SendRun(shown, code, wall, rss, lines[-1] if lines else "(no output)",
                  stderr_tail=[e for e in errors if "warning:" not in e][-5:], cpu=cpu,
                  processes=max(1, seen[0]))
    if match := SUMMARY.search(run.summary):
        run.sent, run.failed = int(match[1]), int(match[2])
        run.cli_elapsed, run.cli_rate = float(match[3]), float(match[4])
    return run


def report_json(root: Path) -> dict[str, Any]:
    args = ["-m", "mirage_mailer", "report", ISSUE, "--format", "json"]
    done = subprocess.run([sys.executable, *args], cwd=root, capture_output=True, timeout=300,
                          check=True, env=clean_env())
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def describe(run: SendRun, recipients: int, concurrency: int) -> None:
    print(f"$ {run.command}")
    print(f"  -> exit {run.exit_code}: {run.summary}")
    for line in run.stderr_tail:
        print(f"  stderr: {line}")
    print(f"  pipeline, N={recipients:,} C={concurrency}: CLI figure {run.cli_rate:.0f} msg/s "
          f"({run.sent:,} sent in {run.cli_elapsed:.1f}s of delivery); wall incl. start-up "
          f"{run.wall:.2f}s = {run.wall_rate:.0f} msg/s; "
          f"peak RSS {run.peak_rss_kib / 1024:.1f} MiB; CPU {run.cpu:.2f}s = "
          f"{run.cpu / max(1, run.sent) * 1e6:.0f} µs a message; "
          f"{run.processes} sending process{'es' if run.processes > 1 else ''}")


def send_once(kind: str, work: Path, name: str, recipients: int, concurrency: int, *,
              throttle: float | None = None, rules: tuple[str, ...] = (), rules_label: str = "",
              profile: Path | None = None, event_loop: str = "asyncio",
              processes: int | str | None = None) -> tuple[SendRun, SinkReport, Path]:
    """A fresh project and a fresh sink process for one measured send (``processes``:
    its transport.processes, else ``--processes``, else the project's default)."""
    root = make_project(work / name, recipients, concurrency, event_loop, processes)
    with Sink(kind, work / f"{name}-sink", throttle, rules=rules,
              rules_label=rules_label) as sink:
        point_at(root, sink.url)
        print(f"sink: {sink.label}")
        slowest = min(20.0, throttle or 20.0)  # msg/s, for a generous but finite deadline
        run = run_send(root, timeout=120 + 3 * recipients / slowest, profile=profile)
        got = sink.stop()
    return run, got, root


# ------------------------------------------------------------------------------- raw loop


async def raw_send(port: int, sender: str, message: bytes, recipients: int,
                   concurrency: int) -> float:
    """The floor we compare against: C long-lived aiosmtplib connections, sendmail per message."""
    todo = iter(range(recipients))

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(hostname=HOST, port=port, start_tls=False, timeout=30)
        await smtp.connect()
        try:
            for n in todo:  # shared: each message goes out once, on whichever link is free
                await smtp.sendmail(sender, [address(n)], message)
        finally:
            await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def same_path_send(port: int, sender: str, message: bytes, recipients: int,
                         concurrency: int) -> float:
    """The raw loop again, but over send's own transmission code (``Connection.send``, which
    writes DATA in wire format, and the next message's commands with each body, as the
    pool chains them): what is left between it and the pipeline is the cost of
    personalisation, the tracking store and the pool."""
    settings = ConnectSettings(host=HOST, port=port, implicit_tls=False, starttls="never",
                               credentials=None, allow_plaintext_auth=False, timeout=30,
                               tls_context=None, local_hostname="localhost")
    todo = iter(range(recipients))

    async def worker() -> None:
        conn = Connection(settings)
        await conn.open()
        following: list[int] = []

        def ahead() -> bytes:
            n = next(todo, None)
            if n is None:
                return b""
            following.append(n)
            return conn.ahead_commands(sender, address(n), message)

        try:
            n = next(todo, None)
            while n is not None:
                following.clear()
                attempt = await conn.send(sender, address(n), message, ahead=ahead)
                if attempt.verdict is not Verdict.SENT or (following and not conn.chained):
                    raise RuntimeError(f"same-path loop: {attempt}")
                n = following[0] if following else next(todo, None)
        finally:
            await conn.close(5)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def run_on(event_loop: str, main: Any) -> Any:
    """``asyncio.run`` on asyncio's own loop or on uvloop's (``transport.event_loop``)."""
    if event_loop == "asyncio":
        return asyncio.run(main)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def raw_once(kind: str, work: Path, root: Path, recipients: int, concurrency: int, *,
             same_path: bool = False,
             event_loop: str = "asyncio") -> tuple[float, int, SinkReport]:
    sender, message = sample_message(root)
    loop = same_path_send if same_path else raw_send
    with Sink(kind, work / ("same-path-sink" if same_path else "raw-sink")) as sink:
        print(f"sink: {sink.label}")
        cpu = time.process_time()
        elapsed = run_on(event_loop, loop(sink.port, sender, message, recipients, concurrency))
        cpu = time.process_time() - cpu
        got = sink.stop()
    print(f"  CPU of the loop (this process): {cpu:.2f}s = {cpu / recipients * 1e6:.0f} µs a "
          "message")
    return elapsed, len(message), got


def baseline_round(kind: str, work: Path, root: Path, recipients: int, concurrency: int, *,
                   same_path: bool, event_loop: str = "asyncio") -> tuple[float, bool]:
    """One baseline loop on a fresh sink: (msg/s, whether the sink accepted every message)."""
    elapsed, size, got = raw_once(kind, work, root, recipients, concurrency, same_path=same_path,
                                  event_loop=event_loop)
    rate = recipients / elapsed
    if same_path:
        print(f"$ same-path loop (in this process, {event_loop} event loop): the same prebuilt "
              f"message through mirage's Connection.send, {concurrency} connection(s)")
    else:
        print(f"$ raw aiosmtplib loop (in this process, {event_loop} event loop): "
              f"{recipients:,} x {size / 1024:.1f} KiB prebuilt message, {concurrency} "
              "connection(s), sendmail per message")
    print(f"  {'same path' if same_path else 'raw'}: {elapsed:.2f}s = {rate:.0f} msg/s; "
          f"sink accepted {got.accepted:,}")
    return rate, got.accepted == recipients


# ---------------------------------------------------------------------------------- modes


def default_mode(kind: str, work: Path, recipients: int, concurrency: int, rounds: int,
                 profile: Path | None, event_loop: str = "asyncio") -> bool:
    """Pipeline and raw loop alternate ``rounds`` times; the best of each is compared.

    Best-of, because on a shared two-core machine any other work only ever slows a run down.
    Unless ``--processes 1``, each round also sends in one process, so the sending processes
    (``--processes``, else the project's default) are compared with one in the same run.
    """
    print(f"== throughput: pipeline vs raw aiosmtplib, N={recipients:,}, C={concurrency}, "
          f"{rounds} round(s); send and the same-path loop on the {event_loop} event loop, "
          "the raw loop on asyncio's")
    if kind == "aiosmtpd":
        print("note: an aiosmtpd sink tops out at a few hundred msg/s, so both sides wait on it "
              "and the ratio flatters the pipeline; install postfix for smtp-sink")
    alone = PROCESSES not in (1, "1")
    runs: list[SendRun] = []
    singles: list[SendRun] = []
    raw_rates: list[float] = []
    same_rates: list[float] = []
    ok = True
    for n in range(1, rounds + 1):
        variants: list[tuple[str, int | str | None, list[SendRun]]] = [
            (f"pipeline-{n}", None, runs)]
        if alone:
            variants.append((f"one-process-{n}", 1, singles))
        for name, processes, kept in variants:
            run, got, root = send_once(kind, work, name, recipients, concurrency,
                                       profile=profile, event_loop=event_loop,
                                       processes=processes)
            describe(run, recipients, concurrency)
            print(f"  sink accepted {got.accepted:,} message(s) on {got.connections} "
                  "connection(s)")
            ok = ok and run.exit_code == 0 and got.accepted == run.sent == recipients
            kept.append(run)

        for same_path, rates in ((False, raw_rates), (True, same_rates)):
            rate, accepted_all = baseline_round(
                kind, work / f"baseline-{n}", root, recipients, concurrency, same_path=same_path,
                event_loop=event_loop if same_path else "asyncio")
            rates.append(rate)
            ok = ok and accepted_all
    best = max(runs, key=lambda r: r.cli_rate)
    raw_rate = max(raw_rates)
    ratio = best.cli_rate / raw_rate
    wall_ratio = max(r.wall_rate for r in runs) / raw_rate
    verdict = "met" if ratio >= TARGET_RAW_RATIO else (
        f"MISSED by {TARGET_RAW_RATIO - ratio:.2f} ({(1 - ratio / TARGET_RAW_RATIO):.0%})")
    print(f"best of {rounds}: pipeline {best.cli_rate:.0f} msg/s (CLI), "
          f"{max(r.wall_rate for r in runs):.0f} msg/s (wall); raw {raw_rate:.0f} msg/s; "
          f"{max(r.processes for r in runs)} sending process(es)")
    print(f"ratio pipeline/raw: {ratio:.2f} on the CLI's delivery figure, {wall_ratio:.2f} on "
          f"wall clock incl. start-up (target >= {TARGET_RAW_RATIO}: {verdict})")
    same_ratio = best.cli_rate / max(same_rates)
    print(f"ratio pipeline/same-path loop: {same_ratio:.2f} (best same-path "
          f"{max(same_rates):.0f} msg/s): personalisation, store and pool cost "
          f"{1 - same_ratio:.0%} of the throughput that send's own transmission code allows")
    best_wall = max(r.wall_rate for r in runs)
    wall_same = best_wall / max(same_rates)
    wall_raw = best_wall / raw_rate
    print(f"issue 13, wall clock incl. start-up: send {best_wall:.0f} msg/s = {wall_same:.2f} "
          f"of the same-path loop (target >= {TARGET_WALL_SAME}: "
          f"{'met' if wall_same >= TARGET_WALL_SAME else 'MISSED'}) and {wall_raw:.2f}x the "
          f"raw aiosmtplib loop (target >= {TARGET_WALL_RAW}: "
          f"{'met' if wall_raw >= TARGET_WALL_RAW else 'MISSED'})")
    if singles:
        one = max(r.wall_rate for r in singles)
        cpu = [r.cpu / max(1, r.sent) * 1e6 for r in runs]
        cpu_one = [r.cpu / max(1, r.sent) * 1e6 for r in singles]
        print(f"processes, wall clock incl. start-up, best of {rounds}: "
              f"{max(r.processes for r in runs)} process(es) {best_wall:.0f} msg/s = "
              f"{wall_raw:.2f}x raw; one process {one:.0f} msg/s = {one / raw_rate:.2f}x raw; "
              f"{best_wall / one:.2f}x one process; CPU a message {min(cpu):.0f} to "
              f"{max(cpu):.0f} µs against {min(cpu_one):.0f} to {max(cpu_one):.0f} µs")
    if profile is not None:
        print(f"  (profiled under cProfile, figures distorted: {profile})")
    return ok


def memory_mode(kind: str, work: Path, concurrency: int) -> bool:
    print(f"== memory: peak RSS of send at N=10,000 and N=100,000, C={concurrency}")
    peaks = []
    ok = True
    for recipients in (10_000, 100_000):
        run, got, _ = send_once(kind, work, f"memory-{recipients}", recipients, concurrency)
        describe(run, recipients, concurrency)
        print(f"  sink accepted {got.accepted:,} message(s)")
        ok = ok and run.exit_code == 0 and got.accepted == run.sent == recipients
        peaks.append(run.peak_rss_kib)
    ratio = peaks[1] / peaks[0]
    verdict = "met" if ratio <= TARGET_RSS_RATIO else f"MISSED by {ratio - TARGET_RSS_RATIO:.2f}"
    print(f"peak RSS: {peaks[0] / 1024:.1f} MiB (10,000) vs {peaks[1] / 1024:.1f} MiB (100,000):"
          f" ratio {ratio:.2f} (target <= {TARGET_RSS_RATIO}: {verdict})")
    return ok


def throttle_mode(work: Path, rate: float, recipients: int, concurrency: int) -> bool:
    """A relay with a rolling window of R msg/s, no rate set in send: one process, then
    ``--processes`` (2), each on a fresh relay; achieved / R over the delivery time."""
    print(f"== throttle: relay accepts {rate:g} msg/s, send has no rate set, N={recipients:,}, "
          f"C={concurrency}, processes {' then '.join(str(p) for p in compared())}")
    ok = True
    figures: list[tuple[int, float, int]] = []
    for processes in compared():
        run, got, root = send_once("aiosmtpd", work, f"throttle-{processes}", recipients,
                                   concurrency, throttle=rate, processes=processes)
        describe(run, recipients, concurrency)
        print(f"  sink accepted {got.accepted:,} on {got.connections} connection(s); refused "
              f"{got.refused:,} (451/421), dropped {got.disconnects:,} connection(s) with 421")
        effective = got.accepted / run.cli_elapsed if run.cli_elapsed else 0.0
        ratio = effective / rate
        verdict = "met" if ratio >= TARGET_THROTTLE_RATIO else (
            f"MISSED by {TARGET_THROTTLE_RATIO - ratio:.2f}")
        print(f"effective rate: {got.accepted:,} accepted / {run.cli_elapsed:.1f}s = "
              f"{effective:.1f} msg/s = {ratio:.2f} x R (target >= {TARGET_THROTTLE_RATIO}: "
              f"{verdict}); wall incl. start-up {run.wall_rate:.1f} msg/s")
        ok = nobody_lost(root, got, recipients) and ok
        figures.append((run.processes, ratio, got.refused))
    print("throttle summary (achieved / R over the delivery time):")
    for processes, ratio, refused in figures:
        print(f"  {processes} sending process(es): {ratio:.2f} x R, {refused:,} refusals")
    return ok


def nobody_lost(root: Path, got: SinkReport, recipients: int) -> bool:
    """Reconcile the store's report with what the sink accepted: everyone once, nobody left."""
    report = report_json(root)
    counts = report["counts"]
    print(f"$ cd {root} && python -m mirage_mailer report {ISSUE} --format json")
    print(f"  counts: {json.dumps(counts)}")
    received = [r.lower() for r in got.recipients or []]
    expected = {address(n) for n in range(recipients)}
    twice = len(received) - len(set(received))
    checks = {
        f"everyone sent (sent == {recipients:,})": counts["sent"] == recipients,
        "nobody pending or unknown": counts["pending"] == 0 and counts["unknown"] == 0,
        "nobody failed": counts["failed"] == 0,
        f"sink received {recipients:,}": got.accepted == recipients,
        "sink received every listed address": set(received) == expected,
        f"no address received twice (duplicates: {twice})": twice == 0,
    }
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    return all(checks.values())


def pacing_mode(work: Path, concurrency: int, recipients: int | None) -> bool:
    """Token-bucket relays at R = 5, 50, 500 msg/s (burst 10, 451 above), no rate set in send,
    for one process and for ``--processes`` (2) side by side.

    N is bounded per R (about 20 s of the relay's allowance, at most 5,000) so each run ends
    well within a minute; the figure is accepted / delivery time for the whole run, the
    learning included. A send of fewer than 400 messages stays in one process (200 a process
    at least), so at R = 5 only one process is measured.
    """
    print(f"== pacing: token-bucket relays at {', '.join(f'{r:g}' for r in PACING_RATES)} msg/s, "
          f"burst {PACING_BURST}, send has no rate set, C={concurrency}, processes "
          f"{' and '.join(str(p) for p in compared())}")
    ok = True
    # what this machine delivers right now to the same sink without any limit: a relay
    # faster than that cannot be the bottleneck, so its ratio is also given against this
    top = recipients or int(min(5_000, max(100, 20 * max(PACING_RATES))))
    capacity: dict[int | str, float] = {}
    for processes in compared():
        run, got, root = send_once("aiosmtpd", work, f"pacing-unlimited-{processes}", top,
                                   concurrency, processes=processes)
        describe(run, top, concurrency)
        ok = nobody_lost(root, got, top) and ok
        capacity[processes] = run.cli_rate
        print(f"  unlimited relay, {run.processes} process(es): {run.cli_rate:.0f} msg/s (the "
              "pipeline's ceiling here, now)")
    figures: list[tuple[float, int, int, float, int, float]] = []
    for rate in PACING_RATES:
        n = recipients or int(min(5_000, max(100, 20 * rate)))
        for processes in compared():
            if processes != 1 and n < 400:
                continue
            rules = ("--token-bucket", f"{rate:g}", "--burst", str(PACING_BURST))
            run, got, root = send_once(
                "aiosmtpd", work, f"pacing-{rate:g}-{processes}", n, concurrency, rules=rules,
                rules_label=f"TokenBucket({rate:g}, burst={PACING_BURST})", processes=processes)
            describe(run, n, concurrency)
            effective = got.accepted / run.cli_elapsed if run.cli_elapsed else 0.0
            print(f"  R={rate:g}, {run.processes} process(es): {got.accepted:,} accepted / "
                  f"{run.cli_elapsed:.1f}s = {effective:.1f} msg/s = {effective / rate:.2f} x R;"
                  f" relay refused {got.refused:,} (451)")
            ok = nobody_lost(root, got, n) and ok
            figures.append((rate, n, run.processes, effective / rate, got.refused,
                            capacity[processes]))
    print("pacing summary (achieved / R over the whole run, target >= "
          f"{TARGET_THROTTLE_RATIO}):")
    for rate, n, processes, ratio, refused, ceiling in figures:
        verdict = "met" if ratio >= TARGET_THROTTLE_RATIO else "MISSED"
        reachable = ""
        if ceiling < rate:  # the machine, not the pacer, is the limit
            reachable = (f"; {ratio * rate / ceiling:.2f} x the unlimited run's "
                         f"{ceiling:.0f} msg/s")
        print(f"  R={rate:>5g} msg/s, N={n:>5,}, {processes} process(es): {ratio:.2f} x R"
              f"{reachable}, {refused:,} refusals ({verdict})")
    return ok


@contextlib.contextmanager
def latency_proxy(target: int, rtt_ms: float) -> Iterator[int]:
    """``bench/latency_proxy.py`` in a child process in front of 127.0.0.1:``target``, half
    the round trip each way; yields its port."""
    proc = subprocess.Popen([sys.executable, str(PROXY_SCRIPT), "--to", str(target),
                             "--delay-ms", str(rtt_ms / 2)], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline().decode() if ready else ""
        if not line.startswith("port "):
            raise RuntimeError(f"latency_proxy.py did not start (said {line!r})")
        yield int(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def rtt_mode(kind: str, work: Path, rtt_ms: float, recipients: int, concurrency: int) -> bool:
    """A relay ``rtt_ms`` away (a proxy holding each chunk half of it each way): what a
    connection carries in one round trip, for send and for the raw aiosmtplib loop. A
    message that needs n round trips gives 1/n; nothing but the round trips limits either
    at this distance, so the figure does not depend on the machine's speed."""
    rtt = rtt_ms / 1000
    ideal = concurrency / rtt  # one message a round trip on every connection
    print(f"== a distant relay: {rtt_ms:g} ms round trip (latency proxy), N={recipients:,}, "
          f"C={concurrency}; one message a round trip a connection would be {ideal:.0f} msg/s")
    root = make_project(work / "distant", recipients, concurrency, processes=1)
    with Sink(kind, work / "distant-sink") as sink, latency_proxy(sink.port, rtt_ms) as port:
        point_at(root, f"smtp://{HOST}:{port}")
        print(f"sink: {sink.label}, behind the proxy at {HOST}:{port}")
        run = run_send(root, timeout=120 + 3 * recipients / max(1.0, ideal / 8))
        describe(run, recipients, concurrency)
        sender, message = sample_message(root)
        raw = run_on("asyncio", raw_send(port, sender, message, recipients, concurrency))
        got = sink.stop()
    raw_rate = recipients / raw
    ok = run.exit_code == 0 and run.sent == recipients and got.accepted == 2 * recipients
    print(f"  sink accepted {got.accepted:,} (send's and the raw loop's)")
    print(f"send: {run.cli_rate:.0f} msg/s on its delivery figure = {run.cli_rate / ideal:.2f} of "
          f"a message a round trip a connection; raw aiosmtplib loop {raw_rate:.0f} msg/s = "
          f"{raw_rate / ideal:.2f}; send / raw {run.cli_rate / raw_rate:.2f}")
    return ok


def greylist_mode(work: Path, concurrency: int, recipients: int) -> bool:
    """Throughput with 0 %, 3 % and 10 % of recipients answered 451 once, as ratios to the 0 %
    run of the same invocation. The greylisted wait out send's retry backoff (1 s) at the
    end of the run, which a bigger N amortises; nobody else may wait."""
    print(f"== greylisting: 451 once to {', '.join(f'{f:.0%}' for f in GREYLIST_FRACTIONS)} "
          f"of recipients, N={recipients:,}, C={concurrency}")
    ok = True
    rates: list[tuple[float, float, int]] = []
    for fraction in GREYLIST_FRACTIONS:
        rules = ("--greylist", str(fraction)) if fraction else ()
        run, got, root = send_once("aiosmtpd", work, f"greylist-{fraction:g}", recipients,
                                   concurrency, rules=rules,
                                   rules_label=f"Greylist({fraction:g})" if fraction else "")
        describe(run, recipients, concurrency)
        print(f"  {fraction:.0%} greylisted: relay deferred {got.greylisted:,} recipient(s)")
        ok = nobody_lost(root, got, recipients) and ok
        rates.append((fraction, run.cli_rate, got.greylisted))
    base = rates[0][1] or 1.0
    print(f"greylisting summary (throughput / the 0 % run's, target >= {TARGET_GREYLIST_RATIO}):")
    for fraction, rate, deferred in rates:
        ratio = rate / base
        verdict = "met" if ratio >= TARGET_GREYLIST_RATIO else "MISSED"
        print(f"  {fraction:>4.0%} ({deferred:,} deferred once): {rate:.0f} msg/s = "
              f"{ratio:.2f} ({verdict})")
    return ok


# ----------------------------------------------------------------------------------- main


def processes_arg(text: str) -> int | str:
    return text if text == "auto" else int(text)


def compared() -> tuple[int | str, ...]:
    """The process counts a paced mode runs side by side: one, and ``--processes`` (2)."""
    other = PROCESSES if PROCESSES not in (None, 1, "auto") else 2
    return (1, other)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=None, metavar="N",
                        help="list size (default 10,000; 3,000 with --throttle; with --pacing "
                        "20 s of each relay's allowance, 100 to 5,000)")
    parser.add_argument("--concurrency", type=int, default=4, metavar="C",
                        help="SMTP connections, for send and the raw loop (default 4)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--memory", action="store_true",
                      help="peak RSS at N=10,000 and N=100,000 and their ratio")
    mode.add_argument("--throttle", type=float, default=None, metavar="R",
                      help="relay that accepts R msg/s; checks pacing and that nothing is lost")
    mode.add_argument("--pacing", action="store_true",
                      help="token-bucket relays at 5, 50, 500 msg/s (burst 10): achieved / R")
    mode.add_argument("--greylist", action="store_true",
                      help="0 %%, 3 %%, 10 %% of recipients 451 once: throughput ratios")
    mode.add_argument("--rtt", type=float, default=None, metavar="MS",
                      help="a relay MS ms away (latency proxy): messages a connection carries "
                      "in a round trip, send against the raw loop (default N 2,000)")
    parser.add_argument("--sink", choices=("auto", "smtp-sink", "aiosmtpd"), default="auto",
                        help="sink for the plain modes (auto: smtp-sink when installed)")
    parser.add_argument("--profile", type=Path, default=None, metavar="FILE",
                        help="run the pipeline send under cProfile, write stats to FILE")
    parser.add_argument("--rounds", type=int, default=1, metavar="K",
                        help="default mode: alternate pipeline and raw K times, compare the best")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    parser.add_argument("--processes", type=processes_arg, default=None, metavar="P",
                        help="transport.processes of the send: 1 to 16 or auto (default: the "
                        "project's, auto); unless 1, one process is measured beside it, and "
                        "--throttle/--pacing compare 1 with P (2 if not given)")
    parser.add_argument("--event-loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="transport.event_loop of the send, and the loop the same-path "
                        "loop runs on (the raw loop always runs on asyncio's)")
    args = parser.parse_args()
    global PROCESSES
    PROCESSES = args.processes

    kind = args.sink
    if kind == "auto":
        kind = "smtp-sink" if SMTP_SINK.exists() else "aiosmtpd"
    if kind == "smtp-sink" and not SMTP_SINK.exists():
        parser.error(f"{SMTP_SINK} not found (apt-get install postfix), or use --sink aiosmtpd")
    print(f"$ {shlex.join(['python', 'bench/send_throughput.py', *sys.argv[1:]])}")
    print(f"python {sys.version.split()[0]}, aiosmtplib {aiosmtplib.__version__}, "
          f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f} (other work distorts)")
    work = Path(tempfile.mkdtemp(prefix="mirage-bench-"))
    # a SIGTERM (say from a timeout) should still run the finally blocks and stop the sinks
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ok = True
    try:
        if args.memory:
            ok = memory_mode(kind, work, args.concurrency)
        elif args.pacing:
            ok = pacing_mode(work, args.concurrency, args.recipients)
        elif args.greylist:
            ok = greylist_mode(work, args.concurrency, args.recipients or 10_000)
        elif args.rtt is not None:
            ok = rtt_mode(kind, work, args.rtt, args.recipients or 2_000, args.concurrency)
        elif args.throttle is not None:
            ok = throttle_mode(work, args.throttle, args.recipients or 3_000, args.concurrency)
        else:
            ok = default_mode(kind, work, args.recipients or 10_000, args.concurrency,
                              args.rounds, args.profile, args.event_loop)
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1  # a missed speed target is reported, not an error; lost mail is


if __name__ == "__main__":
    sys.exit(main())
