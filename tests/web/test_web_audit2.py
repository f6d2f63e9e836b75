"""The second audit of the public side: a 405's Allow names every method of its path, the
report's password check cannot be used to burn the server's CPU, a body that stops coming
is answered 408, and the confirm page shows the name a sign-up will use."""

from __future__ import annotations

import pytest
from web_support import TestClient

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
