"""``report`` at two list sizes: its peak memory must not grow with the recipients.

For each size N a fresh sample project (``init_project``) gets one issue of N recipient rows,
written straight into its SQLite store (mixed statuses; server replies with quotes, line
breaks and non-ASCII text; an outcome event per answered row, 20 a second, for the HTML
page's timeline). Then ``python -m mirage_mailer report ISSUE --format F`` runs in its own
process for every format, its output to a file; peak RSS is the child's own (``os.wait4``).

What matters is the ratio between the sizes. A report that streams its rows grows only by
SQLite's page cache (``PRAGMA cache_size`` 16 MB, about 27 MiB of RSS with its overhead),
which fills over the first few hundred thousand rows and then stays (after one pass over a
300 MB store of 600,000 rows, more passes add nothing): 20,000 -> 200,000 is about 1.2-1.3,
600,000 about 1.4. One that holds every row grew 2-5 times at 200,000 (before it streamed,
on this script: json 93 -> 508 MiB, csv 69 -> 224, the table 85 -> 368, the HTML page
63 -> 121).

    python bench/report_memory.py [--sizes 20000,200000] [--formats json,csv,table,html]

Exit 1 when a report failed; a ratio above 1.5 is only reported (the machine may be busy).
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

from mirage_mailer.project.config import load_settings
from mirage_mailer.project.scaffold import init_project
from mirage_mailer.store import open_store

ISSUE = "issues/2021-10-partners-meeting"
STATUSES = ("sent",) * 16 + ("failed", "pending", "suppressed", "unknown")
FLAT = 1.5


def make_project(root: Path, recipients: int) -> None:
    """The sample project with ``recipients`` rows of its issue in the store."""
    init_project(root)
    database = load_settings(root / "mirage.yaml").tracking.database
    assert isinstance(database, Path)
    open_store(database).close()  # the schema, as a send leaves it
    issue = ISSUE.rsplit("/", 1)[-1]
    stamp = "2021-10-05T09:30:00+00:00"

    def rows() -> object:
        for n in range(recipients):
            status = STATUSES[n % len(STATUSES)]
            email = f"Reader.{n}+news@example{n % 97}.org"
            code = 250 if status == "sent" else 550 if status == "failed" else None
            reply = (f'250 2.0.0 Ok: queued as "{n:X}"' if code == 250 else
                     f"550 5.1.1 <{email}>: Empfänger unbekannt\n\tno such user" if code
                     else None)
            yield (issue, email, email.lower(), f"Léa «{n}»", "en", "subscribers", status,
                   1 if code else 0, f"<{n}.report@example.org>" if code else None, code,
                   reply, stamp, stamp if code else None)

    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO recipients (issue, email, email_key, name, lang, list_name, status,"
            " attempts, message_id, smtp_code, smtp_response, created_at, last_attempt_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())  # type: ignore[arg-type]
        # an outcome event per answered row, 20 a second: the HTML page's timeline
        conn.execute(
            "INSERT INTO events (recipient_id, issue, email, kind, at) SELECT id, issue,"
            " email_key, status, strftime('%Y-%m-%dT%H:%M:%f+00:00', '2021-10-05 09:30:00',"
            " '+' || (id / 20.0) || ' seconds') FROM recipients WHERE status IN ('sent',"
            " 'failed') ORDER BY id")
    conn.close()


def peak(root: Path, fmt: str) -> tuple[int, float, float]:
    """Exit code, peak RSS (MiB) and wall seconds of one ``report`` in its own process."""
    extra = ["--out", str(root / "report.html")] if fmt == "html" else []
    argv = [sys.executable, "-m", "mirage_mailer", "report", ISSUE, "--format", fmt, *extra]
    with (root / f"report.{fmt}.out").open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=root, stdout=out, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and proc.stderr is not None:
        sys.stderr.write(proc.stderr.read().decode("utf-8", "replace"))
    return code, usage.ru_maxrss / 1024, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--formats", default="json,csv,table,html")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    formats = args.formats.split(",")
    failed = False
    found: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="report-memory-") as work:
        for size in sizes:
            root = Path(work) / f"n{size}"
            make_project(root, size)
            for fmt in formats:
                code, mib, wall = peak(root, fmt)
                failed |= code != 0
                found[fmt, size] = mib
                print(f"report --format {fmt:5} N={size:>9,}: peak {mib:6.1f} MiB, "
                      f"{wall:5.1f} s, exit {code}")
    small, large = sizes[0], sizes[-1]
    for fmt in formats:
        ratio = found[fmt, large] / found[fmt, small]
        verdict = "flat" if ratio <= FLAT else f"GROWS (over {FLAT})"
        print(f"{fmt:5}: peak at N={large:,} / N={small:,} = {ratio:.2f}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
