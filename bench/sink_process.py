"""An aiosmtpd sink (``SmtpSink``) in a process of its own, for ``send_throughput.py``.

The machine the benchmark runs on may have two cores: a sink in the sender's process would
share its interpreter and distort the figures. Started by the benchmark, this prints
``port N`` once listening, serves until its stdin closes (or SIGTERM, or ``--max-seconds``),
then writes a JSON report of what it accepted, which the throttle check needs.

    python bench/sink_process.py --report FILE [--throttle R | --token-bucket R [--burst B]]
                                 [--greylist FRACTION] [--max-seconds S]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, SupportsIndex

# The sink is test support (tests/support/, not in the wheel): import it from the tests folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.smtp_sink import (
    Greylist,
    Received,
    Rule,
    SmtpSink,
    Throttle,
    TokenBucket,
)


class _SlimLog(list[Received]):
    """Keeps each accepted envelope but not its body: 100,000 bodies would fill the RAM."""

    total_bytes = 0

    def append(self, item: Received) -> None:
        self.total_bytes += len(item.data)
        super().append(dataclasses.replace(item, data=b""))


class _NoLog(list[tuple[int, str]]):
    """Drops the per-command log, which the benchmark does not read."""

    def append(self, item: tuple[int, str]) -> None:
        pass

    def insert(self, index: SupportsIndex, item: tuple[int, str]) -> None:
        pass


def _report(sink: SmtpSink, throttle: Throttle | TokenBucket | None, greylist: Greylist | None,
            log: _SlimLog) -> dict[str, Any]:
    return {
        "accepted": len(sink.received),
        "recipients": sink.recipients(),
        "connections": sink.connections,
        "bytes": log.total_bytes,
        "refused": throttle.refused if throttle else 0,
        "disconnects": throttle.disconnects if throttle else 0,
        "greylisted": len(greylist.deferred) if greylist else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, required=True, help="JSON written at exit")
    parser.add_argument("--throttle", type=float, default=None, metavar="R",
                        help="accept at most R msg/s (451/421 above, as providers do)")
    parser.add_argument("--token-bucket", type=float, default=None, metavar="R",
                        help="allow R msg/s with bursts of --burst (451 above)")
    parser.add_argument("--burst", type=int, default=10, help="token bucket size (default 10)")
    parser.add_argument("--greylist", type=float, default=0.0, metavar="FRACTION",
                        help="answer 451 once to this share of recipients (by address hash)")
    parser.add_argument("--max-seconds", type=float, default=3600.0,
                        help="stop by itself after this long, whatever happens")
    parser.add_argument("--no-pipelining", action="store_true",
                        help="do not offer PIPELINING (RFC 2920) in the EHLO reply")
    args = parser.parse_args()

    throttle: Throttle | TokenBucket | None = None
    if args.throttle:
        throttle = Throttle(args.throttle)
    elif args.token_bucket:
        throttle = TokenBucket(args.token_bucket, burst=args.burst)
    greylist = Greylist(args.greylist) if args.greylist else None
    rules: list[Rule] = [r for r in (greylist, throttle) if r is not None]
    sink = SmtpSink(rules=rules, pipelining=not args.no_pipelining)
    log = _SlimLog()
    sink.received = log
    sink.commands = _NoLog()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the benchmark closes our stdin (or dies)
        stop.set()

    with sink.running_in_thread():
        print(f"port {sink.port}", flush=True)
        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
        stop.wait(args.max_seconds)
    args.report.write_text(json.dumps(_report(sink, throttle, greylist, log)), encoding="utf-8")


if __name__ == "__main__":
    main()
