"""Staging a first plan's pending rows: the 12-value stored form against ``pending_one``'s 7.

An issue's first plan from list columns stages every pending row into the private
``mm_plan.plan_rows`` table (``store/final_rows.py``) on a thread, 500 rows a statement
(``store/staging.py``). Binding the values that are the same on every row (issue, list,
status, response, time) cost about half of that; ``ColumnRows.pending_one`` writes them
into the statement instead. This stages the same N rows both ways into a real store's
staging table, alternating, in one process, and prints CPU time a row and the ratio.

    python bench/stage_binding.py [--rows 300000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from mirage_mailer.store import Store, final_rows, staging


def _rows(count: int, start: int, issue: str, now: str, *, narrow: bool) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for n in range(start, start + count):
        email, key = f"Reader.{n}@Example.org", f"reader.{n}@example.org"
        name, subject = f"Reader {n}", f"s{n:030d}"
        fields = f'{{"organisation": "Org {n % 977}"}}'
        rows.append((n, email, key, name, "en", fields, subject) if narrow else
                    (n, issue, email, key, name, "en", "subscribers", fields, "pending", None,
                     now, subject))
    return rows


def _stage(store: Store, count: int, *, narrow: bool) -> float:
    """CPU seconds to stage ``count`` rows one way (rows built before the clock starts)."""
    conn = store._conn
    final_rows.create(conn)
    try:
        conn.execute("BEGIN")
        final = final_rows.ColumnRows(conn, "bench-issue", store._now())
        ids = final.take(count)
        rows = _rows(count, ids.start, final.issue, final.now, narrow=narrow)
        one = final.pending_one("subscribers") if narrow else final_rows.INSERT_ONE
        started = time.process_time()
        staging.stage_rows(conn, final_rows.TABLE, rows, sql=final_rows.INSERT_SQL, one=one)
        spent = time.process_time() - started
        staged = conn.execute(f"SELECT count(*) FROM {final_rows.TABLE}").fetchone()[0]
        assert staged == count, (staged, count)
        conn.execute("ROLLBACK")
        return spent
    finally:
        final_rows.drop(conn)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    wide: list[float] = []
    narrow: list[float] = []
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "t.sqlite") as store:
        for _ in range(args.rounds):  # alternating, so drift in the machine hits both
            wide.append(_stage(store, args.rows, narrow=False))
            narrow.append(_stage(store, args.rows, narrow=True))
    per_row = 1e6 / args.rows
    print(f"12 values bound a row: {', '.join(f'{t * per_row:.2f}' for t in wide)} µs a row")
    print(f" 7 values bound a row: {', '.join(f'{t * per_row:.2f}' for t in narrow)} µs a row")
    print(f"ratio (best of each): {min(narrow) / min(wide):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
