"""No redirect is built from the request's Host header: Starlette's trailing-slash redirect sent
'GET /u/<token>/' with 'Host: evil.example' to http://evil.example/u/<token>. The addresses
the links and the docs use answer as they are, with or without their slash."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_support import TestClient, https_unsubscribe, outbox, path_of

ISSUE = "/issues/2021-10-partners-meeting"
EVIL = {"Host": "evil.example"}


def _unsubscribe_path(project: Path) -> str:
    return path_of(https_unsubscribe(outbox(project)[0]))


def test_a_trailing_slash_is_never_redirected_to_the_host_header(
        client: TestClient, sent_project: Path) -> None:
    token_path = _unsubscribe_path(sent_project)
    for path in (f"{token_path}/", "/subscribe/subscribers/", "/feed.xml/", "/report/x/"):
        response = client.get(path, headers=EVIL)
        assert response.status_code == 404, (path, response.status_code)
        assert "location" not in response.headers
        assert "evil.example" not in response.text


@pytest.mark.parametrize("path", ["/", f"{ISSUE}/", f"{ISSUE}", f"{ISSUE}/fr/", f"{ISSUE}/fr",
                                  "/subscription/", "/subscription", "/subscription/fr/",
                                  "/subscription/fr", "/feed.xml", "/subscribe/subscribers",
                                  "/static/site.css"])
def test_the_addresses_links_and_docs_use_still_answer(client: TestClient, path: str) -> None:
    response = client.get(path, headers=EVIL)
    assert response.status_code == 200, response.status_code
    assert "location" not in response.headers


def test_the_unsubscribe_link_answers_as_mailed(client: TestClient, sent_project: Path) -> None:
    page = client.get(_unsubscribe_path(sent_project), headers=EVIL)
    assert page.status_code == 200 and "Unsubscribe" in page.text
