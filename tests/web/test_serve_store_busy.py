"""`serve` while the store cannot answer (D1): another process reading a DELETE-mode SQLite
file, or a PostgreSQL server out of reach. A one-click unsubscribe (which providers do not
retry) is held on disk and answered 202, recorded once the store answers (by serve, or by the
next send before it plans); never a 500, a traceback or a token in the log."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from web_support import (
    FORM,
    JEAN,
    MARIA,
    ONE_CLICK_BODY,
    TestClient,
    client_for,
    https_unsubscribe,
    message_to,
    path_of,
    serving,
    store_of,
)

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.services.held_unsubscribes import FOLDER
from support.ports import RefusingPorts
from support.sqlite_reader import journal_mode, reader_holding

SQLITE = "  database: .mirage/tracking.sqlite"


def _one_click(http: httpx.Client | TestClient, path: str) -> httpx.Response:
    return http.post(path, content=ONE_CLICK_BODY, headers={"Content-Type": FORM})


def _held(project: Path) -> list[Path]:
    folder = project / ".mirage" / FOLDER
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def test_an_unsubscribe_the_store_cannot_take_now_is_held_and_recorded_after(
        sent_project: Path) -> None:
    database = sent_project / ".mirage" / "tracking.sqlite"
    journal_mode(database, "DELETE")
    path = path_of(https_unsubscribe(message_to(sent_project, MARIA)))
    token = path.rsplit("/", 1)[1]
    log: list[str] = []
    with serving(sent_project, log=log) as url, \
            httpx.Client(base_url=url, follow_redirects=False, timeout=30) as http:
        with reader_holding(database):
            page = http.get(path)  # reading beside a reader works
            assert page.status_code == 200 and "Unsubscribe" in page.text
            held = _one_click(http, path)
            assert held.status_code == 202, held.text
            assert "Your unsubscribe is received" in held.text
            assert "default-src 'none'" in held.headers["content-security-policy"]
            [kept] = _held(sent_project)
            assert MARIA not in kept.read_text() and token not in kept.read_text()
            with store_of(sent_project) as store:
                assert not store.is_suppressed(MARIA)  # not recorded yet, and not said to be
        deadline = time.monotonic() + 30  # the reader gone, serve records it by itself
        while not _recorded(sent_project):
            assert time.monotonic() < deadline, "the held unsubscribe was never recorded"
            time.sleep(0.2)
        assert _held(sent_project) == []
    [err] = log
    assert token not in err and "Traceback" not in err
    assert "unsubscribe held until the store answers" in err
    assert "recorded 1 unsubscribe(s) held while the store was busy" in err


def _recorded(project: Path) -> bool:
    with store_of(project) as store:
        return store.is_suppressed(MARIA)


def test_held_while_postgresql_is_out_of_reach_and_recorded_by_the_next_send(
        sent_project: Path, run_cli: RunCli, caplog: pytest.LogCaptureFixture,
        refusing_port: RefusingPorts) -> None:
    """The PostgreSQL store's equivalent: nothing listens where tracking.database points.
    The next send (here on the SQLite store again) records it before it plans."""
    path = path_of(https_unsubscribe(message_to(sent_project, MARIA)))
    config = sent_project / "mirage.yaml"
    unreachable = f"  database: postgresql://mirage@127.0.0.1:{refusing_port()}/mirage"
    edit(config, SQLITE, unreachable)
    with client_for(sent_project) as client:  # an exception the app did not answer raises
        assert _one_click(client, path).status_code == 202
    assert len(_held(sent_project)) == 1
    lines = [r for r in caplog.records if r.name.startswith("mirage_mailer")]
    assert lines and all(r.exc_info is None for r in lines)
    assert path.rsplit("/", 1)[1] not in caplog.text
    edit(config, unreachable, SQLITE)
    second = sent_project / "issues" / "2021-11-second"
    (sent_project / SAMPLE_ISSUE).rename(second)
    run = run_cli("send", "issues/2021-11-second", "--yes", cwd=sent_project)
    assert run.code == 0 and "sent 4" in run.out and "suppressed 1" in run.out, run
    assert _recorded(sent_project) and _held(sent_project) == []


def test_an_unsubscribe_that_cannot_even_be_held_is_a_503_that_says_so(
        sent_project: Path, caplog: pytest.LogCaptureFixture,
        refusing_port: RefusingPorts) -> None:
    path = path_of(https_unsubscribe(message_to(sent_project, JEAN)))
    edit(sent_project / "mirage.yaml", SQLITE,
         f"  database: postgresql://mirage@127.0.0.1:{refusing_port()}/mirage")
    (sent_project / ".mirage" / FOLDER).write_text("not a folder")
    with client_for(sent_project) as client:
        busy = _one_click(client, path)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "60"
    assert "could not be recorded just now" in busy.text
    line = [r.getMessage() for r in caplog.records if "cannot answer" in r.getMessage()]
    assert line and "POST /u/{token}" in line[0]
    assert path.rsplit("/", 1)[1] not in caplog.text


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
