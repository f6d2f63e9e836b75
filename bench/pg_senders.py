"""One, two and three ``send`` processes sharing a PostgreSQL store, against one on SQLite.

Issue 12 item 6: several senders on one issue claim its recipients by leases
(``store/leases.py``). Each scenario sends the same generated list of N recipients from a
fresh copy of the sample project to the same kind of SMTP sink on 127.0.0.1, in a process of
its own (Postfix's ``smtp-sink`` when installed, else ``bench/sink_process.py``), all in one
run, so the ratios travel between machines. Reported per scenario: messages per second on
the wall clock (start of the first sender to exit of the last, start-up and planning
included), messages per second per core (CPU seconds of the sender processes, from their
resource usage), and the claim overhead per message (time the senders spent in claim and
outcome commits, which ``send --verbose`` prints). ``--commits`` also measures what this
PostgreSQL server sustains in small commits per second (the ceiling of docs/design.md's
arithmetic for N hosts). ``--durable`` adds one and two senders with
``tracking.durable_commits: true`` (each commit waits for the server's WAL flush), each right
after the same scenario without it, and the ratio between them; with ``--commits`` it also
measures small commits with ``synchronous_commit = on`` (the disk's flush rate).

The PostgreSQL server is a private cluster on 127.0.0.1 (tests/support/postgres.py) with
fsync on, as in production; the senders commit with ``synchronous_commit = off`` unless
``durable_commits`` is on. Every
sender is one process (``transport.processes: 1``), the SQLite one included.

    python bench/pg_senders.py [--recipients 6000] [--concurrency 4] [--rounds 1] [--commits]
                               [--claims] [--durable]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from send_throughput import (
    ISSUE,
    SMTP_SINK,
    Sink,
    clean_env,
    make_project,
    point_at,
    report_json,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.postgres import PostgresServer, start_server

VERBOSE = re.compile(r"store: (\d+) ms in claim and outcome commits")
COMMITS = re.compile(r"; (\d+) commits for (\d+) messages")
SENT = re.compile(r"this run: sent (\d+)")


@dataclass
class Scenario:
    label: str
    senders: int
    sent: int
    wall: float
    cpu: float
    claim_ms: float
    pending: int
    unknown: int
    codes: list[int]
    commits: int = 0
    server_cpu: float = 0.0  # CPU seconds of the PostgreSQL cluster during the scenario

    @property
    def rate(self) -> float:
        return self.sent / self.wall if self.wall > 0 else 0.0

    @property
    def per_core(self) -> float:
        return self.sent / self.cpu if self.cpu > 0 else 0.0

    @property
    def claim_us(self) -> float:
        return self.claim_ms * 1000 / self.sent if self.sent else 0.0


def durable(server: PostgresServer) -> None:
    """Turn fsync and full-page writes back on: the fixture's cluster runs without them."""
    import psycopg

    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        for setting in ("fsync", "full_page_writes", "synchronous_commit"):
            conn.execute(f"ALTER SYSTEM SET {setting} = on")
        conn.execute("SELECT pg_reload_conf()")


def server_cpu(server: PostgresServer) -> float:
    """CPU seconds the cluster has used so far: its postmaster, the children it has reaped
    (the senders' backends, once they have gone) and those still running."""
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
        elif ppid == postmaster:
            total += sum(int(v) for v in fields[11:13]) / tick
    return total


def configure(root: Path, url: str | None, durable_commits: bool = False) -> None:
    """One process a sender (``transport.processes: 1``), so the SQLite baseline is one
    process as each leased sender is; the PostgreSQL store when ``url`` is given, with
    ``tracking.durable_commits`` as asked."""
    config = root / "mirage.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["transport"]["processes"] = 1
    if url is not None:
        data.setdefault("tracking", {})["database"] = url
        data["tracking"]["durable_commits"] = durable_commits
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                      encoding="utf-8")


