"""Audit 11d, the sign-up form as a way to mail strangers: the confirmation mail carries no text
the visitor typed, a form that is not UTF-8 is refused (not mangled, stored and mailed), one
IPv6 client is counted by its /64, and a flood of other mailboxes cannot reset one mailbox's
count."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from web_support import (
    BASE,
    TestClient,
    csrf_of,
    outbox,
    part,
    path_of,
    settings_of,
    store_of,
)

from mirage_mailer.web.app import create_app

FORM_PATH = "/subscribe/subscribers"
PHISH = "URGENT: your account is locked, verify at https://evil.example/login"
VICTIM = "victim-echo@example.org"


def _client(app: object, host: str = "203.0.113.9") -> TestClient:
    return TestClient(app, base_url=BASE, follow_redirects=False,  # type: ignore[arg-type]
                      client=(host, 50000))


def _sign_up(http: TestClient | httpx.Client, email: str, *, name: str = "", lang: str = "en",
             headers: dict[str, str] | None = None) -> httpx.Response:
    token = csrf_of(http.get(FORM_PATH, headers=headers or {}).text)
    return http.post(FORM_PATH, data={"csrf": token, "email": email, "name": name,
                                      "lang": lang, "consent": "yes"},
                     headers={"Origin": str(http.base_url).rstrip("/"), **(headers or {})})


def _raw_outbox(project: Path) -> list[bytes]:
    folder = project / "outbox" / "new"
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []


def _subscriptions(project: Path, address: str) -> list[dict[str, object]]:
    with store_of(project) as store:
        return list(store.export(address)["subscriptions"])


# -- 1: nothing the visitor typed reaches the stranger's mailbox ----------------------------


@pytest.mark.parametrize(("lang", "greeting"), [("en", "Hello,"), ("fr", "Bonjour,")])
def test_the_confirmation_mail_carries_no_text_the_visitor_typed(
        web_project: Path, lang: str, greeting: str) -> None:
    """Anyone can post anyone's address: a name typed with it was mailed to that person in
    `To:` and as "Dear <name>," (a plain-text URL that mail clients make a link)."""
    app = create_app(settings_of(web_project))
    assert _sign_up(_client(app), VICTIM, name=PHISH, lang=lang).status_code == 200
    [raw] = _raw_outbox(web_project)
    for text in (b"URGENT", b"evil.example", b"locked"):
        assert text not in raw, raw
    assert f"\nTo: <{VICTIM}>\n".encode() in raw.split(b"\n\n", 1)[0] + b"\n"
    [message] = outbox(web_project)
    assert message["To"].addresses[0].display_name == ""
    plain = part(message, "plain")
    assert plain.startswith(f"{greeting}\n"), plain
    assert f"<p style=\"margin:0 0 12px 0;\">{greeting}</p>" in part(message, "html")
    assert message["Content-Language"] == lang
    # The name is kept for after the person's own confirmation.
    [row] = _subscriptions(web_project, VICTIM)
    assert row["name"] == PHISH and row["status"] == "pending"


def test_the_name_greets_the_person_only_after_they_confirmed(web_project: Path) -> None:
    app = create_app(settings_of(web_project))
    http = _client(app)
    assert _sign_up(http, VICTIM, name="Ana Maria").status_code == 200
    [message] = outbox(web_project)
    assert "Ana" not in part(message, "plain") and "Ana" not in str(message["To"])
    link = re.findall(rf"{re.escape(BASE)}/confirm/\S+", part(message, "plain"))[0]
    page = http.get(path_of(link))
    done = http.post(path_of(link), data={"csrf": csrf_of(page.text)}, headers={"Origin": BASE})
    assert done.status_code == 200
    [row] = _subscriptions(web_project, VICTIM)
    assert row["status"] == "confirmed" and row["name"] == "Ana Maria"
