"""``store migrate``: rows per second of the copy, and whether memory stays flat with size.

Builds two SQLite stores with this version's schema, one of N recipients and one of N / 10
(each recipient with its ``queued`` event and a ``sent`` outcome, as after a real send; a
suppression per hundred), starts a private PostgreSQL cluster on 127.0.0.1
(``tests/support/postgres.py``: Debian's binaries, run as ``postgres`` when root), then per
store, in a fresh empty database each:

    migrate   ``python -m mirage_mailer store migrate --to URL --from FILE``: wall clock from
              spawn to exit (start-up, the checks, the counts and the comparison included),
              CPU time (user + system, ``os.wait4``), and peak RSS (the child's own VmHWM,
              read at exit: rusage's maxrss would also count this process, which forked it)
    raw COPY  the baseline, in this process: the same tables read with ``fetchmany`` and
              written with psycopg's ``COPY ... FROM STDIN`` / ``write_row``, one
              transaction, nothing else: what the copy costs without anything around it

and prints rows/s for both, their ratio, and the peak RSS of the large run against the
small one (flat memory: near 1).

    python bench/store_migrate.py [--recipients 1000000] [--rounds 2]

Exit 1 when a migration failed.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from mirage_mailer.project.scaffold import init_project
from mirage_mailer.store import NewRecipient, Store
from mirage_mailer.store.sqlite_snapshot import SqliteSnapshot
from support.postgres import PostgresServer, start_server
from support.processes import PEAK_CLI

ISSUE = "2026-11-bench"


def build(path: Path, recipients: int) -> int:
    """A store as after one real send of ``recipients``; returns its rows in all tables."""
    with Store(path) as store:
        store.add_recipients(ISSUE, (NewRecipient(
            f"reader{i}@example{i % 997}.org", f"Reader {i}", ("en", "fr", "de")[i % 3],
            "partners", {"organisation": f"Organisation number {i % 5000}"})
            for i in range(recipients)))
        for i in range(0, recipients, 100):
            store.suppress(f"gone{i}@example.org", source="bench")
    with sqlite3.connect(path) as db:  # the outcome of a send, in one statement
        db.execute("UPDATE recipients SET status = 'sent', attempts = 1, smtp_code = 250, "
                   "smtp_response = '2.0.0 Ok: queued as ' || hex(id), "
                   "message_id = '<' || id || '.bench@mirageproject.eu>', "
                   "last_attempt_at = created_at")
    with SqliteSnapshot(path) as snapshot:
        return sum(snapshot.count(name) for name in snapshot.tables())


def migrate(path: Path, url: str, folder: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS KiB) of one ``store migrate`` run."""
    out = folder / "peak"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", PEAK_CLI, str(out), "store", "migrate",
                             "--to", url, "--from", str(path)], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"store migrate failed ({proc.returncode}): {err.decode()}")
    return wall, usage.ru_utime + usage.ru_stime, int(out.read_text())


def raw_copy(path: Path, url: str) -> float:
    """Seconds for the bare copy into an empty database: each table created with the same
    columns as text, no index, no check, then COPY, all in one transaction."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    start = time.perf_counter()
    with psycopg.connect(url) as target, target.transaction():
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                     "AND name <> 'schema_migrations'"):
            columns = [c[1] for c in conn.execute(f'PRAGMA table_info("{table}")')]
            shape = ", ".join(f'"{c}" text' for c in columns)
            target.execute(f'CREATE TABLE "{table}" ({shape})')
            cursor = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid')
            with target.cursor().copy(f'COPY "{table}" FROM STDIN') as copy:
                while page := cursor.fetchmany(2000):
                    for row in page:
                        copy.write_row(row)
    conn.close()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    server: PostgresServer = start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="mirage-migrate-bench-") as tmp:
            folder = Path(tmp) / "project"
            init_project(folder)  # the command runs in a project, as a user runs it
            sizes = (max(1, args.recipients // 10), args.recipients)
            stores = {n: folder / f"{n}.sqlite" for n in sizes}
            rows = {n: build(stores[n], n) for n in sizes}
            peaks: dict[int, int] = {}
            for n in sizes:
                for round_ in range(1, args.rounds + 1):
                    url = server.new_database()
                    wall, cpu, peak = migrate(stores[n], url, folder)
                    raw = raw_copy(stores[n], server.new_database())
                    peaks[n] = max(peaks.get(n, 0), peak)
                    print(f"{n:>9,} recipients, {rows[n]:>9,} rows, round {round_}: migrate "
                          f"{wall:6.2f} s wall ({rows[n] / wall:>9,.0f} rows/s), {cpu:6.2f} s "
                          f"CPU, peak {peak / 1024:5.1f} MiB; raw COPY {raw:6.2f} s "
                          f"({rows[n] / raw:>9,.0f} rows/s); migrate / raw = {raw / wall:.2f}")
            small, large = sizes
            print(f"peak RSS, {large:,} vs {small:,} recipients: {peaks[large] / 1024:.1f} vs "
                  f"{peaks[small] / 1024:.1f} MiB = {peaks[large] / peaks[small]:.2f}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
