"""After `rotate-secret`, a link sent before the rotation still unsubscribes through the real
server (GET page, then its button; and the RFC 8058 POST), while new links use the new key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
from web_support import (
    JEAN,
    MARIA,
    ONE_CLICK_BODY,
    client_for,
    csrf_of,
    https_unsubscribe,
    message_to,
    outbox,
    part,
    path_of,
    serving,
    signer_of,
    store_of,
)


def rotate(root: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mirage_mailer", "rotate-secret"], cwd=root,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_old_links_keep_working_after_rotation(sent_project: Path) -> None:
    maria = path_of(https_unsubscribe(message_to(sent_project, MARIA)))
    jean = path_of(https_unsubscribe(message_to(sent_project, JEAN)))
    old_key = (sent_project / ".mirage/secret").read_text().split()[0]
    rotate(sent_project)
    assert (sent_project / ".mirage/secret").read_text().split()[1] == old_key
    fresh = signer_of(sent_project).make("unsubscribe", "2021-10-partners-meeting", MARIA)
    assert fresh not in maria  # new links are signed with the new key

    with serving(sent_project) as url, httpx.Client(
            base_url=url, follow_redirects=False, timeout=10) as http:
        page = http.get(maria)
        assert page.status_code == 200, page.text
        assert page.text.count("<button") == 1
        pressed = http.post(maria, data={"csrf": csrf_of(page.text)},
                            headers={"Origin": url})
        assert pressed.status_code == 200, pressed.text
        one_click = http.post(jean, content=ONE_CLICK_BODY,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert one_click.status_code == 200, one_click.text
    with store_of(sent_project) as store:
        assert store.is_suppressed(MARIA) and store.is_suppressed(JEAN)


def cli(root: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "mirage_mailer", *args], cwd=root,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_send_resumed_after_rotation_keeps_every_link_on_its_row(web_project: Path) -> None:
    """Rows queued before the rotation keep their subject id; links signed either way work."""
    cli(web_project, "send", "issues/2021-10-partners-meeting", "--yes", "--limit", "2")
    rotate(web_project)
    cli(web_project, "send", "issues/2021-10-partners-meeting", "--yes")
    messages = outbox(web_project)
    assert len(messages) == 5
    with client_for(web_project) as client:
        for message in messages:
            url = https_unsubscribe(message)
            view = re.search(r'href="(http://127\.0\.0\.1:8025/v/[^"]+)"', part(message, "html"))
            assert view is not None
            assert client.get(path_of(view.group(1))).status_code == 200
            response = client.post(path_of(url), content=ONE_CLICK_BODY,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert response.status_code == 200, response.text
    with store_of(web_project) as store:
        assert len(store.suppressions()) == 5
