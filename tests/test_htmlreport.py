"""The HTML report: one self-contained page per issue after a real send, written by
``report --format html`` and served at /report/<issue-id> behind HTTP basic auth."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from helpers import SAMPLE_ISSUE, RunCli, copy_project, edit
from mirage_mailer.project.config import load_settings
from mirage_mailer.services.htmlreport import issue_report_html, page
from mirage_mailer.store import NewRecipient, Store
from mirage_mailer.util.passwords import BadHash, hash_password, parse_hash, verify_password
from mirage_mailer.web.context import WebContext
from mirage_mailer.web.report_routes import ROUTES

ISSUE = "2021-10-partners-meeting"
BOUNCE = "bounce@example.org"
SERVER_WORDS = "5.1.1 Recipient address rejected: User unknown in virtual mailbox table"
HASH_ENV = "MIRAGE_REPORT_PASSWORD_HASH"
PASSWORD = "correct horse battery staple"


def database(project: Path) -> Path:
    return project / ".mirage" / "tracking.sqlite"


def inject(project: Path) -> None:
    """A permanent failure with the server's words, and two unsubscribes, via the Store API."""
    with Store(database(project)) as store:
        store.add_recipients(ISSUE, [NewRecipient(BOUNCE, "Bounce", "en", "subscribers")])
        row = next(r for r in store.iter_pending(ISSUE) if r.email == BOUNCE)
        assert store.mark_sending(row.id, "<bounce.1@mirageproject.eu>")
        store.mark_failed(row.id, 550, SERVER_WORDS)
        store.suppress("jean.dupont@example.org", source="web-one-click")
        store.suppress("amina.haddad@example.org", source="cli", reason="asked by phone")


@pytest.fixture
def sent(project: Path, sample_sent: Path) -> Path:
    copy_project(sample_sent, project)  # the module's one real send
    assert len(list((project / "outbox" / "new").iterdir())) == 5
    inject(project)
    return project


def write_report(run_cli: RunCli, project: Path) -> str:
    result = run_cli("report", SAMPLE_ISSUE, "--format", "html", "--out", "out/report.html")
    assert result.code == 0, result.err
    assert result.out.strip() == str(Path("out/report.html"))
    return (project / "out" / "report.html").read_text(encoding="utf-8")


def assert_self_contained(page: str, *, charts: bool = True) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert 'src="http' not in page
    assert "<script" not in page.lower()
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page
    # nothing at all is fetched: no src/href attribute except in-page fragments
    assert re.findall(r'\b(?:src|href)\s*=\s*"(?!#)', page) == []
    assert ("<svg" in page) is charts


def count_cell(page: str, status: str) -> int:
    match = re.search(rf'<tr><td>{status}</td><td class="num">(\d+)</td>', page)
    assert match is not None, status
    return int(match.group(1))


def test_html_report_is_self_contained_with_counts_failures_and_unsubscribes(
        sent: Path, run_cli: RunCli) -> None:
    page = write_report(run_cli, sent)
    assert_self_contained(page)
    assert page.count("<svg") >= 2  # status breakdown and deliveries over time
    assert ISSUE in page
    assert count_cell(page, "sent") == 5 and count_cell(page, "failed") == 1
    for status in ("pending", "suppressed", "invalid", "unknown"):
        assert count_cell(page, status) == 0
    assert BOUNCE in page and SERVER_WORDS in page and ">550<" in page
    assert "Deliveries over time" in page
    assert "web-one-click" in page and "cli: asked by phone" in page
    unsubscribes = page[page.index('id="unsubscribes"'):]
    assert "jean.dupont" not in unsubscribes  # the unsubscribe list leaves addresses out
    assert "Not tracked" in page  # opens/clicks are off in the sample project

    # the JSON contract is untouched by the new format
    result = run_cli("report", SAMPLE_ISSUE, "--format", "json")
    assert result.code == 0
    data = json.loads(result.out)
    assert set(data) == {"issue", "counts", "recipients"}
    assert data["counts"] == {"sent": 5, "failed": 1, "pending": 0, "suppressed": 0,
                              "invalid": 0, "unknown": 0, "withdrawn": 0}


