"""Another process reading a SQLite store: a real second process (``sqlite3`` in Python)
inside ``BEGIN; SELECT ...``, as an operator's ``sqlite3`` shell or a backup script holds it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLD = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN")
conn.execute("SELECT count(*) FROM recipients").fetchone()
print("reading", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.execute("COMMIT")
"""


def journal_mode(database: Path, mode: str) -> None:
    """Put the file in ``mode`` (what an operator's ``PRAGMA journal_mode=DELETE`` does)."""
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        assert conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0] == mode.lower()
    finally:
        conn.close()


def current_mode(database: Path) -> str:
    conn = sqlite3.connect(database)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


@contextmanager
def reader_holding(database: Path) -> Iterator[None]:
    """A second process holding a read transaction on ``database`` for the block's length."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(database)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "reading"
        yield
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
