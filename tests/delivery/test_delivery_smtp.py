"""The SMTP pool against a real aiosmtpd server: reuse, classification, retries, recovery."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import replace

import pytest
from delivery_support import (
    FAST,
    SENDER,
    Deliver,
    Recorder,
    make_envelopes,
    make_transport,
    message,
    resolved_after_abort,
)

from mirage_mailer.delivery import Envelope, Outcome, Result
from support.smtp_sink import (
    Call,
    Fault,
    Reply,
    Rule,
    SmtpSink,
    drop_at_data_command,
    drop_in_data,
    fail_times,
    refuse,
)


def test_many_messages_travel_over_few_connections(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, concurrency=3), make_envelopes(60))
    assert run.stats is not None
    assert run.stats.sent == 60 and run.stats.failed == 0 and run.stats.deferred_final == 0
    assert sink.connections <= 3 < 60
    assert run.stats.connections == sink.connections
    assert sorted(sink.recipients()) == sorted(f"r{i}@example.net" for i in range(60))
    # LF in, CRLF on the wire, dot-stuffing undone: the server has exactly our message
    by_rcpt = {m.recipients[0]: m for m in sink.received}
    got = email.message_from_bytes(by_rcpt["r7@example.net"].data, policy=email.policy.default)
    assert got["Subject"] == "Issue 7"
    assert by_rcpt["r7@example.net"].data.endswith(b"Hello number 7.\r\n.leading dot line\r\n")
    assert all(m.sender == SENDER for m in sink.received)


def test_quoted_and_plain_addresses_reach_the_server_as_written(sink: SmtpSink,
                                                                deliver: Deliver) -> None:
    """Plain addresses skip aiosmtplib's address parsing; others still go through it."""
    to = ['"john doe"@example.net', "o'neil+news@example.net", "Mixed.Case@Example.NET"]
    envelopes = [Envelope(n, SENDER, rcpt, message(n, "x@example.net")) for n, rcpt in
                 enumerate(to)]
    run = deliver(make_transport(sink.url, concurrency=1), iter(envelopes))
    assert [r.outcome for r in run.rec.results] == [Outcome.SENT] * 3
    assert sorted(sink.recipients()) == sorted(to)
    assert {m.sender for m in sink.received} == {SENDER}


def test_every_attempt_is_announced_before_its_result(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url), make_envelopes(20))
    seen: set[int] = set()
    for kind, key, _ in run.rec.events:
        if kind == "attempt":
            seen.add(key)
        else:
            assert key in seen
    assert all(r.outcome is Outcome.SENT and r.code == 250 for r in run.rec.results)
    assert all("queued as" in r.response for r in run.rec.results)


@pytest.mark.smtp_fault(
    rules=[refuse("r3@example.net", "550 5.1.1 <r3@example.net>: unknown user")])
def test_refused_recipient_fails_alone(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url), make_envelopes(10))
    assert run.stats is not None and run.stats.sent == 9 and run.stats.failed == 1
    [only] = run.rec.of(3)
    assert (only.outcome, only.code, only.final) == (Outcome.FAILED, 550, True)
    assert only.response == "5.1.1 <r3@example.net>: unknown user"
    assert "r3@example.net" not in sink.recipients()
    assert run.rec.keys(Outcome.SENT) == set(range(10)) - {3}


@pytest.mark.smtp_fault(
    rules=[fail_times(1, "451 4.3.0 Try again later", address="r2@example.net")])
def test_temporary_refusal_is_retried_and_sent_once(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url), make_envelopes(5))
    first, second = run.rec.of(2)
    assert (first.outcome, first.code, first.final) == (Outcome.DEFERRED, 451, False)
    assert (second.outcome, second.final) == (Outcome.SENT, True)
    assert [e.key for e in run.rec.attempts].count(2) == 2
    assert sink.recipients().count("r2@example.net") == 1
    assert run.stats is not None and run.stats.sent == 5


@pytest.mark.smtp_fault(rules=[drop_at_data_command(1, address="r0@example.net")])
def test_connection_dropped_before_the_end_of_data_is_retried(sink: SmtpSink,
                                                              deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, concurrency=1), make_envelopes(4))
    first, second = run.rec.of(0)
    assert first.outcome is Outcome.DEFERRED and first.code is None and not first.final
    assert "DATA" in first.response
    assert second.outcome is Outcome.SENT
    assert sorted(sink.recipients()) == [f"r{i}@example.net" for i in range(4)]
    assert sink.connections == 2  # reconnected once


