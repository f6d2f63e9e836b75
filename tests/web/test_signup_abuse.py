"""Audit 11d, the sign-up form as a way to mail strangers: the confirmation mail carries no text
the visitor typed, a form that is not UTF-8 is refused (not mangled, stored and mailed), one
IPv6 client is counted by its /64, and a flood of other mailboxes cannot reset one mailbox's
count."""

from __future__ import annotations

import logging
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
    serving,
    settings_of,
    store_of,
)

from mirage_mailer.web.app import create_app
from mirage_mailer.web.ratelimit import SignUpLimits

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


# -- 3: the per-client limit and IPv6; the mailbox table at its cap --------------------------


def test_one_ipv6_client_is_counted_by_its_64(web_project: Path) -> None:
    """Fifteen addresses of one /64 got fifteen mails out (IPv4: ten, then 429)."""
    app = create_app(settings_of(web_project))
    statuses = [_sign_up(_client(app, f"2001:db8:1:2::{n:x}"), f"v6-{n}@example.org").status_code
                for n in range(1, 16)]
    assert statuses == [200] * 10 + [429] * 5
    assert len(outbox(web_project)) == 10
    assert _sign_up(_client(app, "2001:db8:1:3::1"), "next-64@example.org").status_code == 200
    # An IPv4 client is the same client written as IPv4-mapped IPv6.
    mapped = [_sign_up(_client(app, host), f"v4-{n}@example.org").status_code
              for n, host in enumerate(["198.51.100.7", "::ffff:198.51.100.7"] * 6)]
    assert mapped == [200] * 10 + [429] * 2


@pytest.mark.parametrize(("host", "key"), [
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::ffff:192.0.2.1", "192.0.2.1"),
    ("192.0.2.1", "192.0.2.1"),
    ("testclient", "testclient"),
])
def test_client_keys(host: str, key: str) -> None:
    from mirage_mailer.web.ratelimit import client_key

    assert client_key(host) == key


def test_serve_behind_a_proxy_counts_an_ipv6_client_by_its_64(web_project: Path) -> None:
    """The auditor's case: serve --proxy-headers, X-Forwarded-For as nginx sets it."""
    with serving(web_project, "--proxy-headers") as url, \
            httpx.Client(base_url=url, timeout=10, follow_redirects=False) as http:
        token = csrf_of(http.get(FORM_PATH).text)
        statuses = [http.post(FORM_PATH, headers={"X-Forwarded-For": f"2001:db8:1:2::{n:x}"},
                              data={"csrf": token, "email": f"p{n}@example.org", "lang": "en",
                                    "consent": "yes"}).status_code
                    for n in range(1, 12)]
    assert statuses == [200] * 10 + [429]


def test_a_flood_of_other_mailboxes_cannot_reset_one_mailboxs_count(
        web_project: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The mailbox table is bounded; forgetting its least recently used mailbox let a flood of
    other addresses (from clients enough) give a victim three more mails a day. Full of
    mailboxes within their day, it refuses new ones (429) instead, and says so once."""
    app = create_app(settings_of(web_project))
    limits = app.state.ctx.limits
    limits.per_mailbox.max_keys = 3
    http = _client(app)
    for _ in range(3):
        assert _sign_up(http, VICTIM).status_code == 200
    assert "already sent recently" in _sign_up(http, VICTIM).text
    for other in ("a@example.org", "b@example.org"):
        assert _sign_up(http, other).status_code == 200
    with caplog.at_level(logging.WARNING, logger="mirage_mailer.web.ratelimit"):
        flood = [_sign_up(_client(app, f"192.0.2.{n}"), f"flood{n}@example.org")
                 for n in range(1, 4)]
    assert [r.status_code for r in flood] == [429] * 3
    assert "Too many sign-ups" in flood[0].text and int(flood[0].headers["Retry-After"]) > 0
    assert len([r for r in caplog.records if "sign-ups refused" in r.message]) == 1
    assert "already sent recently" in _sign_up(_client(app, "192.0.2.99"), VICTIM).text
    for n in range(1, 4):
        assert _subscriptions(web_project, f"flood{n}@example.org") == []


def test_the_mailbox_table_takes_new_mailboxes_again_as_days_end() -> None:
    now = [1000.0]
    limits = SignUpLimits(clock=lambda: now[0], max_keys=2)
    assert limits.check("192.0.2.1", "a@example.org")[0].name == "ALLOWED"
    now[0] += 3600
    assert limits.check("192.0.2.2", "b@example.org")[0].name == "ALLOWED"
    verdict, wait = limits.check("192.0.2.3", "c@example.org")
    assert verdict.name == "BUSY" and wait == 24 * 3600 - 3600 + 1
    now[0] += wait
    assert limits.check("192.0.2.3", "c@example.org")[0].name == "ALLOWED"  # a's day ended
    assert limits.check("192.0.2.4", "b@example.org")[0].name == "ALLOWED"  # b kept its count
    assert limits.check("192.0.2.5", "d@example.org")[0].name == "BUSY"


def test_the_client_table_stays_bounded() -> None:
    limits = SignUpLimits(clock=lambda: 0.0, max_keys=5)
    for n in range(50):
        limits.check(f"2001:db8:{n:x}::1", f"m{n}@example.org")
    assert len(limits.per_client) == 5
