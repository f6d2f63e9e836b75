"""The second audit of the public side: a 405's Allow names every method of its path, the
report's password check cannot be used to burn the server's CPU, a body that stops coming
is answered 408, and the confirm page shows the name a sign-up will use."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import html
import re
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from web_support import (
    BASE,
    ISSUE_ID,
    TestClient,
    client_for,
    csrf_of,
    outbox,
    part,
    path_of,
    serving,
    store_of,
)

from mirage_mailer.util import passwords
from mirage_mailer.web import guard, report_gate, report_routes
from mirage_mailer.web.report_gate import ReportGate

VICTIM = "victim@example.org"
PATHS_WITH_A_FORM = ("/subscribe/subscribers", "/u/some.token.value", "/confirm/some.token.value")


@pytest.mark.parametrize("path", PATHS_WITH_A_FORM)
def test_a_405_allows_every_method_its_path_takes(fresh_client: TestClient, path: str) -> None:
    """RFC 9110 §15.5.6: Allow lists the methods the resource supports; the POST was missing,
    as Starlette answered from the path's GET route alone."""
    answer = fresh_client.put(path)
    assert answer.status_code == 405
    allowed = {method.strip() for method in answer.headers["allow"].split(",")}
    assert allowed == {"GET", "HEAD", "POST"}
    assert "Not allowed here" in answer.text


def test_a_405_of_a_get_only_path_allows_get_and_head(fresh_client: TestClient) -> None:
    answer = fresh_client.post("/feed.xml")
    assert answer.status_code == 405
    assert {m.strip() for m in answer.headers["allow"].split(",")} == {"GET", "HEAD"}


# -- the report's password check ---------------------------------------------------------------

