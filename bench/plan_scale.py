"""Planning a large list: ``validate``, ``send --dry-run`` and the plan written into the store.

Each measured run is ``python -m mirage_mailer ...`` in a fresh process on a copy of the sample
project (``init_project``) whose list holds N generated rows, as real lists look: a few big
mail providers and a long tail of organisation domains (some international), mixed case,
``+tags``, names with accents, five languages and no language, about 1 % duplicates (case
folded, some far apart) and 0.3 % bad rows (broken addresses, a 255-octet one, unknown
language codes). Time is wall clock from spawn to exit (start-up and rendering included), peak
RSS and CPU time (user + system) are the child's own (``os.wait4``): on a shared machine the
CPU time says what the run cost when the wall clock also counts other people's work. A plain
``csv.reader`` pass over the same file, timed in this process, gives the cost per row as a
ratio that does not depend on the machine. For a run that delivers, "1st msg" is the
time from spawn to the first message in the Maildir outbox (its file's mtime): the plan
committed and one message out, without what follows it in a ``--limit 1`` run (the final
counts, the wait for the WAL checkpoint at exit), which a real send overlaps with sending.

The stages, in order, on one project (so the later ones meet the store the earlier made):

    validate                 no store yet: lists, templates, the plan's figures
    send --dry-run           no store yet: the plan, and every message built (not sent)
    send --yes --limit 1     the plan written into the store (all N rows), then one message
                             to the Maildir: what a real send does before its first message
    validate (store full)    the same check against a store that holds every row
    send --limit 1 (again)   a rerun: the plan reconciled with N stored rows

    python bench/plan_scale.py [--recipients 1000000] [--stages validate,dry-run,store]
    python bench/plan_scale.py --recipients 100000 --profile bench/results/prof

Targets (issue 13): validate and the plan into the store each <= 10 s and <= 300 MB at N =
1,000,000. Exit 1 when a command failed unexpectedly; a missed target is only reported.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from mirage_mailer.project.scaffold import init_project

ISSUE = "issues/2021-10-partners-meeting"
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SECONDS = 10.0
TARGET_MIB = 300.0
TARGETED = ("validate", "store")  # the stages the issue sets a target for
BIG = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "gmx.de", "web.de",
       "orange.fr", "free.fr", "libero.it", "yahoo.gr", "otenet.gr", "cytanet.com.cy",
       "icloud.com", "protonmail.com", "t-online.de")
TLDS = ("eu", "org", "de", "fr", "it", "gr", "com.cy", "es", "nl", "be", "at", "pt")
WORDS = ("social", "migrant", "support", "refugee", "welcome", "inclusion", "network",
         "employment", "training", "city", "solidarity", "integration", "community")
IDN = ("münchen-hilfe.de", "société-accueil.fr", "αλληλεγγύη.gr", "straße-verein.at")
FIRST = ("Maria", "Jean", "Amina", "Peter", "Eleni", "Giorgos", "Sofía", "Zoë", "Łukasz",
         "Ahmed", "Fatima", "Jürgen", "Chloé", "Nikos", "Anna", "Omar", "Lucía", "Björn")
LAST = ("Georgiou", "Dupont", "Haddad", "Novak", "Papadopoulou", "Müller", "García",
        "Rossi", "Kowalski", "Nielsen", "Ioannou", "Martin", "Bernard", "Şahin")
LANGS = ("en",) * 8 + ("fr",) * 4 + ("de",) * 2 + ("el", "pt-BR", "EN") + ("",) * 5
BAD = ("no-at-sign.example.org", "two@@example.org", "dots..here@example.org",
       "trailing.@example.org", "space in@example.org", "a@-bad-.org", "a@example..org",
       "x" * 65 + "@example.org", "y" * 64 + "@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 63
       + ".org", "@example.org", "semi;colon@example.org")


def generate(path: Path, recipients: int, seed: int = 13) -> dict[str, int]:
    """Write the list; returns what it holds (rows, duplicates, bad rows, domains)."""
    rnd = random.Random(seed)
    tail = [f"{rnd.choice(WORDS)}-{rnd.choice(WORDS)}{n}.{rnd.choice(TLDS)}"
            for n in range(max(50, recipients // 25))]
    counts = {"rows": 0, "duplicates": 0, "bad": 0}
    domains: set[str] = set()
    earlier: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "lang", "organisation"])
        for n in range(recipients):
            draw = rnd.random()
            lang = rnd.choice(LANGS)
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            if draw < 0.003:
                email = rnd.choice(BAD)
                counts["bad"] += 1
            elif draw < 0.004:
                email, lang = f"reader{n}@example.org", rnd.choice(("xx", "english", "zz-ZZ"))
                counts["bad"] += 1
            elif draw < 0.014 and earlier:
                email = rnd.choice(earlier)
                email = email.upper() if rnd.random() < 0.5 else email
                counts["duplicates"] += 1
            else:
                pick = rnd.random()
                if pick < 0.55:
                    domain = rnd.choice(BIG)
                elif pick < 0.56:
                    domain = rnd.choice(IDN)
                else:  # a long tail: most organisations have few readers on a list
                    domain = tail[min(int(rnd.paretovariate(0.6)) - 1, len(tail) - 1)
                                  if rnd.random() < 0.5 else rnd.randrange(len(tail))]
                local = f"{first}.{last}{n}".lower().encode("ascii", "ignore").decode()
                if rnd.random() < 0.05:
                    local += f"+news{n % 7}"
                if rnd.random() < 0.05:
                    domain = domain.upper()
                email = f"{local or 'reader'}@{domain}"
                domains.add(domain.lower())
                if len(earlier) < 10_000 and rnd.random() < 0.02:
                    earlier.append(email)
            name = f"{first} {last}" if rnd.random() < 0.85 else ""
            writer.writerow([email, name, lang, f"Organisation {n % 997}"])
            counts["rows"] += 1
    counts["domains"] = len(domains)
    return counts


def make_project(root: Path, recipients: int) -> dict[str, int]:
    init_project(root)
    held = generate(root / "lists" / "subscribers.csv", recipients)
    config = root / "mirage.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["transport"].update(rate_per_second=None, rate_per_hour=None)
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                      encoding="utf-8")
    return held


def csv_baseline(path: Path, rounds: int = 3) -> float:
    """Seconds per row of the cheapest possible pass: ``csv.reader`` and nothing else."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        with path.open(encoding="utf-8", newline="") as handle:
            rows = sum(1 for _ in csv.reader(handle))
        best = min(best, time.perf_counter() - started)
    return best / max(1, rows - 1)


