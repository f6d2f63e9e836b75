"""Commands written with the body before them (RFC 2920 3.1, ``SmtpRun._ahead``).

With PIPELINING, the next message's MAIL, RCPT and DATA go in the same write as the body
before them, so a message costs one round trip instead of two. What must hold: that next
message is claimed only once the relay has answered its commands (a link never holds two
claimed messages whose outcome is unknown, the crash contract's bound); a refusal of the
body before it sends no RSET, which would land inside the next message's DATA; a reader
withdrawn at that claim gets no body; and a link lost before the claim puts the message
back, uncounted (``test_delivery_smtp``, ``test_delivery_pipelining`` for a relay that
drops what follows the end of DATA).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from delivery_support import Deliver, Recorder, make_envelopes, make_transport

from mirage_mailer.delivery import Envelope, Outcome
from support.smtp_sink import SmtpSink, refuse


@pytest.mark.smtp_fault(rules=[refuse("r1@example.net", "550 5.7.1 Not for this one",
                                      stage="DATA")])
def test_a_refused_body_sends_no_rset_into_the_next_message(sink: SmtpSink,
                                                            deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, concurrency=1), make_envelopes(4))
    final = run.rec.final()
    assert final[1].outcome is not Outcome.SENT and final[1].code == 550
    assert run.rec.keys(Outcome.SENT) == {0, 2, 3}
    for message in sink.received:  # each exactly as built: no command inside its DATA
        assert message.data.startswith(b"From: ") or b"\nSubject:" in message.data[:400]
        assert b"RSET" not in message.data
    assert sink.connections == 1


class _Withdraws(Recorder):
    """A reader who unsubscribed after their row was queued: the claim says no."""

    async def on_attempt(self, envelope: Envelope) -> bool:
        if envelope.key == 1:
            self.events.append(("withdrawn", envelope.key, None))
            return False
        return await super().on_attempt(envelope)


def test_a_reader_withdrawn_after_the_relay_took_the_commands_gets_no_body(
        sink: SmtpSink, deliver: Deliver) -> None:
    rec = _Withdraws()
    run = deliver(make_transport(sink.url, concurrency=1), make_envelopes(4), rec=rec)
    assert "r1@example.net" not in sink.recipients()
    assert Counter(sink.recipients()) == Counter(f"r{i}@example.net" for i in (0, 2, 3))
    assert run.rec.of(1) == []  # withdrawn: no Result, as without a chain
    assert ("withdrawn", 1, None) in rec.events
    # r1's commands rode with r0's body; the relay then waited for a body that must not
    # come, so that link was dropped and the rest went on a new one
    assert sink.connections == 2


def test_at_most_one_claimed_message_a_link_waits_for_its_outcome(
        sink: SmtpSink, deliver: Deliver) -> None:
    """The crash contract's bound: claims and results interleave one by one on one link."""
    run = deliver(make_transport(sink.url, concurrency=1), make_envelopes(30))
    open_claims = 0
    for kind, _key, _outcome in run.rec.events:
        open_claims += 1 if kind == "attempt" else -1
        assert 0 <= open_claims <= 1
    assert run.rec.keys(Outcome.SENT) == set(range(30))
    assert sink.connections == 1


def _breaking(after: int) -> Iterator[Envelope]:
    """The caller's envelopes, until its source fails (a store read, a template)."""
    yield from make_envelopes(after)
    raise RuntimeError("the page of rows could not be read")


def test_a_source_failing_while_a_body_is_on_the_wire_is_raised_after_its_outcome(
        sink: SmtpSink, deliver: Deliver) -> None:
    """The next envelope is pulled while a claimed message's body is about to leave: the
    failure waits for that message's Result, then stops the run, as it did between
    messages."""
    rec = Recorder()
    with pytest.raises(RuntimeError, match="could not be read"):
        deliver(make_transport(sink.url, concurrency=1), _breaking(3), rec=rec)
    claimed = [e.key for e in rec.attempts]
    assert claimed == [0, 1, 2]
    assert {r.envelope.key for r in rec.results} == set(claimed)  # each claimed got its word
    assert Counter(sink.recipients()) == Counter(f"r{i}@example.net" for i in claimed)


class _ClaimBreaks(Recorder):
    """The tracking store fails at the claim of the third message."""

    async def on_attempt(self, envelope: Envelope) -> bool:
        if envelope.key == 2:
            raise OSError(5, "disk I/O error")  # what a network fault raises too
        return await super().on_attempt(envelope)


def test_a_claim_that_fails_inside_a_chain_stops_the_run_and_sends_no_body(
        sink: SmtpSink, deliver: Deliver) -> None:
    """Raised by the caller, not taken for the link failing: the run stops with it, and the
    relay, which had r2's commands, never gets its body."""
    rec = _ClaimBreaks()
    with pytest.raises(OSError, match="disk I/O error"):
        deliver(make_transport(sink.url, concurrency=1), make_envelopes(6), rec=rec)
    assert "r2@example.net" not in sink.recipients()
    assert sink.connections == 1  # not taken for a lost link and tried on a new one
    assert [e.key for e in rec.attempts] == [0, 1]
    assert {r.envelope.key for r in rec.results} >= {0, 1}
