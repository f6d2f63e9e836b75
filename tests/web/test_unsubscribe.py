"""Unsubscribe links: RFC 8058 one-click exactly as providers send it, the confirmation page,
and every way a token or a body can be wrong (nothing changes, a clear 4xx page)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from web_support import (
    BASE,
    FORM,
    ISSUE_ID,
    JEAN,
    MARIA,
    ONE_CLICK_BODY,
    TestClient,
    csrf_of,
    https_unsubscribe,
    message_to,
    path_of,
    settings_of,
    signer_of,
    store_of,
)

from mirage_mailer.store import NewRecipient
from mirage_mailer.web.app import create_app


def unsubscribe_path(project: Path, address: str = MARIA) -> str:
    return path_of(https_unsubscribe(message_to(project, address)))


def one_click(client: TestClient, path: str) -> httpx.Response:
    return client.post(path, content=ONE_CLICK_BODY, headers={"Content-Type": FORM})


def suppressed(project: Path) -> list[str]:
    with store_of(project) as store:
        return [row["email"] for row in store.suppressions()]


def unsubscribe_events(project: Path) -> list[str]:
    with store_of(project) as store:
        return [e["detail"] for e in store.events() if e["kind"] == "unsubscribed"]


def test_one_click_post_exactly_as_rfc_8058(sent_project: Path, client: TestClient) -> None:
    message = message_to(sent_project, MARIA)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = https_unsubscribe(message)
    assert url.startswith(f"{BASE}/u/") and MARIA not in url
    response = client.post(path_of(url), content=ONE_CLICK_BODY,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "location" not in response.headers
    assert "You are unsubscribed" in response.text
    assert suppressed(sent_project) == [MARIA]
    assert unsubscribe_events(sent_project) == [f"one-click: link in issue {ISSUE_ID}"]


def test_one_click_as_multipart_form_also_works(sent_project: Path, client: TestClient) -> None:
    response = client.post(unsubscribe_path(sent_project),
                           files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert suppressed(sent_project) == [MARIA]


def test_replayed_one_click_is_idempotent(sent_project: Path, client: TestClient) -> None:
    path = unsubscribe_path(sent_project)
    for _ in range(3):
        response = client.post(path, content=ONE_CLICK_BODY, headers={"Content-Type": FORM})
        assert response.status_code == 200
    assert suppressed(sent_project) == [MARIA]
    assert len(unsubscribe_events(sent_project)) == 1


def test_get_shows_one_button_and_never_unsubscribes(sent_project: Path,
                                                      client: TestClient) -> None:
    path = unsubscribe_path(sent_project)
    for _ in range(2):  # link scanners open links, sometimes twice
        page = client.get(path)
        assert page.status_code == 200
        assert page.text.count("<button") == 1
        assert f'<form method="post" action="{path}">' in page.text
        assert "m…@example.org" in page.text and MARIA not in page.text
        assert "set-cookie" not in page.headers
    assert client.head(path).status_code == 200
    assert suppressed(sent_project) == []


def test_the_pages_button_unsubscribes(sent_project: Path, client: TestClient) -> None:
    path = unsubscribe_path(sent_project)
    token = csrf_of(client.get(path).text)
    response = client.post(path, data={"csrf": token}, headers={"Origin": BASE})
    assert response.status_code == 200
    assert suppressed(sent_project) == [MARIA]
    assert unsubscribe_events(sent_project) == [f"web: link in issue {ISSUE_ID}"]
    again = client.get(path)
    assert "already unsubscribed" in again.text and "<button" not in again.text


@pytest.mark.parametrize(("body", "headers"), [
    ({}, {}),
    ({"csrf": ""}, {}),
    ({"csrf": "1700000000.AAAAAAAAAAAAAAAAAAAAAAAA"}, {}),
    ({"List-Unsubscribe": "Yes"}, {}),
])
def test_the_button_without_a_valid_csrf_field_is_refused(
        sent_project: Path, client: TestClient, body: dict[str, str],
        headers: dict[str, str]) -> None:
    response = client.post(unsubscribe_path(sent_project), data=body, headers=headers)
    assert response.status_code == 403
    assert "Reload the page" in response.text
    assert suppressed(sent_project) == []


def test_a_csrf_field_from_elsewhere_is_refused(sent_project: Path, client: TestClient) -> None:
    maria, jean = unsubscribe_path(sent_project, MARIA), unsubscribe_path(sent_project, JEAN)
    token = csrf_of(client.get(jean).text)  # issued for another form
    assert client.post(maria, data={"csrf": token}).status_code == 403
    token = csrf_of(client.get(maria).text)
    cross = client.post(maria, data={"csrf": token}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    fetch = client.post(maria, data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch.status_code == 403
    assert suppressed(sent_project) == []


def _flip(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


TAMPER: dict[str, Callable[[str], str]] = {
    "signature": lambda t: _flip(t),
    "subject": lambda t: ".".join([t.split(".")[0], _flip(t.split(".")[1]), t.split(".")[2]]),
    "scope": lambda t: ".".join([_b64("2021-11-other"), *t.split(".")[1:]]),
    "truncated": lambda t: t[: len(t) // 2],
    "extra part": lambda t: t + ".x",
    "no signature": lambda t: ".".join(t.split(".")[:2]) + ".",
    "not base64": lambda t: "%%%." + ".".join(t.split(".")[1:]),
}


@pytest.mark.parametrize("how", sorted(TAMPER))
def test_tampered_tokens_get_400_and_change_nothing(sent_project: Path, client: TestClient,
                                                     how: str) -> None:
    token = unsubscribe_path(sent_project).rsplit("/", 1)[1]
    bad = f"/u/{TAMPER[how](token)}"
    for response in (client.get(bad), one_click(client, bad)):
        assert response.status_code == 400
        assert "not valid" in response.text
    assert suppressed(sent_project) == []


@pytest.mark.parametrize("purpose", ["view", "confirm"])
def test_a_token_for_another_purpose_is_refused(sent_project: Path, client: TestClient,
                                                purpose: str) -> None:
    token = signer_of(sent_project).make(purpose, ISSUE_ID, MARIA)
    assert client.get(f"/u/{token}").status_code == 400
    assert client.post(f"/u/{token}", content=ONE_CLICK_BODY,
                       headers={"Content-Type": FORM}).status_code == 400
    assert suppressed(sent_project) == []


def test_genuine_tokens_for_unknown_recipients_are_refused(sent_project: Path,
                                                          client: TestClient) -> None:
    signer = signer_of(sent_project)
    stranger = signer.make("unsubscribe", ISSUE_ID, "stranger@example.org")
    other_issue = signer.make("unsubscribe", "2021-11-other", MARIA)
    for token in (stranger, other_issue):
        response = client.post(f"/u/{token}", content=ONE_CLICK_BODY,
                               headers={"Content-Type": FORM})
        assert response.status_code == 400
        assert "does not belong to a message we sent" in response.text
    assert suppressed(sent_project) == []


def test_oversized_bodies_get_413(sent_project: Path, client: TestClient) -> None:
    path = unsubscribe_path(sent_project)
    big = ONE_CLICK_BODY + b"&x=" + b"a" * 20_000  # limit: web.max_body_bytes, 16 KiB

    declared = client.post(path, content=big, headers={"Content-Type": FORM})
    assert declared.status_code == 413
    assert "Too much data" in declared.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds on the stream itself
        yield ONE_CLICK_BODY
        for _ in range(40):
            yield b"&x=" + b"a" * 1000

    streamed = client.post(path, content=chunks(), headers={"Content-Type": FORM})
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    lying = client.post(path, content=big, headers={"Content-Type": FORM,
                                                     "Content-Length": "26"})
    assert lying.status_code in (400, 413)
    assert suppressed(sent_project) == []


@pytest.mark.parametrize("declared", [b"\xb2", b"\xd9\xa1", b"1_0", b"-1"])
def test_a_content_length_that_is_no_ascii_number_is_a_400(sent_project: Path,
                                                           declared: bytes) -> None:
    """Latin-1 "\xb2" is "²", which str.isdigit() calls a digit and int() refuses: the guard
    raised outside the error pages (a server's bare 500, no security headers). uvicorn's h11
    refuses such a header first; the app must not count on it."""
    app = create_app(settings_of(sent_project))
    sent: list[dict[str, object]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/u/a.b.c", "raw_path": b"/u/a.b.c",
             "query_string": b"", "root_path": "", "client": ("192.0.2.1", 1),
             "server": ("127.0.0.1", 8025), "headers": [(b"host", b"127.0.0.1:8025"),
                                                       (b"content-length", declared)]}

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 400
    headers = dict(sent[0]["headers"])  # type: ignore[call-overload]
    assert b"content-security-policy" in headers
    assert suppressed(sent_project) == []


@pytest.mark.parametrize(("content", "content_type"), [
    (b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb", "multipart/form-data"),
    (b"garbage", "multipart/form-data; boundary=x"),
    (b"--x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\n"
     b"data\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    (b"&".join(b"f%d=1" % n for n in range(40)), FORM),
])
def test_malformed_bodies_get_400(sent_project: Path, client: TestClient, content: bytes,
                                  content_type: str) -> None:
    response = client.post(unsubscribe_path(sent_project), content=content,
                           headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert "<h1>" in response.text and "Traceback" not in response.text
    assert suppressed(sent_project) == []


def test_a_json_body_is_no_one_click(sent_project: Path, client: TestClient) -> None:
    response = client.post(unsubscribe_path(sent_project),
                           json={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 403
    assert suppressed(sent_project) == []


def test_send_honours_a_one_click_unsubscribe(sent_project: Path, client: TestClient) -> None:
    """Queued rows of every issue flip to suppressed the moment the POST lands."""
    with store_of(sent_project) as store:
        store.add_recipients("2021-11-next", [NewRecipient(MARIA, None, None, "subscribers")])
    assert one_click(client, unsubscribe_path(sent_project)).status_code == 200
    with store_of(sent_project) as store:
        assert store.counts("2021-11-next")["suppressed"] == 1
