"""A stop (Ctrl-C, SIGTERM) while a connection is still being opened.

Nothing is on a link that has not said its greeting yet, so the stop need not wait for it:
a relay that accepts the TCP connection and never greets (or a host that drops the SYN)
held a stopped run for the whole command timeout (``transport.timeout``, 30 s by default)
before it could exit 130 or 143.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from delivery_support import Deliver, make_envelopes, make_transport

from mirage_mailer.delivery import Outcome


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port of 127.0.0.1 whose listener never accepts: the kernel completes the TCP
    handshake from the backlog, and no greeting ever comes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_a_stop_while_waiting_for_the_greeting_ends_the_run_at_once(
        silent_port: int, deliver: Deliver) -> None:
    transport = make_transport(f"smtp://127.0.0.1:{silent_port}", timeout=5.0)
    run = deliver(transport, make_envelopes(3), stop_after=0.3)
    assert run.aborted is None and run.stats is not None and run.stats.stopped
    assert run.elapsed < 2.5  # not the 5 s greeting timeout
    assert run.stats.connections == 0 and run.rec.attempts == []
    # no envelope was handed out: all of them stay pending, untouched
    assert all(r.outcome is Outcome.DEFERRED for r in run.rec.results)