HASH_ENV = "MIRAGE_REPORT_PASSWORD_HASH"
PASSWORD = "correct horse battery staple"
REPORT = f"/report/{ISSUE_ID}"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every PBKDF2 the report runs (the real one, counted)."""
    monkeypatch.setenv(HASH_ENV, passwords.hash_password(PASSWORD, iterations=2_000))
    seen: list[str] = []

    def counted(password: str, encoded: str) -> bool:
        seen.append(password)
        return passwords.verify_password(password, encoded)

    monkeypatch.setattr(report_routes, "verify_password", counted)
    return seen


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def report_client(sent_project: Path, clock: Clock) -> Iterator[TestClient]:
    with client_for(sent_project) as http:
        app = http.app
        ctx = app.state.ctx  # type: ignore[attr-defined]
        app.state.ctx = dataclasses.replace(ctx, report_gate=ReportGate(clock=clock))  # type: ignore[attr-defined]
        yield http


def test_wrong_passwords_are_refused_without_a_pbkdf2_after_a_few(
        report_client: TestClient, checks: list[str], clock: Clock) -> None:
    for attempt in range(report_gate.ATTEMPTS):
        assert report_client.get(REPORT, headers=basic("report", f"guess {attempt}")) \
            .status_code == 401
    assert len(checks) == report_gate.ATTEMPTS
    for _ in range(50):
        refused = report_client.get(REPORT, headers={**basic("report", "guess"),
                                                     "Accept-Language": "fr"})
        assert refused.status_code == 429
    assert len(checks) == report_gate.ATTEMPTS  # no PBKDF2 for any of the 50
    wait = int(refused.headers["retry-after"])
    assert 0 < wait <= report_gate.WINDOW + 1
    assert refused.headers["content-language"] == "fr"
    assert "Trop de mots de passe erronés" in refused.text
    assert "www-authenticate" not in refused.headers
    english = report_client.get(REPORT, headers=basic("report", "guess"))
    assert english.status_code == 429 and "Too many wrong passwords" in english.text
    clock.now += wait  # the window has passed: the client may try again
    assert report_client.get(REPORT, headers=basic("report", "guess")).status_code == 401
    assert len(checks) == report_gate.ATTEMPTS + 1


def test_the_right_password_works_and_is_checked_once_in_a_while(
        report_client: TestClient, checks: list[str], clock: Clock) -> None:
    for attempt in range(report_gate.ATTEMPTS - 1):  # a few typos first
        report_client.get(REPORT, headers=basic("report", f"typo {attempt}"))
    for _ in range(20):
        assert report_client.get(REPORT, headers=basic("report", PASSWORD)).status_code == 200
    assert checks.count(PASSWORD) == 1  # remembered: the reader's pages cost no PBKDF2
    for attempt in range(report_gate.ATTEMPTS):  # the right password cleared the count
        assert report_client.get(REPORT, headers=basic("report", f"late typo {attempt}")) \
            .status_code == 401
    assert report_client.get(REPORT, headers=basic("report", "one more")).status_code == 429
    assert report_client.get(REPORT, headers=basic("report", PASSWORD)).status_code == 200
    assert report_client.get(REPORT, headers=basic("someone", PASSWORD)).status_code == 429
    clock.now += report_gate.REMEMBERED_FOR  # forgotten: checked again (after the window)
    clock.now += report_gate.WINDOW
    assert report_client.get(REPORT, headers=basic("report", PASSWORD)).status_code == 200
    assert checks.count(PASSWORD) == 2


def test_a_new_hash_forgets_the_remembered_password(
        report_client: TestClient, checks: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert report_client.get(REPORT, headers=basic("report", PASSWORD)).status_code == 200
    monkeypatch.setenv(HASH_ENV, passwords.hash_password("a new password", iterations=2_000))
    assert report_client.get(REPORT, headers=basic("report", PASSWORD)).status_code == 401
    assert report_client.get(REPORT, headers=basic("report", "a new password")).status_code \
        == 200


def test_other_clients_are_not_refused_for_one_clients_guesses(
        sent_project: Path, checks: list[str]) -> None:
    with client_for(sent_project) as attacker:
        for attempt in range(report_gate.ATTEMPTS + 3):
            attacker.get(REPORT, headers=basic("report", f"guess {attempt}"))
        assert attacker.get(REPORT, headers=basic("report", PASSWORD)).status_code == 429
        owner = TestClient(attacker.app, base_url=str(attacker.base_url),
                           client=("198.51.100.7", 50000))
        assert owner.get(REPORT, headers=basic("report", PASSWORD)).status_code == 200


# -- a body that stops coming --------------------------------------------------------------


def _stalled_post(url: str, *, lang: str, budget: float) -> tuple[bytes, float, bool]:
    """Headers and a tenth of the body they announce, then silence: what the server answers
    within ``budget`` seconds, how long that took, and whether it then closed."""
    parts = urlsplit(url)
    head = (f"POST /subscribe/subscribers HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n"
            f"Accept-Language: {lang}\r\n\r\n").encode("ascii") + b"email=a%40example.org"
    answer = b""
    closed = False
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=budget) as sock:
        sock.sendall(head)
        deadline = started + budget
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            answer += chunk
    return answer, time.monotonic() - started, closed


def test_a_body_that_stops_coming_is_answered_408_and_closed(web_project: Path) -> None:
    budget = guard.BODY_IDLE_SECONDS + 5
    with serving(web_project) as url:
        answer, took, closed = _stalled_post(url, lang="fr", budget=budget)
    assert answer.startswith(b"HTTP/1.1 408 "), (answer[:200], took)
    assert closed, "the connection must not stay open for the rest of the body"
    assert guard.BODY_IDLE_SECONDS - 0.5 <= took < budget
    head, _, page = answer.partition(b"\r\n\r\n")
    assert b"content-language: fr" in head.lower()
    text = html.unescape(page.decode("utf-8"))
    assert "La requête a cessé d'arriver avant d'être complète" in text
    assert "La requête a pris trop de temps" in text


def _guarded(app: ASGIApp) -> guard.Guard:
    def refuse(exc: HTTPException, scope: Scope) -> ASGIApp:
        raise AssertionError("nothing is refused before the body here")
    return guard.Guard(app, max_body_bytes=10_000, refuse=refuse, body_idle=0.3,
                       body_deadline=0.8)


async def _read_body_then_wait(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if not message.get("more_body", False):
            break
    await receive()  # after the body: waiting for a disconnect has no time limit
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _post_scope() -> Scope:
    return {"type": "http", "method": "POST", "path": "/", "headers": []}


def test_a_body_that_trickles_past_the_deadline_is_refused() -> None:
    """One byte every 0.1 s keeps under the idle limit, never under the total deadline."""
    async def trickle() -> Message:
        await asyncio.sleep(0.1)
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def send(message: Message) -> None:
        raise AssertionError(message)

    started = time.monotonic()
    with pytest.raises(guard.BodyTimeout) as refused:
        asyncio.run(_guarded(_read_body_then_wait)(_post_scope(), trickle, send))
    assert 0.7 <= time.monotonic() - started < 1.5
    assert refused.value.status_code == 408
    assert refused.value.headers == {"Connection": "close"}


def test_a_whole_body_and_a_slow_disconnect_are_not_timed_out() -> None:
    messages: list[Message] = [{"type": "http.request", "body": b"a=1", "more_body": True},
                               {"type": "http.request", "body": b"&b=2", "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        if messages:
            await asyncio.sleep(0.2)  # under the idle limit
            return messages.pop(0)
        await asyncio.sleep(1.0)  # longer than the deadline: no longer the body's time
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(_guarded(_read_body_then_wait)(_post_scope(), receive, send))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"ok"


def test_a_client_that_leaves_mid_body_is_no_error(web_project: Path) -> None:
    """Leaving is the client's right: no 500, no traceback in the operator's log."""
    log: list[str] = []
    with serving(web_project, log=log) as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
            sock.sendall(f"POST /subscribe/subscribers HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                         "Content-Type: application/x-www-form-urlencoded\r\n"
                         "Content-Length: 200\r\n\r\nemail=a".encode("ascii"))
            time.sleep(0.5)
        time.sleep(0.5)
    assert "ERROR" not in log[0] and "Traceback" not in log[0], log[0]


# -- the name a sign-up will use ---------------------------------------------------------------

STRANGER_NAME = "Dr <b>Evil</b> & Co"


def _sign_up_with_name(http: TestClient, address: str, name: str, lang: str = "fr") -> str:
    """The confirm path mailed for a sign-up of ``address`` with ``name`` typed beside it."""
    form = http.get("/subscribe/subscribers")
    answer = http.post("/subscribe/subscribers",
                       data={"csrf": csrf_of(form.text), "email": address, "name": name,
                             "lang": lang, "consent": "yes"}, headers={"Origin": BASE})
    assert answer.status_code == 200, answer.text
    root = http.app.state.ctx.settings.root  # type: ignore[attr-defined]
    [mail] = [m for m in outbox(root) if address in str(m["To"])][-1:]
    return path_of(confirm_link(part(mail, "plain")))


def confirm_link(text: str) -> str:
    [link] = re.findall(rf"{re.escape(BASE)}/confirm/\S+", text)
    return link


def _row(project: Path, address: str) -> dict[str, object]:
    with store_of(project) as store:
        [row] = store.export(address)["subscriptions"]
    return dict(row)


def test_the_confirm_page_shows_the_name_the_sign_up_will_use(
        web_project: Path, fresh_client: TestClient) -> None:
    path = _sign_up_with_name(fresh_client, VICTIM, STRANGER_NAME)
    page = fresh_client.get(path)
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert f"L'inscription indique le nom {STRANGER_NAME} :" in \
        re.sub(r"</?strong>", "", text)
    assert "<b>Evil</b>" not in page.text  # escaped, never markup
    assert "M'abonner sans ce nom" in text and "Confirmer mon abonnement" in text
    assert _row(web_project, VICTIM)["status"] == "pending"  # the GET changed nothing
    english = fresh_client.get(path, headers={"Accept-Language": "en"})  # the sign-up's: fr
    assert english.headers["content-language"] == "fr"


def test_the_person_can_subscribe_without_the_name(web_project: Path,
                                                   fresh_client: TestClient) -> None:
    path = _sign_up_with_name(fresh_client, VICTIM, STRANGER_NAME)
    page = fresh_client.get(path).text
    done = fresh_client.post(path, data={"csrf": csrf_of(page), "name_shown": STRANGER_NAME,
                                         "without_name": "yes"}, headers={"Origin": BASE})
    assert done.status_code == 200
    row = _row(web_project, VICTIM)
    assert row["status"] == "confirmed" and row["name"] is None


def test_the_name_is_kept_only_as_the_page_showed_it(web_project: Path,
                                                     fresh_client: TestClient) -> None:
    kept = _sign_up_with_name(fresh_client, "ana@example.org", "Ana Maria")
    page = fresh_client.get(kept).text
    assert 'name="name_shown" value="Ana Maria"' in page
    fresh_client.post(kept, data={"csrf": csrf_of(page), "name_shown": "Ana Maria"},
                      headers={"Origin": BASE})
    assert _row(web_project, "ana@example.org")["name"] == "Ana Maria"

    changed = _sign_up_with_name(fresh_client, VICTIM, "Victor")
    page = fresh_client.get(changed).text
    with sqlite3.connect(web_project / ".mirage" / "tracking.sqlite") as conn:
        conn.execute("UPDATE subscribers SET name = ?", (STRANGER_NAME,))  # a later sign-up
    fresh_client.post(changed, data={"csrf": csrf_of(page), "name_shown": "Victor"},
                      headers={"Origin": BASE})
    row = _row(web_project, VICTIM)
    assert row["status"] == "confirmed" and row["name"] is None


def test_a_sign_up_without_a_name_has_one_button(fresh_client: TestClient) -> None:
    page = fresh_client.get(_sign_up_with_name(fresh_client, VICTIM, "")).text
    assert "M'abonner sans ce nom" not in page and "L'inscription indique" not in page
