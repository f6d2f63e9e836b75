"""Several relays share the work at each relay's own pace (``delivery/relays.py``).

aiosmtpd relays on 127.0.0.1, in process. A relay that holds every message, one paced at two
a second, one throttling or refusing every recipient for now: the other relay sends the rest
at its own pace instead of being held to theirs. Weights still hold while both keep up.
Shares and counts are asserted, not durations: a held relay's gate opens only once the other
relay has delivered every other message, and would time out (and take more) if it could not.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mirage_mailer.delivery import (
    DeliveryStats,
    Envelope,
    Outcome,
    RelayTarget,
    Result,
    TransportSettings,
    deliver_all,
)
from support.envelopes import FAST, envelopes
from support.faults import Fault, Gate, Throttle
from support.smtp_sink import SmtpSink


def target(sink: SmtpSink, *, weight: int = 1, concurrency: int = 2,
           rate: float | None = None, timeout: float = 2.0) -> RelayTarget:
    settings = TransportSettings(
        url=sink.url, scheme="smtp", maildir=None, host="127.0.0.1", port=sink.port,
        starttls="never", concurrency=concurrency, rate_per_second=rate, rate_per_hour=None,
        timeout=timeout, max_attempts=5, allow_plaintext_auth=False, name=sink.url)
    return RelayTarget(settings, None, ("", ""), weight)


async def send(relays: list[RelayTarget], count: int, results: list[Result],
               **kwargs: Any) -> DeliveryStats:
    async def claim(_envelope: Envelope) -> bool:
        return True

    return await deliver_all(relays[0].transport, envelopes(count), on_attempt=claim,
                             on_result=results.append, local_hostname="test.local",
                             policy=FAST, relays=relays, **kwargs)


def finals(results: list[Result], count: int) -> dict[int, Result]:
    """Every message's one final word, checked to be there and to be a 250."""
    found: dict[int, Result] = {}
    for result in results:
        if result.final:
            assert result.envelope.key not in found, f"two final words for {result}"
            found[result.envelope.key] = result
    assert len(found) == count
    assert {r.outcome for r in found.values()} == {Outcome.SENT}
    return found


def test_a_relay_holding_its_messages_does_not_hold_the_other_back() -> None:
    """The held relay has the larger weight; its gate opens only when the other relay has
    delivered every message it does not hold (or after 8 s, when it would take more)."""
    count = 120
    gate = Gate(after=0, timeout=8.0)
    held, free = SmtpSink(rules=[gate]), SmtpSink()
    results: list[Result] = []
    opened_by_progress = False

    async def open_when_the_rest_is_out() -> None:
        nonlocal opened_by_progress
        while not gate.opened.is_set():
            if len(free.recipients()) + gate.accepted == count:
                opened_by_progress = True
                gate.open()
            await asyncio.sleep(0.01)

    async def main() -> None:
        async with held, free:
            watcher = asyncio.get_running_loop().create_task(open_when_the_rest_is_out())
            try:
                await send([target(held, weight=3, timeout=15.0), target(free)], count,
                           results)
            finally:
                watcher.cancel()

    asyncio.run(main())
    assert opened_by_progress, (len(free.recipients()), gate.accepted)
    assert gate.accepted <= 2  # one per connection of the held relay, no more
    assert len(held.recipients()) == gate.accepted
    assert len(free.recipients()) == count - gate.accepted
    by_relay = {r.relay for r in finals(results, count).values()}
    assert by_relay <= {held.url, free.url}


def test_a_paced_relay_is_dealt_only_what_it_sends() -> None:
    """Two messages a second, weight 3: without the other relay waiting for it, it sends a
    handful while the other sends the list."""
    count = 200
    paced, free = SmtpSink(), SmtpSink()
    results: list[Result] = []

    async def main() -> None:
        async with paced, free:
            await send([target(paced, weight=3, rate=2.0), target(free)], count, results)

    asyncio.run(main())
    finals(results, count)
    assert len(paced.recipients()) + len(free.recipients()) == count
    assert len(paced.recipients()) <= count // 10, len(paced.recipients())


def test_a_throttling_relay_gets_fewer_messages() -> None:
    """A relay that takes 5 a second and answers 451 4.7.1 above that: its pacer learns
    that pace, and the other relay is not held to it."""
    count = 200
    throttle = Throttle(5.0, disconnect_every=0)
    slow, free = SmtpSink(rules=[throttle]), SmtpSink()
    results: list[Result] = []

    async def main() -> None:
        async with slow, free:
            await send([target(slow), target(free)], count, results)

    asyncio.run(main())
    finals(results, count)
    assert len(slow.recipients()) + len(free.recipients()) == count
    assert len(slow.recipients()) <= count // 5, len(slow.recipients())


def test_a_refusing_relay_hands_its_messages_to_the_other() -> None:
    """Every recipient deferred by one relay (451, no pace words): they go out through the
    other relay, which does not wait for the refusing one's lane."""
    count = 200
    refusing = SmtpSink(rules=[Fault("RCPT", "451 4.3.0 Temporary local problem")])
    free = SmtpSink()
    results: list[Result] = []

    async def main() -> None:
        async with refusing, free:
            await send([target(refusing, weight=3), target(free)], count, results)

    asyncio.run(main())
    last = finals(results, count)
    assert {r.relay for r in last.values()} == {free.url}
    assert refusing.received == []
    assert sorted(free.recipients()) == sorted(f"r{i}@example.net" for i in range(count))
    tried = {r.envelope.key for r in results if r.relay == refusing.url}
    assert len(tried) <= count // 4, len(tried)


def test_weights_hold_while_both_relays_keep_up() -> None:
    count = 240
    heavy, light = SmtpSink(), SmtpSink()
    results: list[Result] = []

    async def main() -> None:
        async with heavy, light:
            await send([target(heavy, weight=3, concurrency=3), target(light, weight=1)],
                       count, results)

    asyncio.run(main())
    finals(results, count)
    share = len(heavy.recipients()) / count
    assert 0.65 <= share <= 0.85, (len(heavy.recipients()), len(light.recipients()))