def run_senders(root: Path, count: int, timeout: float) -> tuple[float, float, list[str],
                                                                 list[int]]:
    """``count`` sends of the issue started at once; (wall, CPU seconds, stderr, codes)."""
    args = [sys.executable, "-m", "mirage_mailer", "--verbose", "send", ISSUE, "--yes"]
    started = time.perf_counter()
    procs = []
    for n in range(count):
        out = (root.parent / f"{root.name}.{n}.out").open("wb")
        err = (root.parent / f"{root.name}.{n}.err").open("wb")
        procs.append((subprocess.Popen(args, cwd=root, stdout=out, stderr=err,
                                       stdin=subprocess.DEVNULL, env=clean_env()), out, err))
    cpu = 0.0
    codes = []
    for proc, out, err in procs:
        while (found := os.wait4(proc.pid, os.WNOHANG))[0] == 0:
            if time.perf_counter() - started > timeout:
                print(f"  sender {proc.pid} still running after {timeout:.0f}s: killed")
                proc.kill()
            time.sleep(0.01)
        _pid, status, usage = found
        proc.returncode = os.waitstatus_to_exitcode(status)
        codes.append(proc.returncode)
        cpu += usage.ru_utime + usage.ru_stime
        out.close()
        err.close()
    wall = time.perf_counter() - started
    texts = [(root.parent / f"{root.name}.{n}.err").read_text(errors="replace")
             + (root.parent / f"{root.name}.{n}.out").read_text(errors="replace")
             for n in range(count)]
    return wall, cpu, texts, codes


def scenario(label: str, work: Path, kind: str, recipients: int, concurrency: int,
             senders: int, url: str | None, timeout: float,
             server: PostgresServer, durable_commits: bool = False) -> Scenario:
    root = make_project(work / label.replace(" ", "-"), recipients, concurrency)
    configure(root, url, durable_commits)
    with Sink(kind, work / f"{label.replace(' ', '-')}-sink") as sink:
        point_at(root, sink.url)
        before = server_cpu(server)
        wall, cpu, texts, codes = run_senders(root, senders, timeout)
        spent = server_cpu(server) - before if url is not None else 0.0
        got = sink.stop()
    report = report_json(root)
    counts = report["counts"]
    claim_ms = sum(float(m[1]) for t in texts for m in VERBOSE.finditer(t))
    commits = sum(int(m[1]) for t in texts for m in COMMITS.finditer(t))
    sent = sum(int(m[1]) for t in texts for m in SENT.finditer(t))
    result = Scenario(label, senders, sent, wall, cpu, claim_ms, counts["pending"],
                      counts["unknown"], codes, commits, spent)
    print(f"  {label}: {sent} sent ({got.accepted} accepted by the sink) in {wall:.1f} s: "
          f"{result.rate:,.0f} msg/s; CPU {cpu:.1f} s: {result.per_core:,.0f} msg/s per core;"
          f" claim/outcome commits {result.claim_us:.0f} µs a message"
          f" ({commits} commits); PostgreSQL CPU {spent:.1f} s"
          f" ({spent / sent * 1e6 if sent else 0:.0f} µs a message); exit {codes}")
    if counts["pending"] or counts["unknown"] or got.accepted != recipients:
        print(f"    NOT CLEAN: pending {counts['pending']}, unknown {counts['unknown']}, "
              f"sink accepted {got.accepted} of {recipients}")
    for text in texts:
        for line in text.splitlines():
            if "Traceback" in line or "error" in line.lower():
                print(f"    {line}")
    return result


