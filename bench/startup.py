"""Time to the first message: from spawning ``send ISSUE --yes`` to the sink's first MAIL FROM.

Each round copies a fresh sample project (``init_project``, its own five readers, the
transport pointed at 127.0.0.1), spawns ``python -m mirage_mailer send ISSUE --yes`` and
timestamps, at a small SMTP sink in a thread of this process, the first ``MAIL FROM`` (the
first transaction) and the end of the run. Both processes read the same monotonic clock.
Interpreter start-up is the baseline, timed in the same run the same way (spawn to exit):
``python -c pass`` and ``python -c 'import aiosmtplib'`` (the least a sender must load), so the
ratio travels between machines. Byte code is cached as for an installed package (an untimed
``validate`` writes it first). ``--importtime`` adds a ``python -X importtime`` summary of what
``send --dry-run`` imports (own time per package, the largest cumulative modules);
``--maildir`` also times the sample's own transport (the first file in ``outbox/new``).
``--cold`` removes the values ``util.kept`` keeps between runs (the templates' CSS and code,
dates) before every send: a first run after an install, an upgrade or a template change.
``--callgrind`` counts the instructions (valgrind's callgrind, ``PYTHONHASHSEED=0``) of
``send --dry-run``, ``--help`` and the two baselines: a figure a busy machine does not move,
for before/after comparisons on a shared host (a few minutes: valgrind runs 50x slower, so
the counted sends run through ``startup_marks.py``, which lifts the template sandbox's time
budget). ``--stages`` splits ``send --yes`` up to the first MAIL FROM into its stages
(imports, project, render, store, plan, connect) with marks in the process
(``startup_marks.py``): CPU and wall clock per stage, and with ``--callgrind`` instructions.

    python bench/startup.py [--rounds 5] [--importtime] [--maildir] [--callgrind] [--stages]
                            [--cold]

Target (issue 13): first message <= 0.5 s for the sample project. Exit 1 when a send failed
or the sink saw no message; a missed target is only reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from mirage_mailer.project.scaffold import init_project

ISSUE = "issues/2021-10-partners-meeting"
TARGET_SECONDS = 0.5
MARKED = str(Path(__file__).with_name("startup_marks.py"))  # a send with stage marks
UNBOUNDED = {"MIRAGE_BENCH_UNBOUNDED": "1"}  # no sandbox time budget (under valgrind)


class FirstMailSink:
    """The least SMTP server that accepts mail, noting when each MAIL FROM arrives."""

    def __init__(self) -> None:
        self.mail_times: list[float] = []
        self.messages = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sink", daemon=True)

    def __enter__(self) -> FirstMailSink:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def reset(self) -> None:
        self.mail_times.clear()
        self.messages = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"MAIL":
                    self.mail_times.append(time.perf_counter())
                    writer.write(b"250 ok\r\n")
                elif verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-sink\r\n250-8BITMIME\r\n250-PIPELINING\r\n"
                                 b"250 SMTPUTF8\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go on\r\n")
                    await writer.drain()
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    self.messages += 1
                    writer.write(b"250 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:  # RCPT, RSET, NOOP
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def make_project(root: Path, url: str) -> None:
    init_project(root)
    config = root / "mirage.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["transport"].update(url=url, starttls="never")
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                      encoding="utf-8")


def _env() -> dict[str, str]:
    """As an installed package runs: byte code cached (pip compiles it at install time)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("MIRAGE_SMTP") and k != "PYTHONDONTWRITEBYTECODE"}


def spawn(argv: list[str], cwd: Path,
          first: Callable[[], float | None] | None = None) -> tuple[float, float | None, int]:
    """(seconds to exit, seconds to the first message or None, exit code)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode:
        sys.stderr.write(err.decode(errors="replace"))
    at = first() if first is not None else None
    return wall, (None if at is None else at - started), proc.returncode


def first_file(outbox: Path) -> Callable[[], float | None]:
    """The modification time of the first message file, on the perf_counter clock."""
    offset = time.time() - time.perf_counter()

    def when() -> float | None:
        files = list((outbox / "new").glob("*")) if (outbox / "new").is_dir() else []
        return min(f.stat().st_mtime for f in files) - offset if files else None
    return when


def importtime(project: Path,
               top: int = 12) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """What ``send --dry-run`` imports: (own us, top-level package) summed, and (cumulative
    us, module) of the largest; each largest first."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "mirage_mailer", "send",
                           ISSUE, "--dry-run"], capture_output=True, text=True, check=True,
                          env=_env(), cwd=project)
    packages: dict[str, int] = {}
    modules = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, total, name = line.removeprefix("import time:").split("|")
        package = name.strip().split(".")[0]
        packages[package] = packages.get(package, 0) + int(own)
        modules.append((int(total), name.rstrip()))
    return (sorted(((v, k) for k, v in packages.items()), reverse=True)[:top],
            sorted(modules, reverse=True)[:top])


