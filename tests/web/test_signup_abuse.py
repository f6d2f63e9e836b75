"""Audit 11d, the sign-up form as a way to mail strangers: the confirmation mail carries no text
the visitor typed, a form that is not UTF-8 is refused (not mangled, stored and mailed), one
IPv6 client is counted by its /64, and a flood of other mailboxes cannot reset one mailbox's
count."""

from __future__ import annotations

import re
import time
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


# -- 2: a form that is not UTF-8 ------------------------------------------------------------

URLENCODED = "application/x-www-form-urlencoded"


def _multipart(fields: list[tuple[bytes, bytes]]) -> tuple[bytes, str]:
    body = b"".join(b"--XyZ\r\nContent-Disposition: form-data; name=\"" + name + b"\"\r\n\r\n"
                    + value + b"\r\n" for name, value in fields) + b"--XyZ--\r\n"
    return body, "multipart/form-data; boundary=XyZ"


BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "percent-encoded address": (b"email=r%FF@example.org&name=Jos%E9", URLENCODED),
    "percent-encoded name": (b"email=r@example.org&name=Jos%E9", URLENCODED),
    "raw address": (b"email=r\xff@example.org&name=Jose", URLENCODED),
    "raw name": (b"email=r@example.org&name=Jos\xe9", URLENCODED),
    "raw field name": (b"email=r@example.org&n\xe9=x", URLENCODED),
    "multipart address": _multipart([(b"email", b"r\xff@example.org")]),
    "multipart name": _multipart([(b"email", b"r@example.org"), (b"name", b"Jos\xe9")]),
    "multipart field name": _multipart([(b"email", b"r@example.org"), (b"n\xe9", b"x")]),
}


def _with_the_rest(body: bytes, content_type: str, token: str) -> bytes:
    """The body with consent, language and the CSRF field added, in its own encoding."""
    if content_type == URLENCODED:
        return body + b"&consent=yes&lang=en&csrf=" + token.encode()
    rest, _ = _multipart([(b"consent", b"yes"), (b"lang", b"en"), (b"csrf", token.encode())])
    return body.removesuffix(b"--XyZ--\r\n") + rest


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_form_that_is_not_utf8_is_a_400_with_nothing_stored_or_sent(
        web_project: Path, case: str) -> None:
    """Starlette read raw bytes as Latin-1 and bad percent-escapes as U+FFFD: the mangled
    address was stored and mailed. What web/forms.py promises is a 400 and nothing done."""
    app = create_app(settings_of(web_project))
    http = _client(app)
    body, content_type = BAD_BODIES[case]
    response = http.post(FORM_PATH, content=_with_the_rest(body, content_type,
                                                           csrf_of(http.get(FORM_PATH).text)),
                         headers={"Content-Type": content_type, "Origin": BASE})
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert "The form is not valid UTF-8." in response.text
    time.sleep(0.1)
    assert _raw_outbox(web_project) == []
    with store_of(web_project) as store:
        for address in ("r@example.org", "r\ufffd@example.org", "r\u00ff@example.org"):
            assert store.export(address)["subscriptions"] == [], address


def test_raw_utf8_in_a_urlencoded_form_is_read_as_utf8(web_project: Path) -> None:
    """A script may send UTF-8 unescaped (curl --data 'name=José'): read as UTF-8, where
    Starlette made it "JosÃ©"; percent-escaped UTF-8, as browsers send it, is read as before."""
    app = create_app(settings_of(web_project))
    http = _client(app)
    token = csrf_of(http.get(FORM_PATH).text).encode()
    for n, name in ((1, "Jos\u00e9".encode()), (2, b"Jos%C3%A9")):
        body = b"email=u%d@example.org&name=" % n + name + b"&consent=yes&lang=en&csrf=" + token
        response = http.post(FORM_PATH, content=body,
                             headers={"Content-Type": URLENCODED, "Origin": BASE})
        assert response.status_code == 200, response.text
        assert _subscriptions(web_project, f"u{n}@example.org")[0]["name"] == "Jos\u00e9"
    body, content_type = _multipart([(b"email", b"u3@example.org"),
                                     (b"name", "Jos\u00e9".encode()), (b"consent", b"yes"),
                                     (b"lang", b"en"), (b"csrf", token)])
    response = http.post(FORM_PATH, content=body,
                         headers={"Content-Type": content_type, "Origin": BASE})
    assert response.status_code == 200, response.text
    assert _subscriptions(web_project, "u3@example.org")[0]["name"] == "Jos\u00e9"
