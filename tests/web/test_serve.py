"""`mirage-mailer serve` for real: uvicorn on 127.0.0.1, a provider's RFC 8058 POST over
HTTP with httpx, then a clean stop. Bounded: the server is always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from web_support import (
    MARIA,
    ONE_CLICK_BODY,
    free_port,
    https_unsubscribe,
    message_to,
    path_of,
    serving,
    store_of,
)


@pytest.fixture
def server(sent_project: Path) -> Iterator[str]:
    with serving(sent_project, free_port(), "--proxy-headers") as url:
        yield url


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
