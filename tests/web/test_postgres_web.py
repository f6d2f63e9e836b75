"""The web side on a PostgreSQL store shared with the sender: the one-click unsubscribe of a
message the CLI sent, and a double opt-in sign-up that the next send reaches (the real app
through Starlette's test client, the real CLI, a real server)."""

from __future__ import annotations

import base64
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from web_support import (
    BASE,
    FORM,
    MARIA,
    ONE_CLICK_BODY,
    client_for,
    csrf_of,
    https_unsubscribe,
    message_to,
    outbox,
    part,
    path_of,
)

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.util.database import PostgresUrl
from mirage_mailer.util.passwords import hash_password
from support.postgres import raw

NEW = "new.reader@example.org"


def test_unsubscribe_and_sign_up_through_the_web_on_postgresql(
        web_project: Path, pg_url: PostgresUrl, run_cli: RunCli) -> None:
    edit(web_project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         f"  database: {pg_url}")
    first = run_cli("send", SAMPLE_ISSUE, "--yes", cwd=web_project)
    assert first.code == 0, first.err
    with client_for(web_project) as client:
        unsubscribed = client.post(path_of(https_unsubscribe(message_to(web_project, MARIA))),
                                   content=ONE_CLICK_BODY, headers={"Content-Type": FORM})
        assert unsubscribed.status_code == 200, unsubscribed.text
        assert raw(pg_url, "SELECT email FROM suppressions") == [(MARIA,)]

        form = client.get("/subscribe/subscribers")
        asked = client.post("/subscribe/subscribers", headers={"Origin": BASE}, data={
            "csrf": csrf_of(form.text), "email": NEW, "name": "Nova", "lang": "en",
            "consent": "yes"})
        assert asked.status_code == 200, asked.text
        [confirmation] = [m for m in outbox(web_project) if NEW in str(m["To"])]
        link = re.findall(rf"{re.escape(BASE)}/confirm/\S+", part(confirmation, "plain"))[0]
        page = client.get(path_of(link))
        confirmed = client.post(path_of(link), data={"csrf": csrf_of(page.text)},
                                headers={"Origin": BASE})
        assert confirmed.status_code == 200, confirmed.text
    assert raw(pg_url, "SELECT email, status FROM subscribers") == [(NEW, "confirmed")]

    result = run_cli("send", SAMPLE_ISSUE, "--yes", cwd=web_project)
    assert result.code == 0, result.err
    assert "sent 1" in result.out  # the new reader only: the others had it, Maria left
    assert raw(pg_url, "SELECT status FROM recipients WHERE email = ?", (NEW,)) == [("sent",)]


def test_a_connection_the_server_dropped_is_replaced_for_the_next_request(
        web_project: Path, pg_url: PostgresUrl, run_cli: RunCli) -> None:
    """The web app keeps its PostgreSQL connection across requests; when the server ends it
    (a restart, an idle timeout), the next request opens a new one instead of a 500."""
    edit(web_project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         f"  database: {pg_url}")
    assert run_cli("send", SAMPLE_ISSUE, "--yes", cwd=web_project).code == 0
    message = message_to(web_project, MARIA)
    [view] = set(re.findall(rf'href="{re.escape(BASE)}(/v/[^"]+)"', part(message, "html")))
    with client_for(web_project, raise_server_exceptions=False) as client:
        assert client.get(view).status_code == 200
        ended = raw(pg_url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert ended and ended[0][0] >= 1  # the app's kept connection was there to end
        for _ in range(3):
            again = client.get(view)
            assert again.status_code == 200, again.text


def test_no_request_path_logs_in_again_on_a_thread_that_has_a_connection(
        web_project: Path, pg_url: PostgresUrl, run_cli: RunCli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A PostgreSQL login costs ~8 ms and a server process: every page and form that reads or
    writes the store (unsubscribe page and POST, sign-up, confirmation page and POST, view
    online, archive, feed, report) uses its worker thread's kept connection, so after a first
    round no thread that has one logs in again, however many requests follow."""
    edit(web_project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         f"  database: {pg_url}")
    assert run_cli("send", SAMPLE_ISSUE, "--yes", cwd=web_project).code == 0
    message = message_to(web_project, MARIA)
    unsubscribe = path_of(https_unsubscribe(message))
    [view] = set(re.findall(rf'href="{re.escape(BASE)}(/v/[^"]+)"', part(message, "html")))
    monkeypatch.setenv("MIRAGE_REPORT_PASSWORD_HASH", hash_password("pw", iterations=1_000))
    report = {"Authorization": "Basic " + base64.b64encode(b"report:pw").decode()}

    logins: list[int] = []  # the thread of each login the app makes
    real_connect = psycopg.connect

    def counting(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("application_name") == "mirage-mailer":
            logins.append(threading.get_ident())
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counting)

    def one_round(client: Any, n: int) -> None:
        page = client.get(unsubscribe)
        assert page.status_code == 200, page.text
        if n == 0:  # the page's button; later the page says it is done already
            done = client.post(unsubscribe, data={"csrf": csrf_of(page.text)},
                               headers={"Origin": BASE})
            assert done.status_code == 200, done.text
        assert client.post(unsubscribe, content=ONE_CLICK_BODY,
                           headers={"Content-Type": FORM}).status_code == 200
        for path in (view, "/", "/feed.xml", "/report/2021-10-partners-meeting",
                     "/report/period/2021-01-01..2030-12-31"):
            answer = client.get(path, headers=report)
            assert answer.status_code == 200, (path, answer.text)
        address = f"reader{n}@example.org"
        form = client.get("/subscribe/subscribers")
        asked = client.post("/subscribe/subscribers", headers={"Origin": BASE}, data={
            "csrf": csrf_of(form.text), "email": address, "lang": "en", "consent": "yes"})
        assert asked.status_code == 200, asked.text
        [mail] = [m for m in outbox(web_project) if address in str(m["To"])]
        link = path_of(re.findall(rf"{re.escape(BASE)}/confirm/\S+", part(mail, "plain"))[0])
        page = client.get(link)
        assert page.status_code == 200, page.text
        confirmed = client.post(link, data={"csrf": csrf_of(page.text)},
                                headers={"Origin": BASE})
        assert confirmed.status_code == 200, confirmed.text

    with client_for(web_project) as client:
        one_round(client, 0)  # each worker thread logs in once (the archive asks first
        first = Counter(logins)  # whether the database holds a store: a second login)
        assert first and all(count <= 2 for count in first.values()), first
        for n in range(1, 4):
            one_round(client, n)
    again = Counter(logins) - first
    assert not set(again) & set(first), (first, again)  # those threads kept theirs
    assert all(count <= 2 for count in again.values()), again  # a new thread: once
    assert raw(pg_url, "SELECT count(*) FROM subscribers WHERE status = 'confirmed'") == [(4,)]
