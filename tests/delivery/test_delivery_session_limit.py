"""A relay that ends the session with a reply but leaves the connection open.

421 means "closing transmission channel" (RFC 5321 4.2.3, 3.8), and with one recipient a
message, "452 4.5.3 too many recipients" (RFC 3463 X.5.3) can only be the session's limit:
both say this connection takes no more. A relay that answers so and waits for QUIT instead
of hanging up (a per-connection message limit) had the pool reset the link and offer it the
same message again and again, until the stall timeout aborted the run (exit 3, "the
provider's sending quota may be used up") with most of the list unsent. The link is dropped
and the message retried on a new one.
"""

from __future__ import annotations

from collections import Counter

import pytest
from delivery_support import Deliver, make_envelopes, make_transport

from mirage_mailer.delivery.classify import ends_session
from support.smtp_sink import Call, Reply, SmtpSink

PER_CONNECTION = 3


class SessionLimit:
    """Answer ``reply`` at RCPT once a connection has carried ``PER_CONNECTION`` messages,
    and keep the connection open."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.seen: Counter[int] = Counter()

    def __call__(self, call: Call) -> Reply | None:
        if call.stage != "RCPT":
            return None
        self.seen[call.connection] += 1
        return Reply(self.reply) if self.seen[call.connection] > PER_CONNECTION else None


@pytest.mark.parametrize("reply", ["421 4.7.0 Too many messages in this connection",
                                   "452 4.5.3 Too many recipients"], ids=["421", "452-4.5.3"])
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_a_session_limit_said_without_hanging_up_opens_a_new_link(
        reply: str, pipelining: bool, deliver: Deliver) -> None:
    sink = SmtpSink(rules=[SessionLimit(reply)], pipelining=pipelining)
    with sink.running_in_thread():
        run = deliver(make_transport(sink.url, concurrency=1), make_envelopes(10))
        assert sorted(sink.recipients()) == sorted(f"r{i}@example.net" for i in range(10))
    assert run.aborted is None and run.stats is not None
    assert run.stats.sent == 10 and run.stats.deferred_final == 0
    assert sink.connections >= 4  # 3 messages a link


@pytest.mark.parametrize(("code", "text", "over"), [
    (421, "4.7.0 Too many messages in this connection", True),
    (421, "", True),
    (452, "4.5.3 Too many recipients", True),
    (452, "4.2.2 Mailbox full", False),  # the recipient's: the link goes on
    (451, "4.7.1 Greylisted, try again later", False),
    (450, "4.5.3 odd", False),
])
def test_which_replies_end_the_session(code: int, text: str, over: bool) -> None:
    assert ends_session(code, text) is over