@pytest.mark.smtp_fault(rules=[drop_at_data_command(1, address="r1@example.net")])
def test_a_chained_message_whose_link_drops_before_its_body_goes_again_uncounted(
        sink: SmtpSink, deliver: Deliver) -> None:
    """r1's MAIL, RCPT and DATA went with r0's body; the link dropped at its DATA, before
    r1 was claimed: nothing of it reached the relay, so it is put back, not attempted."""
    run = deliver(make_transport(sink.url, concurrency=1), make_envelopes(4))
    [only] = run.rec.of(1)
    assert only.outcome is Outcome.SENT
    assert [e.key for e in run.rec.attempts].count(1) == 1  # claimed once, on the new link
    assert sorted(sink.recipients()) == [f"r{i}@example.net" for i in range(4)]
    assert sink.connections == 2
    assert run.stats is not None and run.stats.attempts == 4


@pytest.mark.smtp_fault(rules=[drop_in_data(1, address="r1@example.net")])
def test_connection_dropped_after_the_end_of_data_is_unknown_not_retried(
        sink: SmtpSink, deliver: Deliver) -> None:
    """The server had the whole message: it may have queued it, so a retry could deliver it
    twice. The recipient is UNKNOWN, final, and never sent again by this run."""
    run = deliver(make_transport(sink.url, concurrency=1), make_envelopes(4))
    [only] = run.rec.of(1)
    assert (only.outcome, only.code, only.final) == (Outcome.UNKNOWN, None, True)
    assert "end of DATA" in only.response
    assert run.stats is not None and (run.stats.sent, run.stats.unknown) == (3, 1)
    assert sink.count("DATA") == 4  # r1 was not transmitted again


@pytest.mark.smtp_fault(
    rules=[fail_times(1, "421 4.3.2 Service shutting down", stage="MAIL", close=True)])
def test_421_reconnects_and_continues(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, concurrency=1), make_envelopes(5))
    assert run.stats is not None and run.stats.sent == 5
    assert sink.connections == 2
    assert sorted(sink.recipients()) == [f"r{i}@example.net" for i in range(5)]


@pytest.mark.smtp_fault(rules=[drop_at_data_command(99, address="r0@example.net")])
def test_gives_up_after_max_attempts_and_leaves_it_pending(sink: SmtpSink,
                                                           deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, max_attempts=3), make_envelopes(6))
    results = run.rec.of(0)
    assert [r.outcome for r in results] == [Outcome.DEFERRED] * 3
    assert [r.final for r in results] == [False, False, True]
    assert run.stats is not None
    assert (run.stats.sent, run.stats.deferred_final) == (5, 1)
    assert "r0@example.net" not in sink.recipients()


@pytest.mark.smtp_fault(rules=[fail_times(6, "451 4.7.1 Slow down", address="r0@example.net")])
def test_throttle_answers_do_not_use_up_attempts_while_relay_accepts(
        sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, max_attempts=2, concurrency=1), make_envelopes(30))
    assert run.rec.final()[0].outcome is Outcome.SENT
    assert len(run.rec.of(0)) == 7
    assert sink.recipients().count("r0@example.net") == 1


@pytest.mark.smtp_fault(rules=[fail_times(1, "250 OK", address="r0@example.net", delay=1.0)])
def test_slow_server_times_out_then_succeeds(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, timeout=0.3, concurrency=1), make_envelopes(2))
    first = run.rec.of(0)[0]
    assert first.outcome is Outcome.DEFERRED and "timed out" in first.response
    assert run.rec.final()[0].outcome is Outcome.SENT
    assert sorted(sink.recipients()) == ["r0@example.net", "r1@example.net"]


def test_stop_event_stops_pulling_and_finishes_cleanly(sink: SmtpSink, deliver: Deliver) -> None:
    pulled: list[int] = []

    def source() -> Iterator[Envelope]:
        for envelope in make_envelopes(200):
            pulled.append(envelope.key)
            yield envelope

    run = deliver(make_transport(sink.url, rate_per_second=40), source(), stop_after=0.3)
    assert run.stats is not None and run.stats.stopped
    assert 3 <= run.stats.sent < 40
    assert len(pulled) <= run.stats.sent + 4  # nothing pulled beyond what connections took
    finals = run.rec.final()
    assert set(finals) == set(pulled)  # every envelope handed out got its final word
    assert sorted(sink.recipients()) == sorted(
        r.envelope.recipient for r in finals.values() if r.outcome is Outcome.SENT)


@pytest.mark.smtp_fault(
    rules=[refuse(SENDER, "553 5.7.1 Sender address rejected: not owned by user", stage="MAIL")])
def test_refused_sender_aborts_instead_of_failing_everyone(sink: SmtpSink,
                                                            deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url), make_envelopes(10))
    assert run.aborted is not None and run.aborted.exit_code == 3
    assert "553" in str(run.aborted) and "return_path" in str(run.aborted)
    assert run.rec.keys(Outcome.FAILED) == set()
    resolved_after_abort(run.rec)
    assert all(r.outcome is Outcome.DEFERRED for r in run.rec.final().values())


def test_failing_callback_propagates_after_cleanup(sink: SmtpSink, deliver: Deliver) -> None:
    def explode(result: Result) -> None:
        if result.envelope.key == 2:
            raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError, match="database is locked"):
        deliver(make_transport(sink.url), make_envelopes(20), rec=Recorder(on_result_hook=explode))