def _commit_loop(url: str, seconds: float, row: int, queue: Any, synchronous: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET synchronous_commit = {synchronous}")
        done = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            with conn.transaction():
                conn.execute("UPDATE bench_commits SET n = n + 1 WHERE id = %s", (row,))
            done += 1
        queue.put(done)


def commits_per_second(server: PostgresServer, clients: int, seconds: float = 5.0,
                       synchronous: str = "off") -> float:
    """Small one-row commits a second this server takes from ``clients`` connections (each
    its own row, as leased senders mostly write rows of their own); ``synchronous: on``
    makes each wait for its WAL flush (concurrent ones share a flush)."""
    import psycopg

    url = server.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_commits (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
        conn.execute("INSERT INTO bench_commits SELECT g, 0 FROM generate_series(1, %s) g",
                     (clients,))
    queue: Any = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_commit_loop, args=(url, seconds, n + 1, queue,
                                                                     synchronous))
             for n in range(clients)]
    for p in procs:
        p.start()
    total = sum(queue.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def claim_cost(server: PostgresServer, rows: int = 20_000) -> None:
    """Claiming an issue's rows in batches of 10, 100 and 1,000: time per row claimed (the
    claim's share of a message), on one connection, nothing else running."""
    from mirage_mailer.store import NewRecipient, open_store
    from mirage_mailer.util.database import PostgresUrl

    for size in (10, 100, 1000):
        with open_store(PostgresUrl(server.new_database())) as store:
            store.add_recipients("bench", (NewRecipient(f"r{n}@example.org", None, None, "l")
                                           for n in range(rows)))
            store.register_sender("bench", "bench", "bench", os.getpid(), 60)  # analyzes
            after, took = 0, 0
            began = time.perf_counter()
            while batch := store.claim("bench", "bench", size, after=after):
                after = batch[-1].id
                took += len(batch)
            spent = time.perf_counter() - began
            print(f"  claims of {size:5d}: {spent / took * 1e6:6.1f} µs a row claimed "
                  f"({took} rows, {spent:.2f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=6000, metavar="N")
    parser.add_argument("--concurrency", type=int, default=4, metavar="C",
                        help="SMTP connections of each sender (default 4)")
    parser.add_argument("--rounds", type=int, default=1, metavar="K",
                        help="repeat every scenario K times and keep the best of each")
    parser.add_argument("--sink", choices=("auto", "smtp-sink", "aiosmtpd"), default="auto")
    parser.add_argument("--commits", action="store_true",
                        help="also measure small commits per second of the server")
    parser.add_argument("--claims", action="store_true",
                        help="also time claims of 10, 100 and 1,000 rows (per row claimed)")
    parser.add_argument("--durable", action="store_true",
                        help="also 1 and 2 senders with tracking.durable_commits: true, "
                             "each right after the same scenario without it")
    parser.add_argument("--only-postgresql", action="store_true",
                        help="leave out 3 senders (the SQLite baseline stays)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    kind = args.sink
    if kind == "auto":
        kind = "smtp-sink" if SMTP_SINK.exists() else "aiosmtpd"
    print(f"$ {shlex.join(['python', 'bench/pg_senders.py', *sys.argv[1:]])}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), sink {kind}, "
          f"load average {os.getloadavg()[0]:.2f} (other work distorts)")
    work = Path(tempfile.mkdtemp(prefix="mirage-pgbench-"))
    server = start_server()
    try:
        durable(server)
        best: dict[str, Scenario] = {}
        for n in range(args.rounds):
            print(f"round {n + 1}:")
            plan: list[tuple[str, int, str | None, bool]] = [("sqlite 1", 1, None, False)]
            for k in (1, 2) if args.only_postgresql else (1, 2, 3):
                plan.append((f"postgresql {k}", k, "pg", False))
                if args.durable and k < 3:
                    plan.append((f"postgresql {k} durable", k, "pg", True))
            for label, senders, backend, durable_commits in plan:
                url = server.new_database() if backend else None
                result = scenario(f"{label} r{n + 1}", work, kind, args.recipients,
                                  args.concurrency, senders, url, args.timeout, server,
                                  durable_commits)
                key = label
                if key not in best or result.rate > best[key].rate:
                    best[key] = result
        base = best["sqlite 1"]
        print(f"best of {args.rounds} round(s), {args.recipients} recipients, "
              f"{args.concurrency} connections a sender:")
        for label, result in best.items():
            print(f"  {label:21s} {result.rate:7,.0f} msg/s = {result.rate / base.rate:4.2f} of "
                  f"SQLite; {result.per_core:6,.0f} msg/s per core = "
                  f"{result.per_core / base.per_core:4.2f}; claim/outcome commits "
                  f"{result.claim_us:4.0f} µs a message, "
                  f"{result.sent / result.commits if result.commits else 0:.2f} a commit; "
                  f"server CPU {result.server_cpu / result.sent * 1e6:.0f} µs a message")
        for k in (1, 2):
            plain, waiting = best.get(f"postgresql {k}"), best.get(f"postgresql {k} durable")
            if plain is not None and waiting is not None and plain.rate and plain.per_core:
                print(f"  durable_commits, {k} sender(s): {waiting.rate / plain.rate:4.2f} of "
                      f"the msg/s without it, {waiting.per_core / plain.per_core:4.2f} of the "
                      f"msg/s per core; claim/outcome commits {plain.claim_us:.0f} -> "
                      f"{waiting.claim_us:.0f} µs a message")
        if args.claims:
            claim_cost(server)
        if args.commits:
            for synchronous in ("off", "on") if args.durable else ("off",):
                for clients in (1, 2, 4, 8):
                    rate = commits_per_second(server, clients, synchronous=synchronous)
                    print(f"  server: {rate:,.0f} one-row commits/s from {clients} "
                          f"connection(s) (synchronous_commit = {synchronous}, fsync on)")
        clean = all(not (r.pending or r.unknown) and set(r.codes) == {0}
                    for r in best.values())
        return 0 if clean else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
