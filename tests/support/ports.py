"""Ports for tests that run side by side (pytest-xdist workers, or two pytest runs at once).

A port "nobody listens on" must stay that way for the whole test: one bound and then
released can be handed by the kernel to a server another worker starts a moment later, and
the test would then talk to that server instead of meeting a refusal. A TCP socket that is
bound but never listens keeps the port ours, and Linux answers a connection to it at once
with a reset (connection refused), exactly as for a port nobody has.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager


def free_port() -> int:
    """A port of 127.0.0.1 free a moment ago, for a server a test starts on it. Another
    worker may take it in between: start the server on port 0 where it can, or retry."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RefusingPorts:
    """Hands out ports of 127.0.0.1 that refuse connections until ``close()``."""

    def __init__(self) -> None:
        self._held = ExitStack()

    def __call__(self) -> int:
        sock = self._held.enter_context(socket.socket())
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

    def close(self) -> None:
        self._held.close()


@contextmanager
def refusing_ports() -> Iterator[RefusingPorts]:
    """``with refusing_ports() as refusing: port = refusing()``: each port refuses, and no
    other server can take it, until the block ends."""
    ports = RefusingPorts()
    try:
        yield ports
    finally:
        ports.close()
