"""``bench/latency_proxy.py``, which ``send_throughput.py --rtt`` puts before the sink: bytes
go through whole and in order, each way held the delay asked for (a lower bound only; the
bench reports what it measured, nothing here is a speed target)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PROXY = Path(__file__).resolve().parents[1] / "bench" / "latency_proxy.py"
DELAY_MS = 40


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_a_round_trip_through_the_proxy_is_whole_and_held_both_ways(echo_port: int) -> None:
    proc = subprocess.Popen([sys.executable, str(PROXY), "--to", str(echo_port),
                             "--delay-ms", str(DELAY_MS)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("port ")
        payload = bytes(range(256)) * 400  # larger than one chunk
        with socket.create_connection(("127.0.0.1", int(line.split()[1])), timeout=10) as conn:
            started = time.monotonic()
            conn.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = conn.recv(65536)
                assert chunk
                got += chunk
            elapsed = time.monotonic() - started
        assert got == payload
        assert elapsed >= 2 * DELAY_MS / 1000 * 0.95  # held on the way there and back
    finally:
        proc.terminate()
        proc.wait(10)
