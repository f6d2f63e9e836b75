"""Opens and clicks: off by default; when on, a per-recipient pixel and signed click redirects
that only ever send a reader to a URL that was in the issue (never an open redirect)."""

from __future__ import annotations

import email
import json
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.compose.message import MessageFactory, Personal, fill
from mirage_mailer.compose.render import OPEN_PIXEL, RenderedLanguage
from mirage_mailer.project.config import load_settings
from mirage_mailer.services.loader import open_project, render
from mirage_mailer.store import Store
from mirage_mailer.util.tokens import Signer
from mirage_mailer.web.context import WebContext
from mirage_mailer.web.engagement_routes import GIF, ROUTES

ISSUE = "2021-10-partners-meeting"
BASE = "https://news.example.org"
JEAN = Personal("jean.dupont@example.org", "Jean Dupont", "subscribers", {})
MARIA = Personal("maria.georgiou@example.org", "Maria Georgiou", "subscribers", {})
ARTICLE_LINKS = {"https://csicy.com", "https://www.mirageproject.eu"}


def configure(project: Path, *, opens: bool = False, clicks: bool = False,
              base_url: str | None = BASE) -> None:
    lines = []
    if base_url:
        lines.append(f"  base_url: {base_url}")
    if opens:
        lines.append("  opens: true")
    if clicks:
        lines.append("  clicks: true")
    edit(project / "mirage.yaml", "  # base_url: https://news.mirageproject.eu",
         "\n".join(lines) or "  # no base_url")


def rendered_for(project: Path) -> dict[str, RenderedLanguage]:
    return render(open_project(project / "mirage.yaml", project / SAMPLE_ISSUE), set())


def factory_for(project: Path, key: bytes = b"test-key") -> MessageFactory:
    loaded = open_project(project / "mirage.yaml", project / SAMPLE_ISSUE)
    return MessageFactory(loaded.settings, loaded.issue.id, render(loaded, set()), Signer(key))


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def hrefs(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'<a\b[^>]*\bhref="([^"]*)"', html)]


# -- off by default ------------------------------------------------------------------------


@pytest.mark.parametrize("base_url", [None, BASE])
def test_off_by_default_no_pixel_and_links_untouched(project: Path,
                                                     base_url: str | None) -> None:
    configure(project, base_url=base_url)
    factory = factory_for(project)
    for lang, rendered in factory.rendered.items():
        assert rendered.click_urls == () and not rendered.open_pixel
        assert "__MM_click_" not in rendered.html and "__MM_open_url__" not in rendered.html
        _, html = parts(parse(factory.build(JEAN, lang)))
        links = hrefs(html)
        assert set(links) >= ARTICLE_LINKS
        assert not any("/c/" in h or "/o/" in h for h in links)
        assert 'width="1" height="1"' not in html


@pytest.mark.parametrize("key", ["opens", "clicks"])
def test_validate_refuses_tracking_without_base_url(project: Path, run_cli: RunCli,
                                                    key: str) -> None:
    configure(project, base_url=None, opens=key == "opens", clicks=key == "clicks")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert re.search(rf"mirage\.yaml:\d+: 'tracking\.{key}' needs tracking\.base_url",
                     result.err), result.err


# -- on: per-recipient pixel and click links -----------------------------------------------


@pytest.fixture
def tracked(project: Path) -> Path:
    configure(project, opens=True, clicks=True)
    return project


