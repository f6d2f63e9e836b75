"""`mirage-mailer serve` for real: uvicorn on 127.0.0.1, a provider's RFC 8058 POST over
HTTP with httpx, then a clean stop. Bounded: the server is always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from web_support import MARIA, ONE_CLICK_BODY, https_unsubscribe, message_to, path_of, store_of


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(sent_project: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirage_mailer", "serve", "--port", str(port), "--proxy-headers"],
        cwd=sent_project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.communicate(timeout=5)
            try:
                httpx.get(f"{url}/static/site.css", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate(timeout=5)
        assert "Traceback" not in err, err


def test_a_provider_unsubscribes_over_http(sent_project: Path, server: str) -> None:
    path = path_of(https_unsubscribe(message_to(sent_project, MARIA)))
    with httpx.Client(base_url=server, follow_redirects=False, timeout=10) as http:
        response = http.post(path, content=ONE_CLICK_BODY,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200
        assert "set-cookie" not in response.headers and "location" not in response.headers
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "server" not in response.headers  # no software banner
        behind_proxy = http.get("/", headers={"X-Forwarded-Proto": "https",
                                              "X-Forwarded-For": "203.0.113.7"})
        assert behind_proxy.status_code == 200
        big = http.post(path, content=b"x" * 100_000,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert big.status_code == 413
    with store_of(sent_project) as store:
        assert store.is_suppressed(MARIA)
