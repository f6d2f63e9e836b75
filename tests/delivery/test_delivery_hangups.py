"""A relay that takes one message a connection and hangs up after the 250 (silently, or
after a 221 or 421 line), as some relays and ESP gateways do.

Our next MAIL usually leaves before the hang-up arrives and finds the link gone. That is no
attempt of the recipient's (nothing of the message reached the relay): it goes again at once
on a fresh link, uncounted, without backoff; and once the relay has hung up twice after one
message the pool opens a fresh link per message itself. Before, each such MAIL was a counted
failure with backoff: 200 messages took about 340 attempts, and with ``max_attempts: 1`` a
good share of the list was left pending by a relay that would have taken every message.
A drop after the end of DATA stays ``unknown`` and is never offered again.
"""

from __future__ import annotations

import socketserver
import threading
from collections import Counter

import pytest
from delivery_support import FAST, Deliver, make_envelopes, make_transport

from mirage_mailer.delivery import Outcome
from support.smtp_sink import CloseAfterEach, Fault, SmtpSink

COUNT = 60
FAREWELLS = [None, "221 2.0.0 Bye", "421 4.4.2 sink.test closing connection"]


@pytest.mark.parametrize("farewell", FAREWELLS, ids=["silent", "221", "421"])
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_a_relay_that_hangs_up_after_each_message_costs_no_attempt(
        farewell: str | None, pipelining: bool, deliver: Deliver) -> None:
    sink = SmtpSink(rules=[CloseAfterEach(farewell)], pipelining=pipelining)
    with sink.running_in_thread():
        # one attempt each: a hang-up counted as a failure would leave its recipient pending
        run = deliver(make_transport(sink.url, max_attempts=1), make_envelopes(COUNT))
        received = Counter(sink.recipients())
    assert run.aborted is None and run.stats is not None
    rec = run.rec
    assert rec.keys(Outcome.SENT) == set(range(COUNT))
    assert Counter(e.key for e in rec.attempts) == Counter(range(COUNT))  # one claim each
    assert len(rec.results) == COUNT  # no deferred Result in between
    assert run.stats.attempts == COUNT and run.stats.sent == COUNT
    assert run.stats.unknown == 0 and run.stats.deferred_final == 0
    assert received == Counter(f"r{i}@example.net" for i in range(COUNT))
    # not a throttle: the pace is what it was
    assert run.stats.throttled == 0 and run.stats.rate_cuts == 0
    # learnt: after the first hang-ups each message opens its own link, no failed MAIL
    assert run.stats.reoffered <= 10, run.stats
    assert run.elapsed < 20


@pytest.mark.parametrize("farewell", [None, "221 2.0.0 Bye"], ids=["silent", "221"])
def test_a_farewell_that_comes_late_is_no_attempt_either(farewell: str | None,
                                                         deliver: Deliver) -> None:
    """The goodbye comes a moment after the 250: our MAIL is on the wire by then, and the
    221 or the hang-up is all it gets."""
    sink = SmtpSink(rules=[CloseAfterEach(farewell, gap=0.01)])
    with sink.running_in_thread():
        run = deliver(make_transport(sink.url, max_attempts=1, concurrency=2),
                      make_envelopes(30))
        received = Counter(sink.recipients())
    assert run.stats is not None
    assert run.rec.keys(Outcome.SENT) == set(range(30))
    assert run.stats.attempts == 30 and len(run.rec.results) == 30
    assert received == Counter(f"r{i}@example.net" for i in range(30))
    assert run.stats.throttled == 0


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_a_drop_after_the_end_of_data_stays_unknown_and_is_never_sent_again(
        pipelining: bool, deliver: Deliver) -> None:
    """The same relay, which sometimes queues the message and drops the link without its
    250: that recipient is unknown, offered to no fresh link, never delivered twice."""
    rule = CloseAfterEach(drop=0.25)
    sink = SmtpSink(rules=[rule], pipelining=pipelining)
    with sink.running_in_thread():
        run = deliver(make_transport(sink.url, max_attempts=1), make_envelopes(COUNT))
        received = Counter(sink.recipients())
    assert run.stats is not None
    dropped = {int(a[1:].split("@")[0]) for a in rule.dropped}
    assert dropped  # the rule did drop some
    assert run.rec.keys(Outcome.UNKNOWN) == dropped
    assert run.rec.keys(Outcome.SENT) == set(range(COUNT)) - dropped
    assert Counter(e.key for e in run.rec.attempts) == Counter(range(COUNT))
    assert max(received.values()) == 1  # nobody got it twice
    assert set(received) == {f"r{i}@example.net" for i in range(COUNT)}


def test_a_relay_that_hangs_up_at_every_mail_is_counted_and_given_up(
        deliver: Deliver) -> None:
    """Only a link that carried a message can have been ended after it: a fresh link that
    loses MAIL is a counted failure as ever, so a relay that takes nothing ends the run's
    tries instead of being offered the same message forever."""
    sink = SmtpSink(rules=[Fault("MAIL", None, close=True)])
    with sink.running_in_thread():
        run = deliver(make_transport(sink.url, max_attempts=2, concurrency=1),
                      make_envelopes(3))
    assert run.stats is not None
    assert run.rec.keys(Outcome.DEFERRED) == {0, 1, 2}
    assert run.stats.attempts == 6 and run.stats.reoffered == 0
    assert sink.recipients() == []


class _DiesAfterTwo(socketserver.StreamRequestHandler):
    """One message a connection, no PIPELINING, hanging up after it (so the next MAIL
    finds the link gone); after its first two connections the relay is down: every later
    connection is closed before the greeting."""

    state: dict[str, int]

    def handle(self) -> None:
        state = self.state
        state["connections"] += 1
        if state["connections"] > 2:
            state["refused"] += 1
            return
        send = self.request.sendall
        send(b"220 dies ESMTP\r\n")
        for line in self.rfile:
            command = line.strip().upper()
            if command.startswith(b"EHLO"):
                send(b"250-dies\r\n250 8BITMIME\r\n")
            elif command.startswith((b"MAIL", b"RCPT")):
                send(b"250 ok\r\n")
            elif command == b"DATA":
                send(b"354 go ahead\r\n")
                for body in self.rfile:
                    if body == b".\r\n":
                        break
                state["delivered"] += 1
                send(b"250 queued\r\n")
                return  # hangs up after the message, silently
            else:
                send(b"250 ok\r\n")


def test_a_link_that_cannot_be_reopened_after_a_hang_up_ends_its_worker(
        deliver: Deliver) -> None:
    """The re-offer's connect gave up (``_connect`` False: this worker should end). Before,
    that worker went on taking recipients, so a sibling retired beside it and nobody said
    the relay was down: with several relays it never left the rotation (seen as the flaky
    ``test_three_relays_one_down_one_dying...``). Each worker now tries at most
    ``connect_attempts`` times, and the last one aborts the run."""
    state = {"connections": 0, "delivered": 0, "refused": 0}
    handler = type("Handler", (_DiesAfterTwo,), {"state": state})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"smtp://127.0.0.1:{server.server_address[1]}"
        run = deliver(make_transport(url, concurrency=2, starttls="never", timeout=2.0),
                      make_envelopes(8))
    finally:
        server.shutdown()
        server.server_close()
    assert state["delivered"] == 2
    assert run.aborted is not None  # the relay is down: said, not left to a silent end
    assert 0 < state["refused"] <= 2 * FAST.connect_attempts, state
