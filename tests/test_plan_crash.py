"""A send killed (SIGKILL) while it plans a long list into the store: the rerun completes it.

An issue's first plan of a long list goes into the store in one transaction that drops and
rebuilds the address indexes (``RecipientsMixin._bulk_insert``). Real CLI runs on a list long
enough to take that way are killed at moments spread over the planning; each rerun must
leave exactly the rows, ids, values and indexes that a run never interrupted leaves.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from helpers import SAMPLE_ISSUE
from mirage_mailer.services import plan_store
from mirage_mailer.store import recipients as store_recipients

ROWS = store_recipients.BULK_MIN + 5_000


def _write_list(project: Path) -> None:
    lines = ["email,name,lang,organisation"]
    for n in range(ROWS):
        if n % 997 == 0:
            lines.append(f"broken{n}.example.org,,en,")  # invalid: recorded as such
        elif n % 1009 == 0:
            lines.append(f"Reader{n - 1}@Example.org,Again,en,")  # a duplicate: skipped
        else:
            lines.append(f"reader{n}@example.org,Reader {n},{'fr' if n % 3 else 'en'},Org {n}")
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _send(project: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE,
                             "--yes", "--limit", "1"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _state(project: Path) -> tuple[list[tuple[object, ...]], dict[str, str], list[str]]:
    """(rows without their status, index definitions, statuses) of the store."""
    conn = sqlite3.connect(project / ".mirage/tracking.sqlite")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # each copy of the project has its own secret, so subjects differ: present or not
        rows = conn.execute("SELECT id, email, email_key, name, lang, list_name, fields,"
                            " subject IS NULL FROM recipients ORDER BY id").fetchall()
        indexes = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                                    " AND tbl_name = 'recipients'").fetchall())
        statuses = [s for (s,) in conn.execute("SELECT status FROM recipients ORDER BY id")]
        queued = conn.execute("SELECT count(*) FROM events WHERE kind = 'queued'").fetchone()
        assert queued[0] == len(rows)
    finally:
        conn.close()
    return rows, indexes, statuses


def test_a_plan_killed_at_any_moment_is_completed_by_the_rerun(project: Path,
                                                               tmp_path: Path) -> None:
    _write_list(project)
    # long enough for the first plan from columns (services/plan_store.py), which this kills
    assert (project / "lists/subscribers.csv").stat().st_size >= plan_store.FAST_BYTES
    clean = tmp_path / "clean"
    shutil.copytree(project, clean)
    started = time.monotonic()
    run = _send(clean)
    assert run.wait(timeout=120) == 0, run.stderr.read() if run.stderr else ""
    took = time.monotonic() - started
    expected, indexes, statuses = _state(clean)
    assert len(expected) == ROWS - ROWS // 1009 and statuses.count("sent") == 1
    assert statuses.count("invalid") == len(range(0, ROWS, 997))

    rng = random.Random(13)
    for round_ in range(4):
        killed = tmp_path / f"killed{round_}"
        shutil.copytree(project, killed)
        run = _send(killed)
        time.sleep(took * rng.uniform(0.2, 0.95))
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        again = _send(killed)
        assert again.wait(timeout=120) == 0, again.stderr.read() if again.stderr else ""
        rows, got_indexes, got = _state(killed)
        assert rows == expected, f"round {round_}"
        assert got_indexes == indexes
        assert got.count("invalid") == statuses.count("invalid")
        assert 1 <= got.count("sent") <= 2  # the killed run may have sent its one message
        # ... or been killed with it on the wire: that one is unknown (the crash contract)
        assert got.count("unknown") <= 1
        assert (got.count("pending") + got.count("sent") + got.count("unknown")
                == len(rows) - got.count("invalid"))
