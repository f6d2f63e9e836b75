"""``report --period``: the figures of an EU periodic report, through the real CLI, checked
number by number against a store built with known send dates (the Store API with a set
clock: a real send would be dated today)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.project.config import load_settings
from mirage_mailer.store import NewRecipient, Store
from mirage_mailer.util.passwords import hash_password
from mirage_mailer.util.tokens import load_secret
from mirage_mailer.web.context import WebContext
from mirage_mailer.web.report_routes import ROUTES

A = "2021-10-partners-meeting"  # the sample issue: en and fr
B = "2021-12-hostile"  # a copy whose subject tries to break out of the page
C = "2022-01-next"  # first sent a few minutes after the period ends
D = "2020-12-old"  # first sent a minute before it starts
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
BAD_LIST = "partners<svg onload=alert(1)>[/]"  # markup for HTML and for rich
YEAR = "2021-01-01..2021-12-31"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2021, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _send(store: Store, clock: Clock, issue: str, when: str,
          rows: list[tuple[str, str | None, str, str]]) -> None:
    """Queue (email, lang, list, outcome) rows of ``issue`` and record each outcome at ``when``."""
    clock.now = datetime.fromisoformat(when)
    store.add_recipients(issue, [
        NewRecipient(email, None, lang, list_name, subject=f"s-{issue}-{email}",
                     status="invalid" if outcome == "invalid" else "pending")
        for email, lang, list_name, outcome in rows])
    outcome_of = {email: outcome for email, _lang, _list, outcome in rows}
    for row in list(store.iter_pending(issue)):
        kind = outcome_of[row.email]
        assert store.mark_sending(row.id, f"<{row.id}@example.org>")
        store.record([(row.id, kind, 250 if kind == "sent" else 550,
                       "ok" if kind == "sent" else "5.1.1 unknown user")])


@pytest.fixture
def period_project(project: Path) -> Path:
    """Four issues around the year 2021, with bounces, unsubscribes, opens and clicks."""
    load_secret(project / ".mirage", None)  # as the sends that filled the store made it
    for issue, subject in ((B, HOSTILE), (C, "Next year"), (D, "Last year")):
        shutil.copytree(project / SAMPLE_ISSUE, project / "issues" / issue)
        edit(project / "issues" / issue / "issue.yaml",
             "  en: \"MIraGE news: final partners' meeting and lessons learned\"",
             f"  en: {json.dumps(subject)}")
    clock = Clock()
    with Store(project / ".mirage" / "tracking.sqlite", clock=clock) as store:
        _send(store, clock, D, "2020-12-31T23:59:00+00:00",
              [("old@example.org", "en", "subscribers", "sent")])
        _send(store, clock, A, "2021-03-10T09:00:00+00:00", [
            ("a@example.org", "en", "subscribers", "sent"),
            ("b@example.org", "fr", "subscribers", "sent"),
            ("c@example.org", "de", "subscribers", "sent"),  # no German: gets English
            ("d@example.org", "fr", "subscribers", "failed"),
            ("e@example.org", None, "subscribers", "invalid"),  # not a bounce: never sent
            ("g@example.org", None, "subscribers", "invalid")])
        clock.now = datetime(2021, 3, 11, tzinfo=UTC)
        assert store.record_engagement(A, f"s-{A}-a@example.org", "opened")
        assert store.record_engagement(A, f"s-{A}-a@example.org", "opened")  # same reader
        assert store.record_engagement(A, f"s-{A}-b@example.org", "opened")
        assert store.record_engagement(A, f"s-{A}-b@example.org", "clicked", "https://x.eu/")
        clock.now = datetime(2021, 4, 1, tzinfo=UTC)
        store.suppress("b@example.org", source="web-one-click")  # after A: counts for A
        _send(store, clock, B, "2021-12-31T23:30:00+00:00", [
            ("a@example.org", "en", "subscribers", "sent"),
            ("f@example.org", "pt-BR", BAD_LIST, "sent")])  # no Portuguese: English
        _send(store, clock, C, "2022-01-01T00:10:00+00:00",
              [("a@example.org", "fr", "subscribers", "sent")])
        clock.now = datetime(2022, 2, 1, tzinfo=UTC)
        store.suppress("a@example.org", source="cli")  # after C: counts for C, not 2021
        store.suppress("never@example.org", source="cli")  # sent nothing: no issue's
    return project


class Tags(HTMLParser):
    """Every element name and attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        self.attributes.extend(attrs)