def test_tracked_render_differs_only_by_slots(tracked: Path, project: Path) -> None:
    on = rendered_for(tracked)
    edit(project / "mirage.yaml", "  opens: true\n  clicks: true\n", "")
    off = rendered_for(project)
    for lang in ("en", "fr"):
        assert on[lang].open_pixel and set(on[lang].click_urls) >= ARTICLE_LINKS
        assert len(set(on[lang].click_urls)) == len(on[lang].click_urls)
        assert on[lang].untracked_html() == off[lang].html
        assert on[lang].text == off[lang].text  # the text part is never tracked
        assert on[lang].html.count(OPEN_PIXEL) == 1
        assert re.search(re.escape(OPEN_PIXEL) + r"\s*</body>", on[lang].html)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_pixel_and_rewritten_links_per_recipient(tracked: Path, lang: str) -> None:
    factory = factory_for(tracked)
    signer = factory.signer
    rendered = factory.rendered[lang]
    seen_tokens: set[str] = set()
    for person in (JEAN, MARIA):
        message = parse(factory.build(person, lang))
        text, html = parts(message)
        values = factory.values_for(person, lang)
        assert html == fill(rendered.html, values, html=True)
        subject = signer.subject_id(person.email)

        pixel = re.findall(r'<img src="([^"]+)" alt="" width="1" height="1"', html)
        assert len(pixel) == 1
        assert re.search(r'<img src="[^"]+/o/[^"]+" alt="" width="1" height="1"[^>]*>\s*</body>',
                         html), "the pixel closes the body"
        match = re.fullmatch(re.escape(BASE) + r"/o/([\w.-]+)\.gif", pixel[0])
        assert match is not None
        assert signer.verify("open", match.group(1)) == (ISSUE, subject)
        assert person.email not in pixel[0]

        targets = []
        for href in hrefs(html):
            if href.startswith("mailto:"):
                continue
            if "/u/" in href or "/v/" in href:  # unsubscribe and view online: not tracked
                assert href.startswith(f"{BASE}/u/") or href.startswith(f"{BASE}/v/")
                continue
            parsed = urlsplit(href)
            assert f"{parsed.scheme}://{parsed.netloc}" == BASE and parsed.path.startswith("/c/")
            token = parsed.path[len("/c/"):]
            target = parse_qs(parsed.query)["u"][0]
            assert parsed.query == "u=" + quote(target, safe="")
            assert signer.verify_click(token, target) == (ISSUE, subject)
            assert person.email not in href
            seen_tokens.add(token)
            targets.append(target)
        assert set(targets) == set(rendered.click_urls)
        assert set(targets) >= ARTICLE_LINKS

        assert text == fill(rendered.text, values, html=False)
        assert "https://csicy.com" in text and f"{BASE}/c/" not in text
        assert f"{BASE}/o/" not in text
    assert len(seen_tokens) == 2 * len(rendered.click_urls), "tokens are per recipient and link"


def test_click_tokens_verify_only_for_their_url() -> None:
    signer = Signer(b"k")
    clicks = signer.clicks(ISSUE)
    subject = signer.subject_id("jean@example.org")
    url = "https://csicy.com/?a=1&b=2"
    token = clicks.token(subject, url)
    assert signer.verify_click(token, url) == (ISSUE, subject)
    for other in ("https://csicy.com/?a=1&b=3", "https://evil.example/", url + "#x",
                  "https://csicy.com/?a=1&b=2\x00https://evil.example/", ""):
        assert signer.verify_click(token, other) is None, other
    assert signer.verify("click", token) is None
    assert signer.verify("open", token) is None
    assert Signer(b"other").verify_click(token, url) is None
    scope, subj, sig = token.split(".")
    assert signer.verify_click(f"{scope}.{signer.subject_id('x@example.org')}.{sig}", url) is None
    other_issue = signer.clicks("2022-01-other").token(subject, url)
    assert other_issue != token and signer.verify_click(other_issue, url) == ("2022-01-other",
                                                                              subject)
    assert signer.verify_click(f"{other_issue.split('.')[0]}.{subj}.{sig}", url) is None
    open_token = signer.make("open", ISSUE, "jean@example.org")
    assert signer.verify_click(open_token, url) is None


# -- the routes, on a minimal app ----------------------------------------------------------


@pytest.fixture
def sent(tracked: Path, run_cli: RunCli) -> Path:
    """The sample issue really sent, with tracking on, into the Maildir outbox."""
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    return tracked


def client_for(project: Path) -> TestClient:
    app = Starlette(routes=ROUTES)
    app.state.ctx = WebContext.load(load_settings(project / "mirage.yaml"))
    return TestClient(app, base_url=BASE)


def delivered_html(project: Path, address: str) -> str:
    for path in sorted((project / "outbox" / "new").iterdir()):
        message = parse(path.read_bytes())
        if address in str(message["To"]):
            return parts(message)[1]
    raise AssertionError(f"no message to {address}")


def links_of(html: str) -> tuple[str, dict[str, str]]:
    """(pixel path, {target: click path and query}) of a delivered message."""
    pixel = re.findall(r'<img src="' + re.escape(BASE) + r'(/o/[^"]+)"', html)
    assert len(pixel) == 1
    clicks = {}
    for href in hrefs(html):
        if href.startswith(f"{BASE}/c/"):
            relative = href[len(BASE):]
            clicks[parse_qs(urlsplit(href).query)["u"][0]] = relative
    return pixel[0], clicks


def engagement(project: Path) -> dict[str, object]:
    with Store(project / ".mirage" / "tracking.sqlite") as store:
        return store.engagement(ISSUE)


