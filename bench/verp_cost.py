"""The cost of VERP: one signed return path per recipient, against building the message.

Both run in this process on the sample issue, interleaved in rounds, and the result is a
ratio (the VERP address's share of the per-message work), so it does not depend on how fast
this machine is.

    python bench/verp_cost.py [--recipients 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mirage_mailer.compose.message import MessageFactory, Personal
from mirage_mailer.project.scaffold import init_project
from mirage_mailer.services.loader import open_project, render
from mirage_mailer.services.verp import Verp
from mirage_mailer.util.tokens import Signer

ISSUE = "issues/2021-10-partners-meeting"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mirage-bench-"))
    try:
        init_project(tmp / "p")
        project = open_project(tmp / "p/mirage.yaml", tmp / "p" / ISSUE)
        rendered = render(project, {"organisation"})
        factory = MessageFactory(project.settings, project.issue.id, rendered, Signer(b"k" * 32))
        crowd = [Personal(f"reader{n}@example.org", f"Reader {n}", "subscribers", {})
                 for n in range(args.recipients)]
        sender = Verp("bounces", "+", "example.org", [b"k" * 32, b"o" * 32]).sender(
            project.issue.id)
        builds, verps = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            for person in crowd:
                factory.build(person, "en")
            builds.append(time.perf_counter() - started)
            started = time.perf_counter()
            for row, person in enumerate(crowd, start=1):
                sender(row, person.email)
            verps.append(time.perf_counter() - started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    build, verp = statistics.median(builds), statistics.median(verps)
    print(f"message build: {build / args.recipients * 1e6:6.1f} us per message (median of "
          f"{args.rounds} rounds of {args.recipients})")
    print(f"VERP address:  {verp / args.recipients * 1e6:6.1f} us per message")
    print(f"VERP / build:  {verp / build:.3f} (the share VERP adds to building a message)")


if __name__ == "__main__":
    main()
