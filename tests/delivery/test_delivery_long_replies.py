"""A relay's reply text is kept with every attempt (the recipient's row, an event each), so
its length must be bounded where it comes in: RFC 5321 (4.5.3.1.5) allows 512 octets a reply
line, and a hostile or broken relay answering each command with 60 KB of text grew the
tracking store by 60 KB a recipient and another 60 KB an attempt (measured: 50 readers made
a 7.5 MB store, a 3 MB JSON report)."""

from __future__ import annotations

import pytest
from delivery_support import Deliver, make_envelopes, make_transport

from mirage_mailer.delivery import Outcome
from support.smtp_sink import Fault, SmtpSink, store_then_answer

LONG = "x" * 60_000
KEPT_REPLY = 1000  # connection.KEPT_REPLY: characters of a reply kept


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_a_long_reply_is_kept_short(pipelining: bool, deliver: Deliver) -> None:
    rules = [Fault("RCPT", f"451 4.7.1 greylisted {LONG}", times=1),
             store_then_answer(f"250 2.0.0 queued {LONG}")]
    sink = SmtpSink(rules=rules, pipelining=pipelining)
    with sink.running_in_thread():
        run = deliver(make_transport(sink.url, concurrency=1), make_envelopes(2))
    assert run.rec.keys(Outcome.SENT) == {0, 1}
    deferred, sent = run.rec.of(0)
    assert deferred.outcome is Outcome.DEFERRED and sent.outcome is Outcome.SENT
    for result in run.rec.results:
        assert len(result.response) <= KEPT_REPLY, len(result.response)
    assert deferred.response.startswith("4.7.1 greylisted xxx")
    assert sent.response.startswith("2.0.0 queued xxx") and sent.response.endswith("\u2026")


def test_a_reply_within_the_limit_is_kept_whole(deliver: Deliver) -> None:
    text = "2.0.0 queued " + "y" * 400
    sink = SmtpSink(rules=[store_then_answer(f"250-{text}\r\n250 as ABC")])
    with sink.running_in_thread():
        run = deliver(make_transport(sink.url, concurrency=1), make_envelopes(1))
    [result] = run.rec.results
    assert result.outcome is Outcome.SENT and result.response == f"{text} as ABC"
