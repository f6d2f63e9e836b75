"""What DKIM signing costs: per message, and for the whole send.

1. Per message, on the same personalised messages of the sample issue (both languages), in
   the same run: building a message, our signer (``compose/dkim.py``: OpenSSL's RSA through
   cryptography, the constant headers' hash kept per language) and dkimpy's ``dkim.sign``
   (pure-Python RSA) with the same key, canonicalisation and headers; then our signer's parts
   (body hash with and without the language's constant runs, headers, the private-key
   operation) and the header hash without its cache.
   Both signatures are checked with ``dkim.verify`` first: a fast wrong signature counts for
   nothing.
2. The pipeline: the real ``send`` of N recipients to an SMTP sink in its own process, with
   and without ``dkim:``, against the raw aiosmtplib loop of ``bench/send_throughput.py``
   (whose sink, project and loops are reused here), rounds alternating, best of each; and
   the same-path loop (send's own transmission code, one prebuilt message) with and without
   signing each message (in batches on the worker thread as ``send`` does, one hand-off per
   message as before, or inline), which isolates the signing from everything else a send
   does. Each send reports its CPU, system time and context switches a message.

    python bench/dkim_cost.py [--messages 400] [--recipients 10000] [--rounds 2]
    python bench/dkim_cost.py --cost-only

Exit 1 when a signature does not verify or mail went missing; a missed speed target (issue
12: signing keeps the pipeline at >= 0.8 of the raw loop) is only reported.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import os
import resource
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mirage_mailer.compose.dkim import DkimSigner, canonical_body, canonical_header
from mirage_mailer.compose.message import MessageFactory, Personal
from mirage_mailer.delivery import Envelope
from mirage_mailer.delivery.classify import Verdict
from mirage_mailer.delivery.connection import Connection, ConnectSettings
from mirage_mailer.services.loader import open_project, render
from mirage_mailer.services.presign import presigned
from mirage_mailer.util.tokens import Signer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import send_throughput as st  # the sink, the project, the raw loop

DOMAIN, SELECTOR, ENV = "mirageproject.eu", "bench", "MIRAGE_BENCH_DKIM_KEY"
HEADERS = [b"from", b"reply-to", b"subject", b"mime-version", b"content-type",
           b"content-language", b"list-id", b"list-unsubscribe-post", b"to", b"date",
           b"message-id", b"list-unsubscribe"]
TARGET_RAW_RATIO = 0.8


def record(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def verifies(message: bytes, key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bool:
    txt = record(key)
    return bool(dkim.verify(message, dnsfunc=lambda _name, timeout=5: txt))


def factory_for(root: Path) -> MessageFactory:
    project = open_project(root / "mirage.yaml", root / st.ISSUE)
    rendered = render(project, {"organisation"})
    return MessageFactory(project.settings, project.issue.id, rendered, Signer(b"bench"))


def taught(signer: DkimSigner, factory: MessageFactory) -> DkimSigner:
    """``signer`` told each language's constant body runs, as ``prepare_issue`` does."""
    for skeleton in factory.skeletons.values():
        signer.body.learn(skeleton.constant_runs())
    return signer


def messages(count: int) -> tuple[list[bytes], MessageFactory]:
    """``count`` personalised messages of the sample issue, every 4th in French."""
    work = Path(tempfile.mkdtemp(prefix="mirage-dkim-msgs-"))
    try:
        factory = factory_for(st.make_project(work / "p", 10, 4))
        return [factory.build(Personal(st.address(n), f"Réader {n}", "subscribers",
                                       {"organisation": f"Organisation {n % 97}"}),
                              "fr" if n % 4 == 3 else "en") for n in range(count)], factory
    finally:
        shutil.rmtree(work, ignore_errors=True)