def instructions(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> int:
    """Instructions run by ``argv`` under callgrind (0 when valgrind is not installed)."""
    parts = stage_instructions(argv, cwd, env, dump=False)
    return sum(parts)


def stage_instructions(argv: list[str], cwd: Path, env: dict[str, str] | None = None, *,
                       dump: bool = True) -> list[int]:
    """Instructions of ``argv`` under callgrind, cut at each stage mark (``dump``): one count
    a stage, the last one from the last mark to the exit ([] without valgrind)."""
    if shutil.which("valgrind") is None:
        return []
    out = cwd / "callgrind.out"
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                           *(["--dump-before=getppid"] if dump else []), *argv],
                          cwd=cwd, env={**_env(), "PYTHONHASHSEED": "0", **(env or {})},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    files = sorted(cwd.glob("callgrind.out*"),
                   key=lambda f: int(f.suffix[1:]) if f.suffix[1:].isdigit() else 1 << 30)
    counts = []
    for file in files:
        for line in file.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                counts.append(int(line.split()[1]))
        file.unlink()
    if proc.returncode:  # a run that stopped early would count too few
        raise RuntimeError(f"{' '.join(argv[1:])}: exit {proc.returncode}: {proc.stderr[-500:]}")
    return counts


def stage_marks(argv: list[str], cwd: Path) -> list[tuple[str, float, float]] | None:
    """(stage, CPU seconds, wall seconds) of one marked run; the first stage's wall clock
    counts from the spawn (parent and child read the same monotonic clock)."""
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        return None
    marks = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith('{"mark"')]
    stages = []
    cpu, wall = 0.0, started
    for mark in marks:
        stages.append((mark["mark"], mark["cpu"] - cpu, mark["wall"] - wall))
        cpu, wall = mark["cpu"], mark["wall"]
    return stages


def print_stages(rounds: list[list[tuple[str, float, float]]], counts: list[int]) -> None:
    names = [name for name, _, _ in rounds[0]]
    print(f"\nsend {ISSUE} --yes, up to the first MAIL FROM, by stage (best of {len(rounds)} "
          "for each; CPU includes interpreter start-up in the first stage):")
    print(f"  {'stage':34} {'CPU ms':>8} {'wall ms':>8} {'instructions':>14}")
    for i, name in enumerate(names):
        cpu = min(r[i][1] for r in rounds if len(r) > i and r[i][0] == name)
        wall = min(r[i][2] for r in rounds if len(r) > i and r[i][0] == name)
        count = f"{counts[i] / 1e6:12.0f} M" if i < len(counts) else ""
        print(f"  {name:34} {cpu * 1000:8.1f} {wall * 1000:8.1f} {count:>14}")
    if counts:
        before = sum(counts[:len(names)])
        print(f"  {'total to the first MAIL FROM':34} {'':8} {'':8} {before / 1e6:12.0f} M")
        print(f"  {'(after it, to the exit)':34} {'':8} {'':8} "
              f"{sum(counts[len(names):]) / 1e6:12.0f} M")


def forget_kept() -> None:
    """Remove the measured package's kept values (the bench runs its interpreter)."""
    from mirage_mailer.util import kept

    directory = kept.store_dir()
    if directory is not None:
        for path in directory.glob(kept.file_name("*")):
            path.unlink(missing_ok=True)


