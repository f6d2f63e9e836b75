"""`mirage-mailer serve` for real: uvicorn on 127.0.0.1, a provider's RFC 8058 POST over
HTTP with httpx, then a clean stop. Bounded: the server is always stopped."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
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

from helpers import RunCli


@pytest.fixture
def server(sent_project: Path) -> Iterator[str]:
    with serving(sent_project, "--proxy-headers") as url:
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


def _serve(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mirage_mailer", "serve", *args], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_serving_is_said_only_once_the_port_is_bound(web_project: Path) -> None:
    """The moment "serving" is printed, a connection to the port is accepted."""
    port = free_port()
    proc = _serve(web_project, "--port", str(port))
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    try:
        line = lines.get(timeout=20)
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # refused here would mean "serving" came before the bind
        assert line.startswith(f"serving MIraGE on http://127.0.0.1:{port}/"), line
        assert httpx.get(f"http://127.0.0.1:{port}/static/site.css", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_a_port_in_use_is_one_line_and_exit_3(web_project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = _serve(web_project, "--port", str(port))
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, (out, err)
    assert "serving" not in out and out == ""
    assert err.splitlines() == [f"127.0.0.1:{port}: cannot listen on this address (is another "
                                "server using the port? choose --port)"]


def test_serve_listens_on_127_0_0_1_port_8080_by_default(run_cli: RunCli) -> None:
    """8025 is where local test mail servers listen (issue 9): the web side keeps off it."""
    from mirage_mailer.commands.web import LOCAL_BASE, serve_command

    defaults = {param.name: param.default for param in serve_command.params}
    assert defaults["host"] == "127.0.0.1" and defaults["port"] == 8080
    assert LOCAL_BASE == "http://127.0.0.1:8080"
    shown = run_cli("serve", "--help")
    assert shown.code == 0 and "default: 8080" in shown.out.replace("\n", " ")


def test_serve_refuses_a_user_without_a_password_as_send_does(
        web_project: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Confirmation mails log in as ``send`` does, so ``serve`` refuses half-set credentials
    at start (exit 2, one line, the same words as ``send``) instead of mailing without AUTH."""
    monkeypatch.delenv("MIRAGE_SMTP_PASSWORD", raising=False)
    env = {"MIRAGE_SMTP_USER": "officer"}
    line = ("mirage.yaml:20: MIRAGE_SMTP_USER is set but MIRAGE_SMTP_PASSWORD is not "
            "(export MIRAGE_SMTP_PASSWORD=... (or unset MIRAGE_SMTP_USER))")
    served = run_cli("serve", "--port", str(free_port()), env=env)
    assert (served.code, served.out, served.err.splitlines()) == (2, "", [line])
    sent = run_cli("send", "issues/2021-10-partners-meeting", "--yes", env=env)
    assert sent.code == 2 and line in sent.err.splitlines(), sent.err
    assert "officer" not in served.err + sent.err
