"""Helpers shared by the delivery tests: envelopes, transports, a callback recorder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mirage_mailer.delivery import (
    DeliveryAborted,
    DeliveryStats,
    Envelope,
    Outcome,
    Result,
    RetryPolicy,
    TransportSettings,
)

SENDER = "news@example.org"

# Short delays so retries and reconnects do not slow the suite; the logic is the same.
FAST = RetryPolicy(backoff_base=0.05, backoff_max=0.5, throttle_base=0.01, throttle_max=0.2,
                   connect_backoff=0.02)


def message(i: int, recipient: str) -> bytes:
    return (f"From: MIraGE <{SENDER}>\nTo: <{recipient}>\nSubject: Issue {i}\n"
            f"Message-ID: <{i}@example.org>\n\nHello number {i}.\n.leading dot line\n").encode()


def make_envelopes(n: int, *, start: int = 0) -> Iterator[Envelope]:
    for i in range(start, start + n):
        recipient = f"r{i}@example.net"
        yield Envelope(i, SENDER, recipient, message(i, recipient))


def make_transport(url: str, **overrides: Any) -> TransportSettings:
    scheme, _, rest = url.partition(":")
    host, port = ("", 0)
    maildir = None
    if scheme == "maildir":
        maildir = Path(rest)
    else:
        host, _, port_text = rest.lstrip("/").partition(":")
        port = int(port_text)
    base = TransportSettings(url=url, scheme=scheme, maildir=maildir, host=host, port=port,
                             starttls="auto", concurrency=4, rate_per_second=None,
                             rate_per_hour=None, timeout=5.0, max_attempts=5,
                             allow_plaintext_auth=False)
    return replace(base, **overrides)


@dataclass
class Recorder:
    """Every callback, in order, as the tracking store would see them."""

    events: list[tuple[str, int, Outcome | None]] = field(default_factory=list)
    attempts: list[Envelope] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    on_result_hook: Callable[[Result], None] | None = None

    async def on_attempt(self, envelope: Envelope) -> bool:
        self.attempts.append(envelope)
        self.events.append(("attempt", envelope.key, None))
        return True

    def on_result(self, result: Result) -> None:
        self.results.append(result)
        self.events.append(("result", result.envelope.key, result.outcome))
        if self.on_result_hook is not None:
            self.on_result_hook(result)

    def of(self, key: int) -> list[Result]:
        return [r for r in self.results if r.envelope.key == key]

    def final(self) -> dict[int, Result]:
        """The last word for each envelope (every one must have exactly one final)."""
        finals: dict[int, Result] = {}
        for r in self.results:
            if r.final:
                assert r.envelope.key not in finals, f"two final results for {r.envelope.key}"
                finals[r.envelope.key] = r
        return finals

    def keys(self, outcome: Outcome) -> set[int]:
        return {k for k, r in self.final().items() if r.outcome is outcome}


def resolved_after_abort(rec: Recorder) -> None:
    """Every envelope handed out has its final word: its attempt's, or, taken by a link
    still opening when the run was aborted, "not attempted" (never sent after the abort)."""
    attempted = {e.key for e in rec.attempts}
    finals = rec.final()
    assert attempted <= set(finals)
    for key, result in finals.items():
        assert key in attempted or result.response == "not attempted: delivery aborted", result


@dataclass
class Run:
    rec: Recorder
    stats: DeliveryStats | None
    aborted: DeliveryAborted | None
    elapsed: float


Deliver = Callable[..., Run]
