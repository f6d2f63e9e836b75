"""The archive names every issue by its subject, in the project's language: the server's
index, the static site's index (which once showed the last language an issue was written in,
whatever the project's) and each page's title."""

from __future__ import annotations

import re
from pathlib import Path

from web_support import TestClient

from helpers import RunCli

ISSUE_ID = "2021-10-partners-meeting"
EN = "MIraGE news: final partners&#39; meeting and lessons learned"
FR = "Nouvelles de MIraGE : dernière réunion des partenaires et leçons apprises"


def _headings(page: str) -> list[str]:
    return re.findall(r"<h2><a [^>]*>([^<]*)</a></h2>", page)


def test_the_static_index_titles_issues_in_the_project_language(sent_project: Path,
                                                                run_cli: RunCli) -> None:
    result = run_cli("archive", "--out", "site", cwd=sent_project)
    assert result.code == 0, result.err
    site = sent_project / "site"
    index = (site / "index.html").read_text(encoding="utf-8")
    assert _headings(index) == [EN]
    assert f'href="issues/{ISSUE_ID}/index.html"' in index and "<html lang=\"en\"" in index
    assert f"<title>{FR}</title>" in (site / f"issues/{ISSUE_ID}/fr/index.html").read_text(
        encoding="utf-8")
    page = (site / f"issues/{ISSUE_ID}/index.html").read_text(encoding="utf-8")
    assert "<title>MIraGE news: final partners" in page  # the issue's own page


def test_the_served_index_titles_issues_by_subject(client: TestClient) -> None:
    english = client.get("/", headers={"Accept-Language": "en"})
    assert _headings(english.text) == [EN]
    french = client.get("/", headers={"Accept-Language": "fr"})
    assert _headings(french.text) == [FR]