def _csv(run_cli: RunCli, period: str = YEAR) -> list[dict[str, str]]:
    result = run_cli("report", "--period", period, "--format", "csv")
    assert result.code == 0, result.err
    return list(csv.DictReader(io.StringIO(result.out)))


def test_csv_has_every_figure_of_the_issues_sent_in_the_period(period_project: Path,
                                                               run_cli: RunCli) -> None:
    rows = _csv(run_cli)
    assert [r["issue"] for r in rows] == [A, B, "total"]  # C and D are outside, by minutes
    a, b, total = rows
    assert a == {
        "issue": A, "subject": "MIraGE news: final partners' meeting and lessons learned",
        "sent_on": "2021-03-10", "reached": "3", "bounces": "1", "unsubscribes": "1",
        "opens_estimate": "2", "clicks_estimate": "1",  # recorded: shown, unique readers
        "lang_en": "2", "lang_fr": "1", "list_subscribers": "3", f"list_{BAD_LIST}": "0"}
    assert b["subject"] == HOSTILE and b["sent_on"] == "2021-12-31"
    assert (b["opens_estimate"], b["clicks_estimate"]) == ("", "")  # off, none recorded
    assert (b["reached"], b["bounces"], b["unsubscribes"]) == ("2", "0", "0")
    assert (b["lang_en"], b["lang_fr"]) == ("2", "0")
    assert (b["list_subscribers"], b[f"list_{BAD_LIST}"]) == ("1", "1")
    assert (total["reached"], total["bounces"], total["unsubscribes"]) == ("5", "1", "1")
    assert (total["lang_en"], total["lang_fr"], total["list_subscribers"]) == ("4", "1", "4")
    assert total["subject"] == f"2 issue(s) sent {YEAR}; 4 distinct address(es) reached"


def test_the_next_period_holds_the_later_issue_and_its_unsubscribe(period_project: Path,
                                                                   run_cli: RunCli) -> None:
    rows = _csv(run_cli, "2022-01-01..2022-12-31")
    assert [(r["issue"], r["reached"], r["unsubscribes"], r["lang_fr"]) for r in rows] == [
        (C, "1", "1", "1"), ("total", "1", "1", "1")]
    assert _csv(run_cli, "2019-01-01..2019-12-31") == [
        {"issue": "total", "subject": "0 issue(s) sent 2019-01-01..2019-12-31; 0 distinct "
         "address(es) reached", "sent_on": "", "reached": "0", "bounces": "0",
         "unsubscribes": "0", "opens_estimate": "", "clicks_estimate": ""}]


def test_opens_and_clicks_are_estimates_when_tracking_is_on(period_project: Path,
                                                            run_cli: RunCli) -> None:
    edit(period_project / "mirage.yaml", "  # base_url: https://news.mirageproject.eu",
         "  base_url: https://news.example.org\n  opens: true\n  clicks: true")
    a, b, total = _csv(run_cli)
    assert (a["opens_estimate"], a["clicks_estimate"]) == ("2", "1")  # unique readers
    assert (b["opens_estimate"], b["clicks_estimate"]) == ("0", "0")  # on: none is zero
    assert (total["opens_estimate"], total["clicks_estimate"]) == ("2", "1")
    table = run_cli("report", "--period", YEAR)
    assert table.code == 0, table.err
    assert "opened*" in table.out and "≈2" in table.out and "* estimates" in table.out
    data = json.loads(run_cli("report", "--period", YEAR, "--format", "json").out)
    assert [i["opens_estimate"] for i in data["issues"]] == [2, 0]
    assert data["total"]["distinct_reached"] == 4


def test_table_titles_issues_by_subject(period_project: Path, run_cli: RunCli) -> None:
    result = run_cli("report", "--period", YEAR)
    assert result.code == 0, result.err
    assert "Issues sent 2021-01-01..2021-12-31" in result.out
    assert "MIraGE news: final" in result.out and f"({A})" in result.out
    assert "<script>alert" in result.out  # shown as written, not read as markup
    assert "Readers reached by language" in result.out and "by list" in result.out
    wide = run_cli("report", "--period", YEAR, env={"COLUMNS": "300"})
    assert BAD_LIST in wide.out  # shown as it is, not read as markup
    assert C not in result.out and D not in result.out
    assert "4 distinct address(es) reached" in result.out