def test_html_report_shows_opens_and_clicks_per_link_when_enabled(project: Path,
                                                                  run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  # base_url: https://news.mirageproject.eu",
         "  base_url: https://news.example.org\n  opens: true\n  clicks: true")
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    settings = load_settings(project / "mirage.yaml")
    signer = WebContext.load(settings).signer
    with Store(database(project)) as store:
        maria = signer.subject_id("maria.georgiou@example.org")
        peter = signer.subject_id("peter.novak@example.org")
        assert store.record_engagement(ISSUE, maria, "opened")
        assert store.record_engagement(ISSUE, peter, "opened")
        for _ in range(3):
            store.record_engagement(ISSUE, maria, "clicked", "https://csicy.com")
        store.record_engagement(ISSUE, peter, "clicked", "https://www.mirageproject.eu?a=1&b=2")
    page = write_report(run_cli, project)
    assert_self_contained(page)
    section = page[page.index('id="engagement"'):]
    assert "40.0%" in section  # 2 unique opens of 5 sent
    assert re.search(r'<td class="words">https://csicy.com</td><td class="num">1</td>'
                     r'<td class="num">3</td>', section)
    assert "https://www.mirageproject.eu?a=1&amp;b=2" in section
    assert page.count("<svg") == 3


def test_html_report_of_an_issue_never_sent_and_usage_errors(project: Path,
                                                             run_cli: RunCli) -> None:
    page = write_report(run_cli, project)
    assert_self_contained(page, charts=False)
    assert count_cell(page, "sent") == 0
    assert "Nothing recorded for this issue yet" in page
    assert not database(project).exists()  # reports never create the store
    for args in (["report", SAMPLE_ISSUE, "--format", "html"],
                 ["report", "--format", "html", "--out", "x.html"],
                 ["report", SAMPLE_ISSUE, "--out", "x.html"]):
        result = run_cli(*args)
        assert result.code == 2, args
        assert "--out" in result.err or "--format html" in result.err


# -- escaping: the page is a Jinja2 template with autoescape ---------------------------------


def hostile(where: str) -> str:
    """Markup that would run, or load something, if it reached the page unescaped."""
    return f'<script>alert("{where}")</script>"><img src="http://evil.example/{where}" onerror=x>'