def per_message(fn: Callable[[bytes], Any], batch: list[bytes], rounds: int = 3) -> float:
    """Best-of-rounds microseconds per message (other work only ever slows a round down)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for message in batch:
            fn(message)
        best = min(best, time.perf_counter() - started)
    return best / len(batch) * 1e6


def cost_mode(count: int) -> bool:
    batch, factory = messages(count)
    print(f"== per message: {count} personalised messages of the sample issue "
          f"({statistics.mean(map(len, batch)) / 1024:.1f} KiB on average)")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    ours = taught(DkimSigner(DOMAIN, SELECTOR, key), factory)

    def theirs(message: bytes) -> bytes:
        return dkim.sign(message, SELECTOR.encode(), DOMAIN.encode(), pem,
                         canonicalize=(b"relaxed", b"relaxed"), include_headers=HEADERS)

    ok = True
    for name, signed in (("ours", ours.sign(batch[0])), ("dkimpy", theirs(batch[0]) + batch[0]),
                         ("ours, fr", ours.sign(batch[3]))):
        good = verifies(signed, key)
        print(f"  dkim.verify of {name}: {'pass' if good else 'FAIL'}")
        ok = ok and good
    factory_note = "(building one message, for scale: bench/build_speed.py)"
    ours_us = per_message(ours.sign, batch)
    theirs_us = per_message(theirs, batch[: max(20, count // 10)], rounds=2)
    print(f"  our signer:      {ours_us:8.1f} µs a message (2048-bit RSA, OpenSSL)")
    print(f"  dkimpy dkim.sign: {theirs_us:8.1f} µs a message (pure-Python RSA): "
          f"{theirs_us / ours_us:.1f}x ours")

    digest = b"\0" * 32
    rsa_us = per_message(lambda _m: key.sign(digest, padding.PKCS1v15(),
                                             Prehashed(hashes.SHA256())), batch)
    bodies = iter([m.partition(b"\n\n")[2] for m in batch] * 3)
    full_us = per_message(lambda _m: hashlib_sha256(canonical_body(next(bodies))), batch)
    bodies = iter([m.partition(b"\n\n")[2] for m in batch] * 3)
    body_us = per_message(lambda _m: ours.body.digest(next(bodies)), batch)
    heads = [m.partition(b"\n\n")[0].split(b"\n") for m in batch]
    uncached_us = per_message(lambda m: hashlib_sha256(b"".join(
        canonical_header(line) for line in m.partition(b"\n\n")[0].split(b"\n"))), batch)
    print(f"    of which: RSA private-key operation {rsa_us:.1f} µs; body canonicalised and "
          f"hashed {body_us:.1f} µs (the constant runs' canonical form kept per language; "
          f"all of it canonicalised anew: {full_us:.1f} µs); the rest (parsing, headers, "
          f"base64) {max(0.0, ours_us - rsa_us - body_us):.1f} µs")
    print(f"    every header canonicalised and hashed anew, no cache: {uncached_us:.1f} µs a "
          f"message ({len(heads[0])} header lines): what keeping the constant headers' hash "
          "per language can save at most")
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_signer = taught(DkimSigner(DOMAIN, SELECTOR, ed), factory)
    ed_ok = verifies(ed_signer.sign(batch[0]), ed)
    ok = ok and ed_ok
    print(f"  ed25519-sha256 (RFC 8463), for comparison: {per_message(ed_signer.sign, batch):.1f}"
          f" µs a message; dkim.verify: {'pass' if ed_ok else 'FAIL'}")
    for bits in (1024, 3072):
        other = taught(DkimSigner(DOMAIN, SELECTOR, rsa.generate_private_key(
            public_exponent=65537, key_size=bits)), factory)
        print(f"  {bits}-bit RSA: {per_message(other.sign, batch[:100]):.1f} µs a message")
    threads_mode(ours, batch)
    print(f"  {factory_note}")
    return ok


def hashlib_sha256(data: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(data).digest()


def threads_mode(signer: DkimSigner, batch: list[bytes]) -> None:
    """Whether the RSA operation leaves the GIL (what lets ``send`` sign on a worker thread
    while the event loop goes on): with a 2 s switch interval, a thread that kept the GIL
    through each signature would starve the main thread; then two signing threads vs one
    (a gain only where a core is free)."""
    stop = threading.Event()
    signed = 0

    def background() -> None:
        nonlocal signed
        while not stop.is_set():
            signer.sign(batch[0])
            signed += 1

    before = sys.getswitchinterval()
    sys.setswitchinterval(2.0)
    worker = threading.Thread(target=background)
    worker.start()
    time.sleep(0.05)
    started, spins = time.perf_counter(), 0
    while time.perf_counter() - started < 0.5:
        spins += 1
    stop.set()
    worker.join()
    sys.setswitchinterval(before)
    print(f"  GIL during signing: the main thread ran {spins:,} loop turns in 0.5 s while a "
          f"thread made {signed} signatures: "
          f"{'released' if spins > 100_000 and signed > 5 else 'HELD'}")
    one = per_message(signer.sign, batch, rounds=2)
    with ThreadPoolExecutor(2) as pool:
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            list(pool.map(signer.sign, batch))
            best = min(best, time.perf_counter() - started)
    two_us = best / len(batch) * 1e6
    print(f"  two signing threads: {two_us:.1f} µs a message vs {one:.1f} on one "
          f"({one / two_us:.2f}x; {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.2f})")


# ------------------------------------------------------------------------------ pipeline


def add_dkim(root: Path) -> None:
    config = root / "mirage.yaml"
    config.write_text(config.read_text(encoding="utf-8") + f"\ndkim:\n  domain: {DOMAIN}\n"
                      f"  selector: {SELECTOR}\n  key_env: {ENV}\n", encoding="utf-8")


def send_run(kind: str, work: Path, name: str, recipients: int, concurrency: int,
             signed: bool) -> tuple[st.SendRun, st.SinkReport, Path]:
    root = st.make_project(work / name, recipients, concurrency)
    if signed:
        add_dkim(root)
    with st.Sink(kind, work / f"{name}-sink") as sink:
        st.point_at(root, sink.url)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = st.run_send(root, timeout=120 + recipients / 20)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the send, reaped by wait4
        got = sink.stop()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    system = (after.ru_stime - before.ru_stime) / recipients * 1e6
    switches = [(getattr(after, f) - getattr(before, f)) / recipients
                for f in ("ru_nvcsw", "ru_nivcsw")]
    print(f"  CPU time of the send: {cpu:.2f} s = {cpu / recipients * 1e6:.0f} µs a message, "
          f"{system:.0f} of them in the kernel; {switches[0]:.2f} voluntary and "
          f"{switches[1]:.2f} forced context switches a message "
          f"({'signed' if signed else 'unsigned'}; the load of other work does not inflate "
          "CPU time as much as wall time)")
    return run, got, root


def per_message_presigned(envelopes: Iterator[Envelope], sign: Callable[[bytes], bytes],
                          ahead: int = 16) -> Iterator[Envelope]:
    """The earlier ``presign``: one future a message, 16 ahead (for comparison)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="mirage-dkim")
    waiting: deque[tuple[Envelope, Future[bytes]]] = deque()
    try:
        for envelope in envelopes:
            waiting.append((envelope, pool.submit(sign, envelope.data)))
            if len(waiting) >= ahead:
                done, signature = waiting.popleft()
                yield dataclasses.replace(done, data=signature.result())
        while waiting:
            done, signature = waiting.popleft()
            yield dataclasses.replace(done, data=signature.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


async def signing_loop(port: int, sender: str, message: bytes, recipients: int,
                       concurrency: int, sign: Callable[[bytes], bytes] | None,
                       ahead: str) -> tuple[float, float]:
    """send_throughput's same-path loop, each message signed on its way out: in the loop
    itself (``inline``), in batches on a worker thread (``batch``: ``presigned``, as
    ``send`` does) or one hand-off a message (``message``). (wall, CPU)."""
    settings = ConnectSettings(host=st.HOST, port=port, implicit_tls=False, starttls="never",
                               credentials=None, allow_plaintext_auth=False, timeout=30,
                               tls_context=None, local_hostname="localhost")
    todo: Iterator[Envelope] = (Envelope(n, sender, st.address(n), message)
                                for n in range(recipients))
    if sign is not None:
        todo = (presigned(todo, sign) if ahead == "batch" else
                per_message_presigned(todo, sign) if ahead == "message" else
                (dataclasses.replace(e, data=sign(e.data)) for e in todo))

    async def worker() -> None:
        conn = Connection(settings)
        await conn.open()
        try:
            for envelope in todo:
                attempt = await conn.send(envelope.sender, envelope.recipient, envelope.data)
                if attempt.verdict is not Verdict.SENT:
                    raise RuntimeError(f"signing loop: {attempt}")
        finally:
            await conn.close(5)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu


def loop_round(kind: str, work: Path, root: Path, recipients: int, concurrency: int,
               signer: DkimSigner | None, ahead: str = "inline"
               ) -> tuple[float, float, bool]:
    """(msg/s, CPU µs a message of this process, all accepted) of one same-path loop."""
    sender, message = st.sample_message(root)
    with st.Sink(kind, work) as sink:
        elapsed, cpu = asyncio.run(signing_loop(sink.port, sender, message, recipients,
                                                concurrency,
                                                signer.sign if signer is not None else None,
                                                ahead))
        got = sink.stop()
    return recipients / elapsed, cpu / recipients * 1e6, got.accepted == recipients


def pipeline_mode(kind: str, work: Path, recipients: int, concurrency: int,
                  rounds: int, loops_only: bool = False) -> bool:
    print(f"== pipeline: send with and without dkim: vs the raw aiosmtplib loop, "
          f"N={recipients:,}, C={concurrency}, {rounds} round(s), sink: {kind}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    os.environ[ENV] = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    signer = None
    rates: dict[str, list[float]] = {"signed": [], "unsigned": [], "raw": [],
                                     "loop signed": [], "loop signed per message": [],
                                     "loop signed inline": [], "loop unsigned": []}
    walls: dict[str, list[float]] = {"signed": [], "unsigned": []}
    ok = True
    for n in range(1, rounds + 1):
        root = None if not loops_only else st.make_project(work / f"loops-{n}", 10, concurrency)
        for label in ("signed", "unsigned") if not loops_only else ():
            run, got, root = send_run(kind, work, f"{label}-{n}", recipients, concurrency,
                                      label == "signed")
            st.describe(run, recipients, concurrency)
            ok = ok and run.exit_code == 0 and got.accepted == run.sent == recipients
            rates[label].append(run.cli_rate)
            walls[label].append(run.wall_rate)
        assert root is not None
        signer = signer or taught(DkimSigner(DOMAIN, SELECTOR, key), factory_for(root))
        raw, accepted = st.baseline_round(kind, work / f"raw-{n}", root, recipients,
                                          concurrency, same_path=False)
        rates["raw"].append(raw)
        ok = ok and accepted
        for label, use, ahead in (("loop signed", signer, "batch"),
                                  ("loop signed per message", signer, "message"),
                                  ("loop signed inline", signer, "inline"),
                                  ("loop unsigned", None, "inline")):
            rate, cpu, accepted = loop_round(kind, work / f"{label.replace(' ', '-')}-{n}",
                                             root, recipients, concurrency, use, ahead)
            how = {"batch": " ahead in batches on a worker thread (send's way)",
                   "message": " ahead, one hand-off a message (the earlier way)"}
            print(f"  same-path loop, {label.removeprefix('loop ').removesuffix(' per message')}"
                  f"{how.get(ahead, '') if use else ''}: {rate:.0f} msg/s, "
                  f"{cpu:.0f} µs CPU a message")
            rates[label].append(rate)
            ok = ok and accepted
    best = {label: max(values, default=0.0) for label, values in rates.items()}
    if loops_only:
        print(f"best of {rounds}: raw loop {best['raw']:.0f} msg/s")
    else:
        print_sends(best, walls, rounds)
    unsigned = best["loop unsigned"]
    print(f"same-path loop signed / unsigned: {best['loop signed'] / unsigned:.2f} in batches "
          f"ahead, {best['loop signed per message'] / unsigned:.2f} one hand-off a message, "
          f"{best['loop signed inline'] / unsigned:.2f} inline ({best['loop signed']:.0f}, "
          f"{best['loop signed per message']:.0f} and {best['loop signed inline']:.0f} vs "
          f"{unsigned:.0f} msg/s): what signing alone takes from send's own transmission code")
    return ok


def print_sends(best: dict[str, float], walls: dict[str, list[float]], rounds: int) -> None:
    ratio = best["signed"] / best["raw"]
    print(f"best of {rounds}: send signed {best['signed']:.0f} msg/s, unsigned "
          f"{best['unsigned']:.0f} msg/s (delivery figure; wall incl. start-up "
          f"{max(walls['signed']):.0f} and {max(walls['unsigned']):.0f}); raw loop "
          f"{best['raw']:.0f} msg/s")
    print(f"ratio signed send / raw loop: {ratio:.2f} (target >= {TARGET_RAW_RATIO}: "
          f"{'met' if ratio >= TARGET_RAW_RATIO else 'MISSED'}); signed / unsigned send: "
          f"{best['signed'] / best['unsigned']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400, metavar="M",
                        help="messages for the per-message figures (default 400)")
    parser.add_argument("--recipients", type=int, default=10_000, metavar="N",
                        help="list size of the pipeline runs (default 10,000)")
    parser.add_argument("--concurrency", type=int, default=4, metavar="C")
    parser.add_argument("--rounds", type=int, default=2, metavar="K",
                        help="pipeline rounds, alternating; best of each (default 2)")
    parser.add_argument("--cost-only", action="store_true", help="skip the pipeline runs")
    parser.add_argument("--loops-only", action="store_true",
                        help="pipeline part: only the in-process loops, not the CLI sends")
    parser.add_argument("--sink", choices=("auto", "smtp-sink", "aiosmtpd"), default="auto")
    args = parser.parse_args()
    kind = args.sink
    if kind == "auto":
        kind = "smtp-sink" if st.SMTP_SINK.exists() else "aiosmtpd"
    print(f"$ {shlex.join(['python', 'bench/dkim_cost.py', *sys.argv[1:]])}")
    print(f"python {sys.version.split()[0]}, dkimpy {version('dkimpy')}, "
          f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}")
    ok = cost_mode(args.messages) if not args.loops_only else True
    if not args.cost_only:
        work = Path(tempfile.mkdtemp(prefix="mirage-dkim-bench-"))
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            ok = pipeline_mode(kind, work, args.recipients, args.concurrency,
                               args.rounds, args.loops_only) and ok
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