@dataclass
class Run:
    stage: str
    command: str
    exit_code: int
    wall: float
    cpu: float
    peak_mib: float
    last_line: str
    first_message: float | None = None  # seconds from spawn to the first message delivered


def run(root: Path, stage: str, args: list[str], profile: Path | None) -> Run:
    prefix = ["-m", "cProfile", "-o", str(profile / f"{stage}.prof")] if profile else []
    argv = [sys.executable, *prefix, "-m", "mirage_mailer", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRAGE_SMTP")}
    out, err = root.parent / f"{stage}.out", root.parent / f"{stage}.err"
    with out.open("wb") as o, err.open("wb") as e:
        started, spawned = time.perf_counter(), time.time()
        proc = subprocess.Popen(argv, cwd=root, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = out.read_text(encoding="utf-8", errors="replace").splitlines()
    errors = err.read_text(encoding="utf-8", errors="replace").splitlines()
    shown = lines[-1] if lines else (errors[-1] if errors else "(no output)")
    return Run(stage, shlex.join(["mirage-mailer", *args]), proc.returncode, wall,
               usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, shown,
               first_delivered(root / "outbox", spawned))


def first_delivered(outbox: Path, spawned: float) -> float | None:
    """Seconds from ``spawned`` (wall clock) to the oldest message the run put in the Maildir
    outbox: what a million-row send costs before its first reader gets the issue (the plan
    committed, then one message built and written), without the tail after it (the counts,
    the WAL checkpoint's wait at exit)."""
    times = [entry.stat().st_mtime for folder in ("new", "cur")
             if (outbox / folder).is_dir() for entry in (outbox / folder).iterdir()]
    times = [t for t in times if t >= spawned]
    return min(times) - spawned if times else None


STAGES: dict[str, tuple[str, list[str], tuple[int, ...]]] = {
    # name: (label, arguments, exit codes that are expected)
    "validate": ("validate", ["validate", ISSUE], (2,)),  # the list has bad rows: exit 2
    "dry-run": ("send --dry-run", ["send", ISSUE, "--dry-run"], (0,)),
    "store": ("send --yes --limit 1", ["send", ISSUE, "--yes", "--limit", "1"], (0,)),
    "validate-stored": ("validate (store full)", ["validate", ISSUE], (2,)),
    "store-again": ("send --limit 1 (rerun)", ["send", ISSUE, "--yes", "--limit", "1"], (0,)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated, from {', '.join(STAGES)}")
    parser.add_argument("--profile", type=Path, help="write <stage>.prof (cProfile) here")
    parser.add_argument("--keep", action="store_true", help="keep the generated project")
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(unknown)}")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        args.profile = args.profile.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="mirage-plan-"))
    root = tmp / "p"
    failed = False
    try:
        started = time.perf_counter()
        held = make_project(root, args.recipients)
        print(f"list: {held['rows']:,} rows, {held['duplicates']:,} duplicates, "
              f"{held['bad']:,} bad rows, {held['domains']:,} domains "
              f"(generated in {time.perf_counter() - started:.1f}s) in {root}")
        per_row = csv_baseline(root / "lists" / "subscribers.csv")
        print(f"csv.reader alone: {per_row * 1e6:.2f} us per row "
              f"({per_row * args.recipients:.2f}s for the list)")
        runs = []
        for stage in stages:
            label, argv, expected = STAGES[stage]
            result = run(root, stage, argv, args.profile)
            result.stage = label
            runs.append(result)
            if result.exit_code not in expected:
                failed = True
            print(f"$ cd {root} && {result.command}\n  -> exit {result.exit_code}: "
                  f"{result.last_line[:150]}")
        print()
        print(f"{'stage':24} {'wall s':>8} {'cpu s':>7} {'peak MiB':>9} {'us/row':>8} "
              f"{'x csv':>7} {'1st msg s':>9}  target")
        for result, stage in zip(runs, stages, strict=True):
            us = result.wall / max(1, args.recipients) * 1e6
            target = ""
            if stage in TARGETED:
                ok = result.wall <= TARGET_SECONDS and result.peak_mib <= TARGET_MIB
                target = (f"<= {TARGET_SECONDS:.0f} s, <= {TARGET_MIB:.0f} MB: "
                          f"{'pass' if ok else 'FAIL'}")
            first = "" if result.first_message is None else f"{result.first_message:.2f}"
            print(f"{result.stage:24} {result.wall:8.2f} {result.cpu:7.2f} "
                  f"{result.peak_mib:9.1f} {us:8.2f} {us / (per_row * 1e6):7.1f} {first:>9}"
                  f"  {target}")
        if args.recipients != 1_000_000:
            print(f"(targets are for N = 1,000,000; this run had N = {args.recipients:,})")
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"plan_scale-{args.recipients}-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps({"recipients": args.recipients, "list": held,
                                   "csv_us_per_row": per_row * 1e6,
                                   "runs": [asdict(r) for r in runs]}, indent=2),
                       encoding="utf-8")
        print(f"written: {out}")
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