class Elements(HTMLParser):
    """The elements and attributes a browser would build from a page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[tuple[str, str]] = set()
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update((name, value or "") for name, value in attrs)


def test_html_report_escapes_every_value_from_the_store_and_the_config(project: Path) -> None:
    issue = hostile("issue")
    settings = load_settings(project / "mirage.yaml")
    settings = dataclasses.replace(
        settings, project=dataclasses.replace(settings.project, name=hostile("project")),
        tracking=dataclasses.replace(settings.tracking, opens=True, clicks=True))
    with Store(database(project)) as store:
        store.add_recipients(issue, [NewRecipient(hostile("address"), "X", "en", "subscribers",
                                                  subject="s1")])
        row = next(store.iter_pending(issue))
        assert store.mark_sending(row.id, "<hostile.1@example.org>")
        store.mark_failed(row.id, 550, hostile("server"))
        assert store.record_engagement(issue, "s1", "clicked", hostile("link"))
        store.suppress("someone@example.org", source=hostile("source"), reason=hostile("reason"))
        page = issue_report_html(store, issue, settings)
    for where in ("issue", "project", "address", "server", "link", "source", "reason"):
        assert hostile(where) not in page, where
        escaped = f"&lt;script&gt;alert(&#34;{where}&#34;)&lt;/script&gt;&#34;&gt;&lt;img src="
        assert escaped in page, where
    # what a browser builds: no script, no image, no handler, nothing fetched
    elements = Elements(page)
    assert not elements.tags & {"script", "img", "iframe", "link", "object"}, elements.tags
    assert [a for a in elements.attributes if a[0].startswith("on")
            or (a[0] in ("src", "href") and not a[1].startswith("#"))] == []
    # the charts (status, deliveries over time, clicks) are still embedded, as inline SVG
    assert page.count("<svg") == 3 and {"svg", "text", "rect"} <= elements.tags
    section = page[page.index('id="engagement"'):]
    assert "<svg" in section and "alert(&#34;link&#34;)" in section


def test_the_page_frame_escapes_its_title_and_keeps_the_callers_html() -> None:
    framed = page(hostile("title"), "<main><p>kept</p></main>", head='<meta name="x">')
    assert hostile("title") not in framed and "<script" not in framed
    assert "<title>&lt;script&gt;alert(&#34;title&#34;)" in framed
    assert "<body>\n<main><p>kept</p></main>\n</body>" in framed
    assert '<meta name="x"></head>' in framed
    assert framed.startswith("<!DOCTYPE html>\n<html lang=\"en\">") and framed.endswith("</html>\n")

# -- served behind basic auth --------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def client(sent: Path) -> TestClient:
    app = Starlette(routes=ROUTES)
    app.state.ctx = WebContext.load(load_settings(sent / "mirage.yaml"))
    return TestClient(app)


@pytest.fixture
def password_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HASH_ENV, hash_password(PASSWORD, iterations=2_000))


URL = f"/report/{ISSUE}"
REALM = 'Basic realm="mirage-mailer report"'


@pytest.mark.usefixtures("password_set")
def test_report_route_needs_the_right_user_and_password(client: TestClient) -> None:
    refused = [
        {},
        basic("report", "wrong password"),
        basic("someone", PASSWORD),
        basic("report", PASSWORD.upper()),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Bearer " + base64.b64encode(f"report:{PASSWORD}".encode()).decode()},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ]
    for headers in refused:
        response = client.get(URL, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == REALM
        assert BOUNCE not in response.text and "<svg" not in response.text
    response = client.get(URL, headers=basic("report", PASSWORD))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "no-store" in response.headers["cache-control"]
    page = response.text
    assert_self_contained(page)
    assert BOUNCE in page and SERVER_WORDS in page and count_cell(page, "sent") == 5
    assert client.get("/report/no-such-issue", headers=basic("report", PASSWORD)) \
        .status_code == 404
    assert client.get("/report/no-such-issue").status_code == 401  # nothing before auth


def test_report_route_is_disabled_without_the_hash(client: TestClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HASH_ENV, raising=False)
    for headers in ({}, basic("report", PASSWORD)):
        response = client.get(URL, headers=headers)
        assert response.status_code == 503
        assert "disabled" in response.text
        assert BOUNCE not in response.text
    monkeypatch.setenv(HASH_ENV, "pbkdf2_sha256$oops")
    response = client.get(URL, headers=basic("report", PASSWORD))
    assert response.status_code == 503 and BOUNCE not in response.text


def test_password_hashes() -> None:
    encoded = hash_password("s3cret", iterations=1_000)
    algorithm, iterations, salt, digest = encoded.split("$")
    assert (algorithm, iterations) == ("pbkdf2_sha256", "1000")
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    assert verify_password("s3cret", encoded) and not verify_password("s3cret ", encoded)
    assert hash_password("s3cret", iterations=1_000) != encoded  # fresh salt each time
    for bad in ("", "md5$1$a$b", "pbkdf2_sha256$1$AAAA$AAAA", "pbkdf2_sha256$1000$***$AAAA",
                "pbkdf2_sha256$1000$AAAA$AAAA"):
        with pytest.raises(BadHash):
            parse_hash(bad)


def test_hash_password_command_reads_stdin(run_cli: RunCli) -> None:
    result = run_cli("hash-password", input=f"{PASSWORD}\n")
    assert result.code == 0, result.err
    line = result.out.strip()
    assert line.startswith("pbkdf2_sha256$600000$")
    assert verify_password(PASSWORD, line)
    empty = run_cli("hash-password", input="\n")
    assert empty.code == 2 and "empty" in empty.err


def forget_as_sent(project: Path) -> None:
    """The store as an older mirage-mailer left it: no issue kept as sent, so reports read
    each issue's subject from issue.yaml."""
    with Store(database(project)) as store, store._write() as conn:
        conn.execute("DELETE FROM issues_as_sent")


