"""Run one mirage-mailer command and print its own CPU and peak RSS apart from its children's.

``bench/plan_scale.py`` reports the whole process tree (``os.wait4``): the CPU of a reader
child adds up with the main process's, and the peak is the larger of the two. This says
which process paid what, for the design notes: the main thread's CPU is the critical path
on a quiet machine (the main process's CPU also holds its staging, checkpoint and SQLite
sorter threads), and the two peaks together are the memory the command needs.

    cd <project> && python bench/process_split.py validate issues/<id>
    (PYTHONPATH=<other checkout>/src to measure another version)
"""

from __future__ import annotations

import atexit
import resource
import sys
import time

_STARTED = time.perf_counter()


def _report() -> None:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"wall {time.perf_counter() - _STARTED:.2f} s | main thread: cpu "
          f"{time.thread_time():.2f} s | main process: cpu "
          f"{own.ru_utime + own.ru_stime:.2f} s, peak {own.ru_maxrss / 1024:.0f} MiB | "
          f"children: cpu {kids.ru_utime + kids.ru_stime:.2f} s, peak "
          f"{kids.ru_maxrss / 1024:.0f} MiB", file=sys.stderr)


if __name__ == "__main__":
    from mirage_mailer.cli import main

    atexit.register(_report)
    main(sys.argv[1:])