def test_html_page_is_self_contained_and_escapes_what_it_shows(period_project: Path,
                                                               run_cli: RunCli) -> None:
    result = run_cli("report", "--period", YEAR, "--format", "html", "--out", "r/year.html")
    assert result.code == 0, result.err
    page = (period_project / "r" / "year.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page  # the chart, inline
    tags = Tags()
    tags.feed(page)
    assert {"html", "style", "svg", "table"} <= tags.names
    assert not tags.names & {"script", "link", "iframe", "img", "object", "embed", "image"}
    assert [a for a in tags.attributes if a[0] in ("src", "href", "xlink:href")
            or a[0].startswith("on")] == []
    assert "@import" not in page and "url(" not in page
    assert not re.search(r"https?://", page.replace("http://www.w3.org/", ""))
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img src=x" in page
    assert "partners&lt;svg onload=alert(1)&gt;" in page
    assert "<svg onload" not in page and "<img" not in page
    issues = page[page.index('id="issues"'):page.index('id="languages"')]
    cells = re.findall(r'<td class="num">([^<]*)</td>', issues)
    # A then B: reached, bounces, unsubscribes, opened, clicked (A's were recorded)
    assert cells == ["3", "1", "1", "≈ 2", "≈ 1", "2", "0", "0", "not tracked", "not tracked"]
    assert "Opens and clicks are estimates" in page
    assert "Dissemination 2021-01-01..2021-12-31" in page


@pytest.mark.parametrize(("period", "says"), [
    ("2021", "--period: '2021' is not a period"),
    ("2021-13-01..2021-12-31", "--period: the start '2021-13-01' is not a date"),
    ("2021-01-01..", "--period: the end '' is not a date"),
    ("2022-01-01..2021-12-31", "--period: the period ends (2021-12-31) before it starts"),
])
def test_a_bad_period_is_one_line_with_the_fix(period_project: Path, run_cli: RunCli,
                                               period: str, says: str) -> None:
    result = run_cli("report", "--period", period)
    assert result.code == 2 and result.out == ""
    assert len(result.err.splitlines()) == 1 and result.err.startswith(says)
    assert "2021-01-01..2021-12-31" in result.err or "earlier date first" in result.err


def test_period_and_one_issue_do_not_mix(period_project: Path, run_cli: RunCli) -> None:
    result = run_cli("report", SAMPLE_ISSUE, "--period", YEAR)
    assert result.code == 2 and "leave out ISSUE_DIR" in result.err
    assert run_cli("report", "--period", YEAR, "--format", "html").code == 2  # needs --out


def test_a_project_that_never_sent_reports_an_empty_period(project: Path,
                                                           run_cli: RunCli) -> None:
    result = run_cli("report", "--period", YEAR)
    assert result.code == 0 and "no issue was sent in 2021-01-01..2021-12-31" in result.out
    assert not (project / ".mirage" / "tracking.sqlite").exists()  # reports never create one


def test_the_period_page_is_served_behind_the_report_password(
        period_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRAGE_REPORT_PASSWORD_HASH", hash_password("pw", iterations=2_000))
    app = Starlette(routes=ROUTES)
    app.state.ctx = WebContext.load(load_settings(period_project / "mirage.yaml"))
    client = TestClient(app)
    auth = {"Authorization": "Basic " + base64.b64encode(b"report:pw").decode()}
    assert client.get(f"/report/period/{YEAR}").status_code == 401
    page = client.get(f"/report/period/{YEAR}", headers=auth)
    assert page.status_code == 200 and "no-store" in page.headers["cache-control"]
    assert "Dissemination 2021-01-01..2021-12-31" in page.text
    assert "&lt;script&gt;alert" in page.text and "<script" not in page.text
    bad = client.get("/report/period/2021-01-01..<b>x<b>", headers=auth)
    assert bad.status_code == 400 and "is not a date" in bad.text
    assert "<b>x" not in bad.text and "&lt;b&gt;x" in bad.text