def test_reports_title_the_issue_by_its_subject(sent: Path, run_cli: RunCli) -> None:
    """Table, CSV and HTML name the issue by its default-language subject; the JSON keeps the
    contract's keys (compared whole by scripts). A subject is outside input: brackets are not
    rich markup and tags are escaped (issue.yaml's, in a store without the subject as sent)."""
    forget_as_sent(sent)
    edit(sent / SAMPLE_ISSUE / "issue.yaml",
         "  en: \"MIraGE news: final partners' meeting and lessons learned\"",
         "  en: \"[/] [bold]Final[/bold] <b>meeting</b> & more\"")
    table = run_cli("report", env={"COLUMNS": "200"})  # one line per cell
    assert table.code == 0, table.err
    assert "[/] [bold]Final[/bold] <b>meeting</b> & more" in table.out
    assert f"({ISSUE})" in table.out
    rows = list(csv.DictReader(io.StringIO(run_cli("report", "--format", "csv").out)))
    assert {r["subject"] for r in rows} == {"[/] [bold]Final[/bold] <b>meeting</b> & more"}
    assert {r["issue"] for r in rows} == {ISSUE} and len(rows) == 6
    page = write_report(run_cli, sent)
    assert ("<h1>[/] [bold]Final[/bold] &lt;b&gt;meeting&lt;/b&gt; &amp; more</h1>"
            f"<p>{ISSUE} · MIraGE · delivery report") in page
    assert "<title>[/] [bold]Final[/bold] &lt;b&gt;meeting" in page
    assert set(json.loads(run_cli("report", "--format", "json").out)[0]) == {
        "issue", "counts", "recipients"}


def test_an_issue_whose_folder_is_gone_is_reported_by_its_id(sent: Path,
                                                             run_cli: RunCli) -> None:
    shutil.rmtree(sent / SAMPLE_ISSUE)
    table = run_cli("report")  # the subject it was sent with, which the store kept
    assert table.code == 0, table.err
    assert ISSUE in table.out and "MIraGE news: final partners' meeting" in table.out
    forget_as_sent(sent)  # a store from before that record: the id alone
    table = run_cli("report")
    assert table.code == 0, table.err
    assert ISSUE in table.out and "MIraGE news" not in table.out
    rows = list(csv.DictReader(io.StringIO(run_cli("report", "--format", "csv").out)))
    assert {r["subject"] for r in rows} == {""}


def test_the_table_shows_server_replies_as_written(sent: Path, run_cli: RunCli) -> None:
    """A relay's reply is outside input: '[/]' in it once crashed the table (rich markup)."""
    words = "[/] 550 [bold]no[/bold] such user"
    with Store(database(sent)) as store:
        store.add_recipients(ISSUE, [NewRecipient("odd@example.org", None, "en",
                                                  "subscribers")])
        row = next(r for r in store.iter_pending(ISSUE) if r.email == "odd@example.org")
        assert store.mark_sending(row.id, "<odd.1@mirageproject.eu>")
        store.mark_failed(row.id, 550, words)
    table = run_cli("report", SAMPLE_ISSUE, env={"COLUMNS": "300"})
    assert table.code == 0, table.err
    assert words in table.out and "odd@example.org" in table.out


@pytest.mark.usefixtures("password_set")
def test_report_route_on_a_lost_store_says_so_instead_of_showing_zeros(
        client: TestClient, sent: Path) -> None:
    """The served page refuses as ``report`` does (exit 2 there): zero counts would read as
    "nobody got the issue" when everyone did. The authorised reader is told what happened."""
    (sent / ".mirage/tracking.sqlite").rename(sent / "saved.sqlite")
    for url in (URL, "/report/period/2020-01-01..2040-12-31"):
        response = client.get(url, headers=basic("report", PASSWORD))
        assert response.status_code == 503, (url, response.text)
        assert "the tracking database is missing, but this project has sent before" \
            in response.text
        assert "restore the database from a backup" in response.text
        assert '<td class="num">' not in response.text  # no figures at all
    assert not (sent / ".mirage/tracking.sqlite").exists()
    (sent / "saved.sqlite").rename(sent / ".mirage/tracking.sqlite")
    assert client.get(URL, headers=basic("report", PASSWORD)).status_code == 200
