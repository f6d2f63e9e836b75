"""A multi-line reply whose lines carry different codes ("550-rejected" then "250 ok").

RFC 5321 section 4.2.1: every line of a multi-line reply has the same code. One that mixes
them is no clear answer: taken by its last line, "550-... 250 ..." to the end of DATA marked
a recipient sent whom the relay may have refused, and "250-... 550 ..." failed for good one
it may have accepted. After the end of DATA it leaves the recipient ``unknown`` (never
retried); before it, the link is out of step: dropped, and the message retried. Pipelined,
one command at a time, and (the end of DATA) on the path for addresses that are not plain
ASCII (SMTPUTF8), whose MAIL and RCPT replies aiosmtplib reads.
"""

from __future__ import annotations

import pytest
from delivery_support import SENDER, Deliver, make_envelopes, make_transport

from mirage_mailer.delivery import Envelope, Outcome
from support.smtp_sink import Fault, SmtpSink, store_then_answer

MIXED = ["550-5.7.1 rejected\r\n250 2.0.0 ok", "250-2.0.0 queued\r\n550 5.7.1 rejected"]
SERVERS = [dict(pipelining=True), dict(pipelining=False), dict(smtputf8=True)]


@pytest.fixture(params=SERVERS, ids=["pipelining", "no-pipelining", "smtputf8"])
def server(request: pytest.FixtureRequest) -> dict[str, bool]:
    return dict(request.param)


def envelopes(server: dict[str, bool], count: int) -> list[Envelope]:
    """Plain addresses, or (``smtputf8``) non-ASCII ones, which take aiosmtplib's path."""
    if not server.get("smtputf8"):
        return list(make_envelopes(count))
    return [Envelope(i, SENDER, f"jürgen{i}@example.de", b"Subject: x\n\nHallo\n")
            for i in range(count)]


@pytest.mark.parametrize("answer", MIXED, ids=["550-then-250", "250-then-550"])
def test_mixed_codes_to_the_end_of_data_leave_the_recipient_unknown(
        server: dict[str, bool], answer: str, deliver: Deliver) -> None:
    mixed = store_then_answer(answer)
    sink = SmtpSink(rules=[mixed], **server)
    with sink.running_in_thread():
        run = deliver(make_transport(sink.url, concurrency=1), iter(envelopes(server, 2)))
    finals = run.rec.final()
    assert {r.outcome for r in finals.values()} == {Outcome.UNKNOWN}, finals
    assert len(run.rec.results) == 2  # never retried
    assert all("the server may have the message" in r.response for r in finals.values())


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
@pytest.mark.parametrize("answer", MIXED, ids=["550-then-250", "250-then-550"])
def test_mixed_codes_to_rcpt_drop_the_link_and_retry(
        pipelining: bool, answer: str, deliver: Deliver) -> None:
    """Plain addresses (the transaction's own reader); "550-... 250" let the message on
    to a DATA the relay then refused for want of a recipient: failed for good."""
    sink = SmtpSink(rules=[Fault("RCPT", answer, times=1)], pipelining=pipelining)
    with sink.running_in_thread():
        sent = list(make_envelopes(2))
        run = deliver(make_transport(sink.url, concurrency=1), iter(sent))
        assert sorted(sink.recipients()) == sorted(e.recipient for e in sent)  # each once
    assert run.rec.keys(Outcome.SENT) == {0, 1}
    first = run.rec.of(0)[0]
    assert first.outcome is Outcome.DEFERRED and first.code is None
