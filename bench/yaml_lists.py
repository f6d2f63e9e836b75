"""YAML lists against CSV lists: the same readers, every list command, at two sizes.

For each size N a fresh sample project (``init_project``) gets its list as
``lists/subscribers.csv`` and, in a second project, as ``lists/subscribers.yaml``: the same
rows (mixed-case and international addresses, some invalid, duplicates, names in many
scripts, a few unknown languages). Each command then runs in its own process
(``python -m mirage_mailer ...``) in each project; time is wall clock, memory the child's own
peak RSS (``os.wait4``). The import reads a Mailchimp-style export of N new readers into an
empty list of each format. The projects are written by a child of their own: a child's peak
RSS starts from its parent's (fork), so this process stays small.

What matters are the ratios: YAML / CSV at each size (DESIGN.md treats the formats as
equals), and each format's growth from the small size to the large one. Before YAML lists
were read from libyaml's events (``project.yamlrows``) and edited in one pass
(``project.yaml_edit``), a YAML list took 6 to 30 times as long as CSV at 20,000 rows and 3.2
to 4.6 times the memory, which grew with the list; after, 1.2 to 1.7 times as long, the same
memory, flat (docs/design.md has the figures).

    python bench/yaml_lists.py [--sizes 2000,20000] [--commands validate,count,...]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from mirage_mailer.project.scaffold import init_project

ISSUE = "issues/2021-10-partners-meeting"
NAMES = ["José Müller", "Zoë Ørsted", "Łukasz Żółć", "Αλέξης Παπάς", "Иван Петров",
         "محمد علي", "王伟", "Ana-María O'Neil", 'Søren "Sam" Kierkegaard', "Dvořák, Antonín"]
LANGS = ["en", "fr", "de", "", "el", "pt-BR", "EN", "fr-FR"]
DOMAINS = ["example.org", "Example.ORG", "münchen.example", "bücher.example", "uni.example"]
COMMANDS = {
    "validate": ["validate", ISSUE],
    "count": ["subscribers", "count"],
    "add": ["subscribers", "add", "subscribers", "zz@example.org", "--name", "Zed"],
    "remove": ["subscribers", "remove", "subscribers", "zz@example.org"],
    "forget": ["forget", "--yes", "user5@example.org"],
    "import": ["subscribers", "import", "{export}", "--list", "imported"],
    "send": ["send", ISSUE, "--dry-run"],
}


def readers(count: int, seed: int = 7) -> Iterator[tuple[str, str, str]]:
    """(address, name, lang) rows as an office's list has them, problems included."""
    rnd = random.Random(seed)
    seen: list[str] = []
    for n in range(count):
        roll, name, lang = rnd.random(), rnd.choice(NAMES), rnd.choice(LANGS)
        if roll < 0.03:
            email = f"bad-address-{n}"
        elif roll < 0.05:
            email, lang = f"u{n}@example.org", "xx"
        elif roll < 0.10 and seen:
            email = rnd.choice(seen).upper()
        elif roll < 0.20:
            email = f"jösé{n}@{rnd.choice(DOMAINS)}"
        else:
            email = f"User{n}@{rnd.choice(DOMAINS)}"
        seen.append(email)
        yield email, name, lang


def projects_of(root: Path, count: int) -> dict[str, Path]:
    return {"csv": root / f"csv{count}", "yaml": root / f"yaml{count}",
            "export": root / f"export{count}.csv"}


def make_projects(root: Path, count: int) -> None:
    """Two sample projects with the same readers, one as CSV, one as YAML; an export."""
    rows = list(readers(count))
    projects = projects_of(root, count)
    for kind in ("csv", "yaml"):
        folder = projects[kind]
        init_project(folder)
        (folder / "lists/subscribers.csv").unlink()
        target = folder / f"lists/subscribers.{kind}"
        if kind == "csv":
            with target.open("w", encoding="utf-8", newline="") as handle:
                out = csv.writer(handle)
                out.writerow(["email", "name", "lang", "org"])
                out.writerows([e, n, lang, "Org ✓"] for e, n, lang in rows)
            (folder / "lists/imported.csv").write_text("email,name,lang\n", encoding="utf-8")
        else:
            entries = [{"email": e, "name": n, **({"lang": lang} if lang else {}),
                        "org": "Org ✓"} for e, n, lang in rows]
            with target.open("w", encoding="utf-8") as handle:
                yaml.safe_dump({"subscribers": entries}, handle, allow_unicode=True,
                               sort_keys=False)
            (folder / "lists/imported.yaml").write_text("subscribers: []\n", encoding="utf-8")
    with projects["export"].open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["Email Address", "First Name", "Last Name", "Language", "MEMBER_RATING",
                      "OPTIN_TIME"])
        out.writerows([f"new{n}@example.org", "Zoë", "Ørsted", LANGS[n % 3], "2",
                       "2020-01-01 10:00:00"] for n in range(count))


def run(folder: Path, args: list[str]) -> tuple[float, int, int]:
    """(seconds, peak RSS in KiB, exit code) of one command in its own process."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "mirage_mailer", *args], cwd=folder,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss, child.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--commands", default=",".join(COMMANDS))
    parser.add_argument("--make", nargs=2, metavar=("DIR", "ROWS"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.make:
        make_projects(Path(options.make[0]), int(options.make[1]))
        return 0
    sizes = [int(s) for s in options.sizes.split(",")]
    names = options.commands.split(",")
    figures: dict[tuple[str, str, int], tuple[float, int, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            subprocess.run([sys.executable, __file__, "--make", tmp, str(size)], check=True)
            projects = projects_of(Path(tmp), size)
            for name in names:
                args = [str(projects["export"]) if a == "{export}" else a
                        for a in COMMANDS[name]]
                for kind in ("csv", "yaml"):
                    figures[kind, name, size] = run(projects[kind], args)
    print(f"{'command':9} {'rows':>6} {'CSV s':>7} {'YAML s':>7} {'ratio':>6}  "
          f"{'CSV MiB':>7} {'YAML MiB':>8} {'ratio':>6}  exit")
    for name in names:
        for size in sizes:
            (ct, cm, cc), (yt, ym, yc) = figures["csv", name, size], figures["yaml", name, size]
            print(f"{name:9} {size:>6} {ct:7.2f} {yt:7.2f} {yt / ct:6.2f}  {cm / 1024:7.1f} "
                  f"{ym / 1024:8.1f} {ym / cm:6.2f}  {cc}/{yc}")
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"\ngrowth {small} -> {large} rows (time, memory):")
        for name in names:
            for kind in ("csv", "yaml"):
                (st, sm, _), (lt, lm, _) = figures[kind, name, small], figures[kind, name, large]
                print(f"  {name:9} {kind:4} {lt / st:5.2f}x  {lm / sm:5.2f}x")
    failed = [key for key, (_, _, code) in figures.items() if code not in (0, 2)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