def crash_at_mail(sink_holder: list[SmtpSink], at: int) -> Rule:
    seen = [0]

    def rule(call: Call) -> Reply | None:
        if call.stage != "MAIL":
            return None
        seen[0] += 1
        if seen[0] == at:
            sink_holder[0].crash()
            return Reply(None)
        return None

    return rule


def test_relay_going_down_mid_run_aborts_with_everything_resolved(deliver: Deliver) -> None:
    holder: list[SmtpSink] = []
    sink = SmtpSink(rules=[crash_at_mail(holder, 10)])
    holder.append(sink)
    pulled: list[int] = []

    def source() -> Iterator[Envelope]:
        for envelope in make_envelopes(50):
            pulled.append(envelope.key)
            yield envelope

    with sink.running_in_thread():
        run = deliver(make_transport(sink.url, concurrency=2), source())
    assert run.aborted is not None and "cannot connect" in str(run.aborted)
    finals = run.rec.final()
    assert set(finals) == set(pulled)  # everything handed out has its final word
    attempted = {e.key for e in run.rec.attempts}
    for key in set(pulled) - attempted:  # taken while its connection was being reopened
        assert finals[key].outcome is Outcome.DEFERRED
        assert finals[key].response == "not attempted: delivery aborted"
    sent = {r.envelope.recipient for r in finals.values() if r.outcome is Outcome.SENT}
    received = set(sink.recipients())
    assert sent <= received  # nothing is marked sent that the relay did not accept
    for result in finals.values():  # accepted as the link died, reply unheard: unknown
        if result.envelope.recipient in received - sent:
            assert result.outcome is Outcome.UNKNOWN and "end of DATA" in result.response
    assert run.aborted.stats.sent == len(sent)


@pytest.mark.smtp_server(max_connections=2)
def test_relay_capping_connections_is_served_by_the_ones_it_allows(sink: SmtpSink,
                                                                   deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, concurrency=4), make_envelopes(40))
    assert run.stats is not None and run.stats.sent == 40
    assert sink.refused_connections > 0  # 421 at greeting: those workers gave up quietly
    assert sink.peak_connections == 2 and run.stats.connections == sink.connections


@pytest.mark.smtp_server(idle_timeout=0.3)
def test_connection_dropped_while_idle_is_reopened_not_deferred(sink: SmtpSink,
                                                                deliver: Deliver) -> None:
    transport = make_transport(sink.url, concurrency=1, rate_per_second=2)
    run = deliver(transport, make_envelopes(3), policy=replace(FAST, idle_noop_after=0.2))
    assert [r.outcome for r in run.rec.results] == [Outcome.SENT] * 3
    assert sink.connections == 3


def test_idle_connection_is_checked_with_noop(sink: SmtpSink, deliver: Deliver) -> None:
    transport = make_transport(sink.url, concurrency=1, rate_per_second=4)
    run = deliver(transport, make_envelopes(3), policy=replace(FAST, idle_noop_after=0.1))
    assert run.stats is not None and run.stats.sent == 3
    assert sink.count("NOOP") >= 1 and sink.connections == 1


def utf8_envelopes() -> list[Envelope]:
    data = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n\nHallo\n"
    return [Envelope(1, SENDER, "jürgen@example.de", data),
            Envelope(2, SENDER, "ann@example.net", data)]


def test_non_ascii_address_fails_alone_without_smtputf8(sink: SmtpSink,
                                                        deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url), iter(utf8_envelopes()))
    final = run.rec.final()
    assert final[1].outcome is Outcome.FAILED and "SMTPUTF8" in final[1].response
    assert final[2].outcome is Outcome.SENT


@pytest.mark.smtp_server(smtputf8=True)
def test_non_ascii_address_is_sent_with_smtputf8(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url), iter(utf8_envelopes()))
    assert run.rec.keys(Outcome.SENT) == {1, 2}
    assert "jürgen@example.de" in sink.recipients()


@pytest.mark.smtp_fault(rules=[Fault("RCPT", "452 4.5.3 Daily sending quota exceeded")])
def test_relay_that_accepts_nothing_for_long_ends_the_run(sink: SmtpSink,
                                                          deliver: Deliver) -> None:
    pulled: list[int] = []

    def source() -> Iterator[Envelope]:
        for envelope in make_envelopes(10_000):
            pulled.append(envelope.key)
            yield envelope

    run = deliver(make_transport(sink.url), source(), policy=replace(FAST, stall_timeout=0.5))
    assert run.aborted is not None
    assert "accepted nothing" in str(run.aborted) and "452 4.5.3" in str(run.aborted)
    assert len(pulled) < 200  # it did not crawl through the list
    assert set(run.rec.final()) == set(pulled)
    assert run.rec.keys(Outcome.DEFERRED) == set(pulled)
