"""Several relays at the delivery layer (``delivery/relays.py``), in process against aiosmtpd.

A relay that turns the sender away mid-session (530: authentication required) is taken out and
the message it could not send goes out through another relay, with no final word from the
first; a run stopped meanwhile gives every message handed out exactly one final word.
"""

from __future__ import annotations

import asyncio

from mirage_mailer.delivery import (
    Envelope,
    Outcome,
    RelayTarget,
    Result,
    TransportSettings,
    deliver_all,
)
from support.envelopes import FAST, envelopes
from support.faults import Call, Fault, Reply
from support.smtp_sink import SmtpSink


def target(sink: SmtpSink, weight: int = 1, concurrency: int = 2) -> RelayTarget:
    settings = TransportSettings(
        url=sink.url, scheme="smtp", maildir=None, host="127.0.0.1", port=sink.port,
        starttls="never", concurrency=concurrency, rate_per_second=None, rate_per_hour=None,
        timeout=2.0, max_attempts=5, allow_plaintext_auth=False, name=sink.url)
    return RelayTarget(settings, None, ("", ""), weight)


async def run(relays: list[RelayTarget], count: int, results: list[Result], out: list[str],
              stop: asyncio.Event | None = None) -> None:
    async def claim(_envelope: Envelope) -> bool:
        return True

    await deliver_all(relays[0].transport, envelopes(count), on_attempt=claim,
                      on_result=results.append, stop=stop, local_hostname="test.local",
                      policy=FAST, relays=relays, on_relay_out=out.append)


def finals(results: list[Result]) -> dict[int, Result]:
    found: dict[int, Result] = {}
    for result in results:
        if result.final:
            assert result.envelope.key not in found, f"two final words for {result}"
            found[result.envelope.key] = result
    return found


def test_a_relay_that_wants_a_login_midway_hands_its_message_to_another() -> None:
    strict = SmtpSink(rules=[Fault("MAIL", "530 5.7.0 Authentication required")])
    fine = SmtpSink()
    results: list[Result] = []
    out: list[str] = []

    async def main() -> None:
        async with strict, fine:
            await run([target(strict), target(fine)], 20, results, out)

    asyncio.run(main())

    last = finals(results)
    assert len(last) == 20
    assert {r.outcome for r in last.values()} == {Outcome.SENT}
    assert {r.relay for r in last.values()} == {fine.url}
    assert sorted(fine.recipients()) == sorted(f"r{i}@example.net" for i in range(20))
    turned = [r for r in results if r.relay == strict.url]
    assert turned and all(not r.final and r.outcome is Outcome.DEFERRED for r in turned)
    [line] = out
    assert strict.url in line and "authentication" in line


def test_a_stopped_run_gives_each_message_one_final_word() -> None:
    first, second = SmtpSink(), SmtpSink()
    results: list[Result] = []
    asyncio.run(_stopped(first, second, results))
    received = len(first.recipients()) + len(second.recipients())
    last = finals(results)
    assert sum(1 for r in last.values() if r.outcome is Outcome.SENT) == received
    assert 15 <= received < 200
    assert all(r.outcome in (Outcome.SENT, Outcome.DEFERRED) for r in last.values())


async def _stopped(first: SmtpSink, second: SmtpSink, results: list[Result]) -> None:
    async with first, second:
        stop = asyncio.Event()

        def halt(result: Result) -> None:
            results.append(result)
            if len(results) == 15:
                stop.set()

        async def claim(_envelope: Envelope) -> bool:
            return True

        relays = [target(first), target(second)]
        stats = await deliver_all(relays[0].transport, envelopes(200), on_attempt=claim,
                                  on_result=halt, stop=stop, local_hostname="test.local",
                                  policy=FAST, relays=relays)
        assert stats.stopped
        assert stats.sent == len(first.recipients()) + len(second.recipients())


class OutWhileOthersAreInFlight:
    """Connection 1 is told a login is required (the relay leaves the rotation) while
    connection 2 still waits for its RCPT reply, a 451 that comes after that."""

    def __call__(self, call: Call) -> Reply | None:
        if call.stage == "MAIL" and call.connection == 1:
            return Reply("530 5.7.0 Authentication required", delay=0.3)
        if call.stage == "RCPT" and call.connection == 2:
            return Reply("451 4.3.0 Temporary local problem", delay=0.8)
        return None


def test_a_deferral_on_a_relay_already_out_goes_to_another_relay() -> None:
    leaving = SmtpSink(rules=[OutWhileOthersAreInFlight()])
    fine = SmtpSink()
    results: list[Result] = []
    out: list[str] = []

    async def main() -> None:
        async with leaving, fine:
            await run([target(leaving, concurrency=2), target(fine)], 12, results, out)

    asyncio.run(main())
    assert leaving.connections >= 2, "the second connection never opened"
    assert any(r.code == 451 and not r.final for r in results)  # deferred, then handed on
    last = finals(results)
    assert len(last) == 12 and {r.outcome for r in last.values()} == {Outcome.SENT}
    assert sorted(fine.recipients()) == sorted(f"r{i}@example.net" for i in range(12))