def best(values: list[float]) -> float:
    return min(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--importtime", action="store_true", help="print import summaries")
    parser.add_argument("--maildir", action="store_true",
                        help="also time the sample's Maildir transport")
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions under valgrind (slow; load-independent)")
    parser.add_argument("--stages", action="store_true",
                        help="split the send up to its first message into stages")
    parser.add_argument("--cold", action="store_true",
                        help="remove the kept values (util.kept) before every send")
    args = parser.parse_args()
    fresh = forget_kept if args.cold else (lambda: None)
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="mirage-startup-"))
    failed = False
    stages: tuple[list[list[tuple[str, float, float]]], list[int]] = ([], [])
    times: dict[str, list[float]] = {k: [] for k in (
        "python -c pass", "python -c 'import aiosmtplib'", "mirage-mailer --version",
        "send: first MAIL FROM", "send: exit", "maildir: first file", "maildir: exit")}
    try:
        with FirstMailSink() as sink:
            template = tmp / "template"
            make_project(template, f"smtp://127.0.0.1:{sink.port}")
            spawn([py, "-m", "mirage_mailer", "validate", ISSUE], template)  # writes .pyc
            for n in range(args.rounds):  # alternate, so a busy moment hits every figure
                times["python -c pass"].append(spawn([py, "-c", "pass"], tmp)[0])
                times["python -c 'import aiosmtplib'"].append(
                    spawn([py, "-c", "import aiosmtplib"], tmp)[0])
                times["mirage-mailer --version"].append(
                    spawn([py, "-m", "mirage_mailer", "--version"], tmp)[0])
                root = tmp / f"smtp{n}"
                shutil.copytree(template, root)
                sink.reset()
                fresh()
                wall, first, code = spawn(
                    [py, "-m", "mirage_mailer", "send", ISSUE, "--yes"], root,
                    lambda: min(sink.mail_times) if sink.mail_times else None)
                if code or first is None or sink.messages != 5:
                    failed = True
                    print(f"round {n}: exit {code}, {sink.messages} message(s) at the sink")
                    continue
                times["send: first MAIL FROM"].append(first)
                times["send: exit"].append(wall)
                if args.maildir:
                    root = tmp / f"maildir{n}"
                    init_project(root)
                    wall, first, code = spawn([py, "-m", "mirage_mailer", "send", ISSUE,
                                               "--yes"], root, first_file(root / "outbox"))
                    if code or first is None:
                        failed = True
                        continue
                    times["maildir: first file"].append(first)
                    times["maildir: exit"].append(wall)
            if args.stages:
                rounds: list[list[tuple[str, float, float]]] = []
                for n in range(args.rounds):
                    root = tmp / f"stages{n}"
                    shutil.copytree(template, root)
                    fresh()
                    marked = stage_marks([py, MARKED, "send", ISSUE, "--yes"], root)
                    failed = failed or marked is None
                    if marked:
                        rounds.append(marked)
                counted: list[int] = []
                if args.callgrind:
                    root = tmp / "stages-counted"
                    shutil.copytree(template, root)
                    fresh()
                    counted = stage_instructions([py, MARKED, "send", ISSUE, "--yes"], root,
                                                 UNBOUNDED)
                stages = (rounds, counted)
        base = best(times["python -c 'import aiosmtplib'"])
        print(f"best of {args.rounds} rounds (spawn to event), ratio to "
              "`python -c 'import aiosmtplib'`:")
        for label, values in times.items():
            if values:
                print(f"  {label:34} {best(values) * 1000:7.0f} ms  {best(values) / base:5.2f}x"
                      f"   (median {sorted(values)[len(values) // 2] * 1000:.0f} ms)")
        first_best = best(times["send: first MAIL FROM"])
        print(f"target: first message <= {TARGET_SECONDS} s: "
              f"{'pass' if first_best <= TARGET_SECONDS else 'FAIL'} ({first_best:.3f} s)")
        if stages[0]:
            print_stages(*stages)
        if args.importtime:
            packages, modules = importtime(template)
            print(f"\npython -X importtime -m mirage_mailer send {ISSUE} --dry-run: "
                  f"{sum(us for us, _ in packages) / 1000:.0f} ms in the {len(packages)} "
                  "largest packages (inflated by the timing itself)")
            print("  own time: " + ", ".join(f"{name} {us / 1000:.0f}"
                                             for us, name in packages))
            for total, name in modules:
                print(f"  {total / 1000:7.1f} ms  {name}")
        if args.callgrind:
            counts = {label: instructions(argv, template, UNBOUNDED) for label, argv in (
                ("python -c pass", [py, "-c", "pass"]),
                ("python -c 'import aiosmtplib'", [py, "-c", "import aiosmtplib"]),
                ("mirage-mailer --help", [py, "-m", "mirage_mailer", "--help"]))}
            fresh()
            counts["send --dry-run"] = instructions([py, MARKED, "send", ISSUE, "--dry-run"],
                                                    template, UNBOUNDED)
            base_count = counts["python -c 'import aiosmtplib'"]
            print("\ninstructions (callgrind, PYTHONHASHSEED=0), ratio to "
                  "`python -c 'import aiosmtplib'`:")
            for label, count in counts.items():
                print(f"  {label:34} {count / 1e6:9.0f} M  "
                      f"{count / base_count if base_count else float('nan'):5.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
