"""Issue 12, item 3: several relays (``transport.relays``), end to end.

``send`` and ``report`` run as subprocesses against aiosmtpd relays on 127.0.0.1 and a real
SQLite store. One relay is down from the start, one dies half-way (a message stored and then
dropped without a reply, then no more connections), one carries on: every reader gets the
issue exactly once or is reported ``unknown``, and the report names the relay that carried
each message. A relay that refuses the login leaves the rotation; weights share the work;
only every relay out ends the run with exit 3.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, edit, report, statuses
from support.faults import Call, Reply
from support.ports import RefusingPorts
from support.processes import wait_send_gone
from support.smtp_sink import Call as SinkCall
from support.smtp_sink import SmtpSink


def relays_config(project: Path, relays: list[str], count: int, *,
                  transport_extra: str = "") -> list[str]:
    """``count`` readers and a transport through ``relays`` (YAML entries, each one relay)."""
    config = project / "mirage.yaml"
    edit(config, "  url: maildir:outbox\n",
         "  relays:\n" + "".join(f"    - {entry}\n" for entry in relays))
    edit(config, "  starttls: always", "  starttls: never")
    edit(config, "  rate_per_second: 10", "  rate_per_second: null")
    edit(config, "  timeout: 30", "  timeout: 2" + transport_extra)
    addresses = [f"reader{n:04d}@example.org" for n in range(count)]
    lines = ["email,name,lang"] + [f"{a},Reader {n},en" for n, a in enumerate(addresses)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return addresses


class DiesHalfWay:
    """A relay that takes ``accept`` messages, stores the next one and drops the connection
    without a reply (its reader may have it: ``unknown``), then goes down for good."""

    def __init__(self, accept: int) -> None:
        self.accept = accept
        self.sink: SmtpSink | None = None
        self.dropped: str | None = None

    def __call__(self, call: Call) -> Reply | None:
        if call.stage != "DATA":
            return None
        if self.accept > 0:
            self.accept -= 1
            return None
        if self.dropped is None:
            self.dropped = call.address
            assert self.sink is not None
            self.sink.crash()  # stops listening; every connection is cut
            return Reply(None, close=True, store=True)
        return Reply(None, close=True)


@contextmanager
def sinks(*made: SmtpSink) -> Iterator[tuple[SmtpSink, ...]]:
    with ExitStack() as stack:
        for sink in made:
            stack.enter_context(sink.running_in_thread())
        yield made


def test_three_relays_one_down_one_dying_every_reader_once_or_unknown(
        project: Path, run_cli: RunCli, refusing_port: RefusingPorts) -> None:
    dying = DiesHalfWay(accept=25)
    down = f"smtp://127.0.0.1:{refusing_port()}"  # a relay that is down
    with sinks(SmtpSink(rules=[dying]), SmtpSink()) as (half, steady):
        dying.sink = half
        addresses = relays_config(project, [f"url: {down}", f"url: {half.url}",
                                            f"url: {steady.url}"], 150)
        result = run_cli("send", SAMPLE_ISSUE, "--yes")

        assert result.code == 0, result.err
        assert dying.dropped is not None, "the relay never died"
        warnings = [line for line in result.err.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 2, result.err
        assert any(down in line and "out of rotation" in line for line in warnings)
        assert any(half.url in line and "out of rotation" in line for line in warnings)

        received = Counter(half.recipients()) + Counter(steady.recipients())
        states = statuses(run_cli)
        assert set(states) == set(addresses)
        assert set(states.values()) <= {"sent", "unknown"}, Counter(states.values())
        twice = {a for a, n in received.items() if n > 1}
        assert twice <= {a for a, s in states.items() if s == "unknown"}
        assert all(received[a] == 1 for a, s in states.items() if s == "sent")
        assert states[dying.dropped] == "unknown"  # stored, then no reply: never resent
        assert received[dying.dropped] == 1
        sent = sum(1 for s in states.values() if s == "sent")
        unknown = sum(1 for s in states.values() if s == "unknown")
        assert f"sent {sent}, failed 0, pending 0, unknown {unknown}" in result.out
        assert len(half.recipients()) >= 25 and len(steady.recipients()) >= 60

        got = {half.url: set(half.recipients()), steady.url: set(steady.recipients())}
        rows = report(run_cli)["recipients"]
        assert isinstance(rows, list)
        for row in rows:  # the relay named is the one that has the message
            if row["status"] == "sent":
                assert row["email"] in got[row["relay"]], row
        assert next(r for r in rows if r["email"] == dying.dropped)["relay"] == half.url

        table = run_cli("report", SAMPLE_ISSUE)
        assert table.code == 0 and "Relays" in table.out and half.url in table.out
        listed = list(csv.DictReader(io.StringIO(run_cli("report", SAMPLE_ISSUE, "--format",
                                                         "csv").out)))
        assert {row["relay"] for row in listed} == {half.url, steady.url}

        again = run_cli("send", SAMPLE_ISSUE, "--yes")  # nothing left but the unknown
        assert again.code == 0 and "nothing to send" in again.out
        assert Counter(half.recipients()) + Counter(steady.recipients()) == received


def test_a_relay_refusing_the_login_leaves_the_rotation(project: Path,
                                                         run_cli: RunCli) -> None:
    guarded = SmtpSink(auth=("mirage", "right"), auth_required=True, auth_require_tls=False)
    with sinks(guarded, SmtpSink()) as (_, open_relay):
        addresses = relays_config(
            project, [f"{{url: {guarded.url}, username_env: GUARD_USER, password_env: GUARD_PW}}",
                      f"url: {open_relay.url}"], 30,
            transport_extra="\n  allow_plaintext_auth: true")
        env = {"GUARD_USER": "mirage", "GUARD_PW": "wrong"}
        result = run_cli("send", SAMPLE_ISSUE, "--yes", env=env)

        assert result.code == 0, result.err
        [warning] = [line for line in result.err.splitlines() if line.startswith("warning:")]
        assert guarded.url in warning and "auth" in warning.lower()
        assert "wrong" not in result.err + result.out  # never the password
        assert guarded.received == []
        assert sorted(open_relay.recipients()) == addresses
        assert set(statuses(run_cli).values()) == {"sent"}


def test_weights_share_the_messages(project: Path, run_cli: RunCli) -> None:
    with sinks(SmtpSink(), SmtpSink()) as (heavy, light):
        relays_config(project, [f"{{url: {heavy.url}, weight: 3, concurrency: 1}}",
                                f"{{url: {light.url}, weight: 1, concurrency: 1}}"], 120)
        result = run_cli("send", SAMPLE_ISSUE, "--yes")

        assert result.code == 0, result.err
        assert len(heavy.recipients()) + len(light.recipients()) == 120
        assert 75 <= len(heavy.recipients()) <= 105, (len(heavy.recipients()),
                                                     len(light.recipients()))


def test_every_relay_out_ends_the_run_with_exit_3_and_keeps_the_state(
        project: Path, run_cli: RunCli, refusing_port: RefusingPorts) -> None:
    first, second = (f"smtp://127.0.0.1:{refusing_port()}" for _ in range(2))
    relays_config(project, [f"url: {first}", f"url: {second}"], 10)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")

    assert result.code == 3, result.err
    last = result.err.strip().splitlines()[-1]  # one line: every relay, each with why
    assert last.startswith("mirage.yaml:") and "every relay is out of rotation: " in last
    assert f"{first}: cannot connect" in last and f"{second}: cannot connect" in last
    assert "10 recipients stay pending" in last
    assert set(statuses(run_cli).values()) == {"pending"}


def _slow(call: SinkCall) -> None:
    if call.stage == "DATA":
        time.sleep(0.005)  # a slower relay: messages on its wire when the send is killed


def test_after_sigkill_every_sent_row_names_its_relay(project: Path, run_cli: RunCli) -> None:
    """The send is killed while the 250s of its last batch are only in the claim journal:
    the replay (``report`` right after the kill, and the rerun) records the relay of each,
    so no ``sent`` row says ``relay: null`` and the Relays counts add up to what was sent."""
    with sinks(SmtpSink(), SmtpSink(rules=[_slow])) as (fast, slow):
        relays_config(project, [f"url: {fast.url}", f"url: {slow.url}"], 160)
        proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE,
                                 "--yes"], cwd=project, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while (len(fast.received) + len(slow.received) < 40 and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.002)
        assert proc.poll() is None, "the send ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        issue = Path(SAMPLE_ISSUE).name
        wait_send_gone(project, issue)
        journal = project / ".mirage" / "journal" / f"{issue}.log"
        assert "\no " in journal.read_text(encoding="utf-8", errors="replace"), \
            "no outcome waited in the journal: not the case under test"

        killed = report(run_cli)  # replays the journal
        rows = killed["recipients"]
        assert isinstance(rows, list)
        sent = [r for r in rows if r["status"] == "sent"]
        assert sent and all(r["relay"] in (fast.url, slow.url) for r in sent), \
            [r for r in sent if r["relay"] is None]
        for r in rows:
            if r["status"] == "unknown":  # on the wire at the kill: that attempt counts
                assert r["attempts"] == 1 and r["smtp_response"], r

        assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
        final = report(run_cli)
        rows = final["recipients"]
        assert isinstance(rows, list)
        got = {fast.url: set(fast.recipients()), slow.url: set(slow.recipients())}
        for r in rows:
            if r["status"] == "sent":
                assert r["email"] in got[r["relay"]], r
        counts = final["counts"]
        relays = final["relays"]
        assert isinstance(counts, dict) and isinstance(relays, dict)
        assert sum(by.get("sent", 0) for by in relays.values()) == counts["sent"]
