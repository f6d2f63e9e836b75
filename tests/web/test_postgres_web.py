"""The web side on a PostgreSQL store shared with the sender: the one-click unsubscribe of a
message the CLI sent, and a double opt-in sign-up that the next send reaches (the real app
through Starlette's test client, the real CLI, a real server)."""

from __future__ import annotations

import re
from pathlib import Path

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
