"""Through the real `serve`: a confirmed subscriber who unsubscribed can sign up again (a new
confirmation mail, whose POST lifts the unsubscription), and without tracking.base_url the
confirmation link points at the host and port `serve` listens on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
from web_support import csrf_of, free_port, main_of, outbox, part, path_of, serving, store_of

FORM_PATH = "/subscribe/subscribers"
READER = "returning.reader@example.org"
STRANGER = "first.timer@example.org"


def _sign_up(http: httpx.Client, address: str) -> httpx.Response:
    token = csrf_of(http.get(FORM_PATH).text)
    response = http.post(FORM_PATH, data={"csrf": token, "email": address, "name": "",
                                          "lang": "en", "consent": "yes"})
    assert response.status_code == 200, response.text
    return response


def _mails_to(project: Path, address: str, count: int, timeout: float = 15.0) -> list[EmailMessage]:
    """The confirmation mails to ``address`` once there are ``count`` (the mail is sent after
    the page, as a background task)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in outbox(project) if address in str(m["To"])]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _confirm_path(message: EmailMessage) -> str:
    [link] = re.findall(r"https?://\S+/confirm/\S+", part(message, "plain"))
    return path_of(link)


def _press_confirm(http: httpx.Client, path: str) -> None:
    page = http.get(path)
    assert page.status_code == 200, page.text
    pressed = http.post(path, data={"csrf": csrf_of(page.text)})
    assert pressed.status_code == 200, pressed.text


def _cli_unsubscribe(project: Path, address: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "mirage_mailer", "unsubscribe", address],
                          cwd=project, capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr


def test_a_confirmed_subscriber_who_unsubscribed_can_sign_up_again(web_project: Path) -> None:
    with serving(web_project) as url, \
            httpx.Client(base_url=url, timeout=10, follow_redirects=False) as http:
        _sign_up(http, READER)
        [first] = _mails_to(web_project, READER, 1)
        _press_confirm(http, _confirm_path(first))
        _cli_unsubscribe(web_project, READER)
        with store_of(web_project) as store:
            assert store.is_suppressed(READER)

        again = _sign_up(http, READER)
        stranger = _sign_up(http, STRANGER)
        # The page says the same whether or not the address was subscribed before.
        assert (main_of(again.text).replace(READER, "X")
                == main_of(stranger.text).replace(STRANGER, "X"))
        mails = _mails_to(web_project, READER, 2)
        assert len(mails) == 2, "no new confirmation mail after unsubscribing"
        with store_of(web_project) as store:
            assert store.is_suppressed(READER)  # a form alone is not consent
        _press_confirm(http, _confirm_path(mails[1]))

        # Still subscribed (not suppressed): a further sign-up mails nothing, as before.
        _sign_up(http, READER)
        time.sleep(0.5)
        assert len(_mails_to(web_project, READER, 3, timeout=1.0)) == 2
    with store_of(web_project) as store:
        assert not store.is_suppressed(READER)
        exported = store.export(READER)
    assert [s["status"] for s in exported["subscriptions"]] == ["confirmed"]
    kinds = [e["kind"] for e in exported["events"]]
    assert kinds.count("subscribed") == 2 and kinds[-1] == "resubscribed"


def test_without_base_url_the_confirmation_link_uses_the_port_serve_listens_on(
        project: Path) -> None:
    port = free_port()
    with serving(project, port=port) as url, \
            httpx.Client(base_url=url, timeout=10, follow_redirects=False) as http:
        _sign_up(http, READER)
        [message] = _mails_to(project, READER, 1)
        links = re.findall(r"https?://\S+/confirm/\S+", part(message, "plain"))
        assert links and all(link.startswith(f"http://127.0.0.1:{port}/confirm/")
                             for link in links), links
        _press_confirm(http, path_of(links[0]))  # the link works on this server
    with store_of(project) as store:
        assert [s["status"] for s in store.export(READER)["subscriptions"]] == ["confirmed"]
