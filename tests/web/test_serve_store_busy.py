"""`serve` while another process holds the SQLite store (D1): a one-click unsubscribe that
cannot be recorded now is a 503 with Retry-After that says so, never a 200; one log line,
no traceback, no token; and it is recorded when the provider or reader tries again."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from web_support import (
    FORM,
    MARIA,
    ONE_CLICK_BODY,
    client_for,
    free_port,
    https_unsubscribe,
    message_to,
    path_of,
    serving,
    store_of,
)

from helpers import edit
from support.sqlite_reader import journal_mode, reader_holding


def test_an_unsubscribe_the_store_cannot_take_now_is_503_and_logged_without_token(
        sent_project: Path) -> None:
    database = sent_project / ".mirage" / "tracking.sqlite"
    journal_mode(database, "DELETE")
    path = path_of(https_unsubscribe(message_to(sent_project, MARIA)))
    token = path.rsplit("/", 1)[1]
    log: list[str] = []
    with serving(sent_project, free_port(), log=log) as url, \
            httpx.Client(base_url=url, follow_redirects=False, timeout=30) as http:
        with reader_holding(database):
            page = http.get(path)  # reading beside a reader works
            assert page.status_code == 200 and "Unsubscribe" in page.text
            busy = http.post(path, content=ONE_CLICK_BODY, headers={"Content-Type": FORM})
            assert busy.status_code == 503, busy.text
            assert busy.headers["retry-after"] == "60"
            assert "could not be recorded just now" in busy.text
            assert "default-src 'none'" in busy.headers["content-security-policy"]
        with store_of(sent_project) as store:
            assert not store.is_suppressed(MARIA)  # not recorded, and not said to be
        done = http.post(path, content=ONE_CLICK_BODY, headers={"Content-Type": FORM})
        assert done.status_code == 200  # the retry Retry-After asks for goes through
    with store_of(sent_project) as store:
        assert store.is_suppressed(MARIA)
    [err] = log
    assert token not in err and "Traceback" not in err
    [line] = [x for x in err.splitlines() if "cannot answer" in x]
    assert "WARNING" in line and "POST /u/{token}" in line and "database is locked" in line


def test_a_bug_is_logged_with_the_route_not_the_token(
        sent_project: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("mirage_mailer.web.unsubscribe.link_target", broken)
    path = path_of(https_unsubscribe(message_to(sent_project, MARIA)))
    with client_for(sent_project, raise_server_exceptions=False) as client:
        assert client.get(path).status_code == 500
    assert "error answering GET /u/{token}" in caplog.text
    assert path.rsplit("/", 1)[1] not in caplog.text


def test_a_postgresql_server_out_of_reach_is_503_without_token_or_traceback(
        sent_project: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The PostgreSQL store's equivalent: nothing listens where tracking.database points."""
    path = path_of(https_unsubscribe(message_to(sent_project, MARIA)))
    edit(sent_project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         f"  database: postgresql://mirage@127.0.0.1:{free_port()}/mirage")
    with client_for(sent_project) as client:  # an exception the app did not answer raises
        busy = client.post(path, content=ONE_CLICK_BODY, headers={"Content-Type": FORM})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "60"
        assert "could not be recorded just now" in busy.text
    [record] = [r for r in caplog.records if r.name.startswith("mirage_mailer")]
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "cannot answer POST /u/{token} now" in record.getMessage()
    assert path.rsplit("/", 1)[1] not in caplog.text