def test_open_pixel_records_and_always_answers_the_gif(sent: Path) -> None:
    client = client_for(sent)
    pixel, _ = links_of(delivered_html(sent, "jean.dupont@example.org"))
    for _ in range(2):
        response = client.get(pixel)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
        assert response.content == GIF and GIF.startswith(b"GIF89a")
        assert "no-store" in response.headers["cache-control"]
    assert engagement(sent) == {"opens": 2, "unique_opens": 1, "clicks": []}
    other, _ = links_of(delivered_html(sent, "maria.georgiou@example.org"))
    assert client.get(other).status_code == 200
    assert engagement(sent)["unique_opens"] == 2
    tampered = pixel.replace(".gif", "x.gif")
    for path in (tampered, "/o/nonsense.gif", "/o/a.b.c.gif"):
        response = client.get(path)
        assert response.status_code == 200 and response.content == GIF
    assert client.head(pixel).status_code == 200
    assert engagement(sent) == {"opens": 3, "unique_opens": 2, "clicks": []}


def test_click_redirects_to_exactly_the_original_url_and_records(sent: Path) -> None:
    client = client_for(sent)
    _, clicks = links_of(delivered_html(sent, "jean.dupont@example.org"))
    assert set(clicks) >= ARTICLE_LINKS
    for target in sorted(ARTICLE_LINKS):
        response = client.get(clicks[target], follow_redirects=False)
        assert response.status_code == 302
        assert response.headers["location"] == target
        assert "no-store" in response.headers["cache-control"]
        assert response.headers["referrer-policy"] == "no-referrer"
    client.get(clicks["https://csicy.com"], follow_redirects=False)
    recorded = engagement(sent)
    assert recorded["opens"] == 0
    assert recorded["clicks"] == [
        {"url": "https://csicy.com", "clicks": 2, "unique": 1},
        {"url": "https://www.mirageproject.eu", "clicks": 1, "unique": 1},
    ]


def test_tampered_clicks_are_refused_without_redirect(sent: Path) -> None:
    client = client_for(sent)
    _, clicks = links_of(delivered_html(sent, "jean.dupont@example.org"))
    good = clicks["https://csicy.com"]
    path, _, _ = good.partition("?")
    other_signed = "https://www.mirageproject.eu"
    bad = [
        f"{path}?u={quote('https://evil.example/phish', safe='')}",  # open redirect attempt
        f"{path}?u={quote(other_signed, safe='')}",  # a URL of the issue, not of this token
        f"{path}?u={quote('https://csicy.com/', safe='')}",  # one character more
        f"{path}?u={quote('javascript:alert(1)', safe='')}",
        path,  # no target
        f"{good}&u={quote('https://evil.example/', safe='')}",  # two targets
        good.replace("/c/", "/c/x"),  # tampered scope
        path[:-2] + ("AA" if not path.endswith("AA") else "BB") + good[len(path):],  # signature
        "/c/not-a-token?u=https%3A%2F%2Fcsicy.com",
    ]
    for url in bad:
        response = client.get(url, follow_redirects=False)
        assert response.status_code == 400, url
        assert "location" not in response.headers
        assert "not valid" in response.text
        assert "evil.example" not in response.text
    assert engagement(sent)["clicks"] == []


def test_tracking_switched_off_later_records_nothing_but_links_work(sent: Path) -> None:
    pixel, clicks = links_of(delivered_html(sent, "jean.dupont@example.org"))
    edit(sent / "mirage.yaml", "  opens: true\n  clicks: true\n", "")
    client = client_for(sent)
    assert client.get(pixel).content == GIF
    response = client.get(clicks["https://csicy.com"], follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == "https://csicy.com"
    assert engagement(sent) == {"opens": 0, "unique_opens": 0, "clicks": []}


def test_tokens_of_a_test_copy_redirect_but_record_nothing(tracked: Path, run_cli: RunCli) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--to", "someone@example.org")
    assert result.code == 0, result.err
    _, clicks = links_of(delivered_html(tracked, "someone@example.org"))
    client = client_for(tracked)
    response = client.get(clicks["https://csicy.com"], follow_redirects=False)
    assert response.status_code == 302
    assert engagement(tracked)["clicks"] == []


def test_report_shows_opens_and_clicks_when_tracking_is_on(sent: Path, run_cli: RunCli) -> None:
    client = client_for(sent)
    _, clicks = links_of(delivered_html(sent, "jean.dupont@example.org"))
    client.get(clicks["https://csicy.com"], follow_redirects=False)
    as_json = run_cli("report", SAMPLE_ISSUE, "--format", "json")
    assert as_json.code == 0, as_json.err
    assert json.loads(as_json.out)["engagement"] == {
        "opens": 0, "unique_opens": 0,
        "clicks": [{"url": "https://csicy.com", "clicks": 1, "unique": 1}]}
    table = run_cli("report", SAMPLE_ISSUE)
    assert "Opens and clicks" in table.out and "https://csicy.com" in table.out
