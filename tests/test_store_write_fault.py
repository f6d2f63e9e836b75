"""A write to the SQLite store that fails for a file-size limit or a full disk names that
cause, not "another mirage-mailer process may hold it" (audit: the contention hint sent the
user looking for a process that did not exist). A real store, a real ``RLIMIT_FSIZE``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# ``python -c FILLED DB``: a store whose next write grows a file past this process's size
# limit (SIGXFSZ ignored, as Python does: the write fails with EFBIG); prints the problem.
FILLED = """
import os, resource, signal, sys
from mirage_mailer.store import Store, StoreUnavailable
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
with Store(sys.argv[1]) as store:
    size = max(os.stat(sys.argv[1] + suffix).st_size for suffix in ("", "-wal"))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 300_000, resource.RLIM_INFINITY))
    try:
        with store._write() as conn:
            conn.execute("CREATE TABLE filler(x)")
            conn.execute("INSERT INTO filler VALUES (randomblob(2000000))")
    except StoreUnavailable as exc:
        print(exc.problems[0])
"""


def test_a_write_past_the_file_size_limit_names_the_limit(tmp_path: Path) -> None:
    database = tmp_path / "tracking.sqlite"
    proc = subprocess.run([sys.executable, "-c", FILLED, str(database)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("tracking.sqlite: cannot write to the tracking database: "), line
    assert "another mirage-mailer process" not in line
    assert line.endswith("(raise this process's file size limit (ulimit -f) or free space; "
                         "a rerun resumes where this one stopped)"), line
