"""The DATA fast path: the same wire bytes as aiosmtplib, and the same message at the server."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from delivery_support import SENDER, Deliver, make_transport

from mirage_mailer.delivery import Envelope, Outcome
from mirage_mailer.delivery.wire import from_wire, to_wire, wire_format
from support.smtp_sink import SmtpSink, drop_at_data_command, store_then_drop


def aiosmtplib_wire(data: bytes) -> bytes:
    """What aiosmtplib's execute_data_command writes after DATA."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"


EDGES = [
    b"",
    b".",
    b"\n",
    b".\n",
    b"..\n.\n",
    b"Subject: x\n\nbody",
    b"Subject: x\n\n.leading\n..two\nend.\n",
    b"no newline at the end.",
    b"\n\n.\n\n",
]


@pytest.mark.parametrize("data", EDGES)
def test_wire_bytes_match_aiosmtplib_on_edge_cases(data: bytes) -> None:
    assert to_wire(data) == aiosmtplib_wire(data)


def test_wire_bytes_match_aiosmtplib_on_random_cr_free_bodies() -> None:
    rng = random.Random(20261128)
    alphabet = b"ab.\n =\t\xc3\xa9"
    for _ in range(2000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        assert to_wire(data) == aiosmtplib_wire(data), data


@pytest.mark.parametrize("data", [b"a\r\nb\n", b"lone\rcr\n", b"x\r"])
def test_bodies_with_a_cr_are_left_to_aiosmtplib(data: bytes) -> None:
    assert to_wire(data) is None


def test_crlf_body_still_arrives_as_sent(sink: SmtpSink, deliver: Deliver) -> None:
    """A caller's CRLF (or mixed) body takes aiosmtplib's path; the server sees one message."""
    body = b"Subject: mixed\r\nTo: <m@example.net>\n\r\n.dot\rline\n"
    envelope = Envelope(1, SENDER, "m@example.net", body)
    run = deliver(make_transport(sink.url, concurrency=1), iter([envelope]))
    assert [r.outcome for r in run.rec.results] == [Outcome.SENT]
    [got] = sink.received
    assert got.data == b"Subject: mixed\r\nTo: <m@example.net>\r\n\r\n.dot\r\nline\r\n"


@pytest.mark.parametrize("data", [*EDGES, b"a\r\nb\n", b"lone\rcr\n", b"x\r", b".\r\n.."])
def test_wire_format_is_aiosmtplibs_bytes_for_any_body(data: bytes) -> None:
    assert wire_format(data) == aiosmtplib_wire(data)


CR_BODY = b"Subject: mixed\r\nTo: <m@example.net>\n\r\n.dot\rline\n"


@pytest.mark.smtp_fault(rules=[store_then_drop()])
def test_a_body_with_a_cr_is_unknown_when_the_reply_is_lost_after_the_end_of_data(
        sink: SmtpSink, deliver: Deliver) -> None:
    """The normalised path writes its own final dot too, so it knows the message may be
    at the server: unknown, not retried (no second copy)."""
    run = deliver(make_transport(sink.url, concurrency=1),
                  iter([Envelope(1, SENDER, "m@example.net", CR_BODY)]))
    assert len(sink.received) == 1  # never a second copy
    assert [r.outcome.value for r in run.rec.results] == ["unknown"]


@pytest.mark.smtp_fault(rules=[drop_at_data_command(1)])
def test_a_body_with_a_cr_is_retried_when_the_link_drops_before_any_of_it(
        sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, concurrency=1),
                  iter([Envelope(1, SENDER, "m@example.net", CR_BODY)]))
    assert [r.outcome for r in run.rec.results] == [Outcome.DEFERRED, Outcome.SENT]
    assert len(sink.received) == 1


def test_a_wired_envelope_reaches_the_server_as_the_same_message(sink: SmtpSink,
                                                                 deliver: Deliver) -> None:
    """``Envelope.wired``: bytes already in wire format go out unconverted, and the server
    gets exactly what it gets for the plain message."""
    body = b"Subject: w\n\n.leading\n..two\nend\n"
    envelopes = [Envelope(1, SENDER, "a@example.net", body),
                 Envelope(2, SENDER, "b@example.net", wire_format(body), wired=True)]
    run = deliver(make_transport(sink.url, concurrency=1), iter(envelopes))
    assert [r.outcome for r in run.rec.results] == [Outcome.SENT, Outcome.SENT]
    plain, wired = sink.received
    assert plain.data == wired.data == b"Subject: w\r\n\r\n.leading\r\n..two\r\nend\r\n"


def test_a_wired_envelope_in_a_maildir_is_the_plain_message(tmp_path: Path,
                                                            deliver: Deliver) -> None:
    body = b"Subject: w\n\n.leading\n..two\nend\n"
    outbox = tmp_path / "outbox"
    envelopes = [Envelope(1, SENDER, "a@example.net", body),
                 Envelope(2, SENDER, "a@example.net", wire_format(body), wired=True)]
    deliver(make_transport(f"maildir:{outbox}"), iter(envelopes))
    files = sorted((outbox / "new").iterdir(), key=lambda f: f.stat().st_mtime_ns)
    assert [f.read_bytes() for f in files] == [files[0].read_bytes()] * 2
    assert files[0].read_bytes().endswith(body)


@pytest.mark.parametrize("data", [b.rstrip(b"\n") + b"\n" for b in EDGES if b.strip(b"\n")])
def test_from_wire_undoes_wire_format(data: bytes) -> None:
    assert from_wire(wire_format(data)) == data
