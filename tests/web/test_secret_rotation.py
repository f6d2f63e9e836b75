"""After `rotate-secret`, a link sent before the rotation still unsubscribes through the real
server (GET page, then its button; and the RFC 8058 POST), while new links use the new key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from web_support import (
    JEAN,
    MARIA,
    ONE_CLICK_BODY,
    csrf_of,
    free_port,
    https_unsubscribe,
    message_to,
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

    with serving(sent_project, free_port()) as url, httpx.Client(
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
