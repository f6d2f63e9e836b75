"""The embedded Maildir outbox: real Maildir layout, durable writes, parseable messages."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from delivery_support import SENDER, Deliver, Recorder, make_envelopes, make_transport

from mirage_mailer.delivery import DeliveryAborted, Envelope, Outcome, deliver_all
from mirage_mailer.delivery.maildir import DELIVERED


def test_maildir_receives_parseable_messages(tmp_path: Path, deliver: Deliver) -> None:
    outbox = tmp_path / "outbox"
    run = deliver(make_transport(f"maildir:{outbox}"), make_envelopes(5))
    assert run.stats is not None and (run.stats.sent, run.stats.attempts) == (5, 5)
    assert {p.name for p in outbox.iterdir()} == {"tmp", "new", "cur"}
    assert list((outbox / "tmp").iterdir()) == []
    files = sorted((outbox / "new").iterdir())
    assert len(files) == len({f.name for f in files}) == 5
    by_subject = {}
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        by_subject[msg["Subject"]] = msg
    msg = by_subject["Issue 3"]
    assert msg["Return-Path"] == f"<{SENDER}>"
    assert msg["Delivered-To"] == "r3@example.net"
    assert msg["To"].addresses[0].addr_spec == "r3@example.net"
    assert msg.get_content() == "Hello number 3.\n.leading dot line\n"
    assert all((r.outcome, r.code, r.response, r.final) == (Outcome.SENT, 250, DELIVERED, True)
               for r in run.rec.results)


def test_maildir_names_are_unique_under_load(tmp_path: Path, deliver: Deliver) -> None:
    run = deliver(make_transport(f"maildir:{tmp_path / 'box'}"), make_envelopes(300))
    assert run.stats is not None and run.stats.sent == 300
    assert len(list((tmp_path / "box" / "new").iterdir())) == 300


def test_maildir_stops_between_messages(tmp_path: Path) -> None:
    rec = Recorder()
    stop = asyncio.Event()
    pulled: list[int] = []

    def source() -> Iterator[Envelope]:
        for envelope in make_envelopes(50):
            pulled.append(envelope.key)
            if envelope.key == 3:
                stop.set()
            yield envelope

    stats = asyncio.run(deliver_all(make_transport(f"maildir:{tmp_path}"), source(),
                                    on_attempt=rec.on_attempt, on_result=rec.on_result,
                                    stop=stop))
    assert stats.stopped and stats.sent == 4 and pulled == [0, 1, 2, 3]
    assert set(rec.final()) == {0, 1, 2, 3}


def test_unwritable_maildir_aborts(tmp_path: Path, deliver: Deliver) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("not a folder")
    run = deliver(make_transport(f"maildir:{blocker}"), make_envelopes(2))
    assert run.aborted is not None and run.aborted.exit_code == 3
    assert "cannot create the Maildir" in str(run.aborted)
    assert run.rec.attempts == []


def test_write_failure_mid_run_resolves_the_message(tmp_path: Path) -> None:
    box = tmp_path / "box"
    rec = Recorder()

    def source() -> Iterator[Envelope]:
        yield Envelope(1, SENDER, "a@example.net", b"Subject: a\n\nA\n")
        (box / "tmp").rmdir()  # the folder breaks under our feet
        yield Envelope(2, SENDER, "b@example.net", b"Subject: b\n\nB\n")

    try:
        asyncio.run(deliver_all(make_transport(f"maildir:{box}"), source(),
                                on_attempt=rec.on_attempt, on_result=rec.on_result))
    except DeliveryAborted as exc:
        assert exc.stats.sent == 1 and exc.stats.deferred_final == 1
        assert "cannot write to the Maildir" in str(exc)
    else:
        raise AssertionError("expected DeliveryAborted")
    final = rec.final()
    assert final[1].outcome is Outcome.SENT and final[2].outcome is Outcome.DEFERRED
    # no server answered the failed write: no code, the reason in the response
    assert (final[1].code, final[2].code) == (250, None)
    assert final[2].response.startswith("cannot write to the Maildir: ")


def test_smtp_sink_needs_no_pytest() -> None:
    """bench/sink_process.py imports the sink from tests/support without pytest."""
    code = ("import sys, support.smtp_sink as t; "
            "assert 'pytest' not in sys.modules; print(t.SmtpSink.__name__)")
    root = Path(__file__).parents[2]
    path = os.pathsep.join([str(root / "src"), str(root / "tests")])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, env={"PYTHONPATH": path})
    assert out.returncode == 0, out.stderr
