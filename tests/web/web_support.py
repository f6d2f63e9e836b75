"""Helpers for the web tests (imported as `web_support`): mail in the outbox, tokens, stores."""

from __future__ import annotations

import email
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from mirage_mailer.project.config import Settings, load_settings
from mirage_mailer.store import Store
from mirage_mailer.util.tokens import Signer, load_secret
from mirage_mailer.web.app import create_app
from support.ports import free_port

with warnings.catch_warnings():  # Starlette prefers httpx2; httpx is what the project ships
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient as TestClient

BASE = "http://127.0.0.1:8025"
ISSUE_ID = "2021-10-partners-meeting"
MARIA = "maria.georgiou@example.org"
JEAN = "jean.dupont@example.org"
# RFC 8058, section 3.1: exactly what a mail provider sends.
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy",
                    "x-frame-options")


def settings_of(project: Path) -> Settings:
    return load_settings(project / "mirage.yaml")


def signer_of(project: Path) -> Signer:
    settings = settings_of(project)
    return Signer(load_secret(settings.state_dir, settings.tracking.secret_env))


def client_for(root: Path, *, raise_server_exceptions: bool = True) -> TestClient:
    """A client of the real app, at the project's public address, never following redirects."""
    return TestClient(create_app(settings_of(root)), base_url=BASE, follow_redirects=False,
                      raise_server_exceptions=raise_server_exceptions)


def store_of(project: Path) -> Store:
    return Store(settings_of(project).tracking.database)


def forget_as_sent(project: Path) -> None:
    """The store as an older mirage-mailer left it: no record of any issue as sent, so the
    archive renders issues from today's files."""
    with store_of(project) as store, store._write() as conn:
        conn.execute("DELETE FROM issues_as_sent")


def outbox(project: Path) -> list[EmailMessage]:
    """Every message in the Maildir outbox (new/), oldest first."""
    folder = project / "outbox" / "new"
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def message_to(project: Path, address: str) -> EmailMessage:
    matches = [m for m in outbox(project) if address in str(m["To"])]
    assert len(matches) == 1, f"{len(matches)} messages to {address}"
    return matches[0]


def part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    assert body is not None and isinstance(body, EmailMessage)
    content = body.get_content()
    assert isinstance(content, str)
    return content


def https_unsubscribe(message: EmailMessage) -> str:
    """The web URL of the List-Unsubscribe header (the one providers POST to)."""
    urls = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    web = [u for u in urls if u.startswith("http")]
    assert len(web) == 1, urls
    return web[0]


def path_of(url: str) -> str:
    return urlsplit(url).path


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF field in the page"
    return match.group(1)


def main_of(page: str) -> str:
    """The <main> element of a site page (what differs between two pages)."""
    match = re.search(r"<main\b.*</main>", page, re.S)
    assert match
    return match.group(0)


@contextmanager
def serving(root: Path, *extra: str, port: int | None = None, wait: float = 20.0,
            log: list[str] | None = None) -> Iterator[str]:
    """`mirage-mailer serve` for real on 127.0.0.1:port (``port``, or a free one); stopped
    (SIGINT) and checked after; its log (stderr) appended to ``log`` when given.

    Ready when serve says "serving" (it binds first): a page that answers is no proof, since
    it could come from another pytest worker's server. A free port picked here that another
    worker took in the meantime is tried again on another; a port the caller chose is not."""
    for _attempt in range(5):
        proc, banner = _start_serve(root, port or free_port(), extra, wait)
        if banner is not None:
            break
        out, err = proc.communicate(timeout=5)
        if port is not None or "cannot listen on this address" not in err:
            pytest.fail(f"serve exited with {proc.returncode}: {out}{err}")
    else:
        pytest.fail(f"serve found no free port in five tries: {err}")
    try:
        yield banner
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate(timeout=5)
        if log is not None:
            log.append(err)
        assert "Traceback" not in err, err


def _start_serve(root: Path, port: int, extra: tuple[str, ...],
                 wait: float) -> tuple[subprocess.Popen[str], str | None]:
    """serve started on ``port``, and its URL once it says "serving" (None: it ended first)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MIRAGE_SMTP_USER", "MIRAGE_SMTP_PASSWORD")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirage_mailer", "serve", "--host", "127.0.0.1",
         "--port", str(port), *extra],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**env, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    deadline = time.monotonic() + wait
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.communicate(timeout=5)
                pytest.fail("the server did not say it was serving in time")
            if not selector.select(left):
                continue
            line = proc.stdout.readline()
            if line == "":  # it ended without serving
                proc.wait(timeout=5)
                return proc, None
            if line.startswith("serving "):
                return proc, f"http://127.0.0.1:{port}"
