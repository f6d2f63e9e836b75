"""The public archive: index, issue pages as sent but for no one in particular, the view-online
link, the Atom feed, security headers on every answer, and `archive --out` as a static site."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree
from web_support import (
    BASE,
    FORM,
    ISSUE_ID,
    JEAN,
    MARIA,
    ONE_CLICK_BODY,
    TestClient,
    client_for,
    forget_as_sent,
    https_unsubscribe,
    message_to,
    part,
    path_of,
    signer_of,
)

from helpers import RunCli, edit
from mirage_mailer.compose.disclaimer import AMIF_TEXT, EMBLEM_ALT
from mirage_mailer.compose.render import emblem_bytes
from support.images import png

ATOM = "{http://www.w3.org/2005/Atom}"
PAGE = f"/issues/{ISSUE_ID}/"
CSP = ("default-src 'none'; img-src 'self' https:; style-src 'self' 'unsafe-inline'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def assert_issue_page(html: str) -> None:
    """The issue as sent: disclaimer and emblem, no slot markers, nobody's data."""
    assert "__MM_" not in html and "cid:" not in html
    assert AMIF_TEXT in html
    assert "Funded by the European Union" in html
    emblem = re.search(r'<img class="eu-emblem" src="([^"]+)" alt="([^"]+)"', html)
    assert emblem is not None, "no emblem"
    assert emblem.groups() == ("/static/eu-emblem.png", EMBLEM_ALT)
    assert "Dear reader" in html or "Bonjour," in html
    for private in (MARIA, JEAN, "Maria Georgiou", "/u/", "/v/"):
        assert private not in html
    assert "<script" not in html.lower()


def test_the_index_is_empty_before_anything_is_sent(fresh_client: TestClient) -> None:
    page = fresh_client.get("/")
    assert page.status_code == 200
    assert "No issue has been published yet" in page.text
    assert fresh_client.get(PAGE).status_code == 404
    feed = etree.fromstring(fresh_client.get("/feed.xml").content)
    assert feed.tag == f"{ATOM}feed" and feed.findall(f"{ATOM}entry") == []


def test_the_index_lists_the_sent_issue(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert f'<a href="{PAGE}">MIraGE news: final partners&#39; meeting' in page.text
    assert "October 29, 2021" in page.text
    assert f'href="{PAGE}fr/"' in page.text and ">Français<" in page.text
    assert 'href="/subscribe/subscribers?lang=en"' in page.text  # the form in the page's language


def test_the_issue_page_is_the_issue_as_sent(client: TestClient) -> None:
    for path in (PAGE, PAGE.rstrip("/"), f"{PAGE}en/", f"{PAGE}en"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert_issue_page(page.text)
        assert "meeting, October 2021" in page.text
    french = client.get(f"{PAGE}fr/")
    assert_issue_page(french.text)
    assert "Réunion des partenaires de MIraGE" in french.text
    # The "unsubscribe" of a copy for no one cannot be anyone's: it leads to the page that says
    # how to unsubscribe (issue 9: it used to be the sign-up form, labelled "Se désabonner").
    assert 'href="/subscribe/subscribers' not in french.text
    assert 'href="/subscription/fr/"' in french.text
    manage = client.get("/subscription/fr/")
    assert manage.status_code == 200 and manage.headers["content-language"] == "fr"
    assert "lien personnel de désabonnement" in manage.text
    assert 'href="/subscribe/subscribers?lang=fr"' in manage.text  # and where to subscribe
    emblem = client.get("/static/eu-emblem.png")
    assert emblem.status_code == 200 and emblem.headers["content-type"] == "image/png"
    assert emblem.content == emblem_bytes()
    assert client.get("/static/site.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", [f"{PAGE}de/", "/issues/2021-11-unknown/", "/issues/..%2f..",
                                  "/issues/.mirage/", f"/static/issues/{ISSUE_ID}/en/x.png"])
def test_unknown_issues_and_languages_are_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "<h1>" in response.text


def test_an_unsent_issue_is_not_public(sent_project: Path, client: TestClient) -> None:
    draft = sent_project / "issues" / "2021-12-draft"
    shutil.copytree(sent_project / "issues" / ISSUE_ID, draft)
    assert client.get("/issues/2021-12-draft/").status_code == 404
    assert "2021-12-draft" not in client.get("/").text
    view = signer_of(sent_project).make("view", "2021-12-draft", MARIA)
    assert client.get(f"/v/{view}").status_code == 404  # no one received it yet


def test_article_images_are_served_beside_the_page(web_project: Path,
                                                   run_cli: RunCli) -> None:
    """The images the readers got, kept with the issue as sent: a photo replaced after the
    send does not change the archive's."""
    folder = web_project / "issues" / ISSUE_ID
    (folder / "photo.png").write_bytes(emblem_bytes())
    edit(folder / "partners-meeting.md", "author: MIraGE consortium\n",
         "author: MIraGE consortium\nimage: photo.png\nimage_alt: The partners\n")
    assert run_cli("send", f"issues/{ISSUE_ID}", "--yes", cwd=web_project).code == 0
    (folder / "photo.png").write_bytes(png(8, 8, rgb=b"\x00\xff\x00"))  # another photo
    with client_for(web_project) as client:
        page = client.get(PAGE).text
        src = re.search(r'<img class="article-image" src="([^"]+)"', page)
        assert src is not None and src.group(1).startswith(f"/static/issues/{ISSUE_ID}/en/")
        image = client.get(src.group(1))
        assert image.status_code == 200 and image.content == emblem_bytes()


RECIPIENT_LOGIC = ("{{ recipient.greeting }}</p><p>[{% if recipient.organisation %}org"
                   "{% else %}none{% endif %}|"
                   "{{ recipient.organisation|default('your organisation')|upper }}]</p>")


def test_recipient_logic_on_the_issue_page_is_for_no_one(sent_project: Path) -> None:
    """An {% if %} or a filter on a recipient field runs for no one in particular: the empty
    branch, the default; never a slot marker (an issue the store did not keep as sent,
    rendered from today's template)."""
    forget_as_sent(sent_project)
    edit(sent_project / "templates/newsletter.html.j2", "{{ recipient.greeting }}</p>",
         RECIPIENT_LOGIC)
    with client_for(sent_project) as client:
        page = client.get(PAGE)
    assert page.status_code == 200, page.text
    assert ">[none|YOUR ORGANISATION]</p>" in page.text
    assert_issue_page(page.text)


def test_recipient_logic_in_the_issue_as_sent_is_for_no_one(web_project: Path,
                                                            run_cli: RunCli) -> None:
    """The same in the form the store kept at the send: run for no one, its links filled
    by the page, no marker left."""
    edit(web_project / "templates/newsletter.html.j2", "{{ recipient.greeting }}</p>",
         RECIPIENT_LOGIC.replace("none{% endif %}", "none {{ unsubscribe_url }}{% endif %}"))
    assert run_cli("send", f"issues/{ISSUE_ID}", "--yes", cwd=web_project).code == 0
    with client_for(web_project) as client:
        page = client.get(PAGE)
    assert page.status_code == 200, page.text
    assert ">[none /subscription/en/|YOUR ORGANISATION]</p>" in page.text
    assert_issue_page(page.text)


def test_the_view_online_link_shows_the_issue(sent_project: Path, client: TestClient) -> None:
    message = message_to(sent_project, JEAN)
    links = re.findall(rf'href="({re.escape(BASE)}/v/[^"]+)"', part(message, "html"))
    assert len(links) == 1
    page = client.get(path_of(links[0]))
    assert page.status_code == 200
    assert "Réunion des partenaires de MIraGE, octobre 2021" in page.text  # Jean reads French
    assert page.headers["x-robots-tag"] == "noindex"
    maria = re.findall(rf'href="({re.escape(BASE)}/v/[^"]+)"',
                       part(message_to(sent_project, MARIA), "html"))
    assert_issue_page(client.get(path_of(maria[0])).text)
    unsubscribe = path_of(https_unsubscribe(message)).replace("/u/", "/v/")
    assert client.get(unsubscribe).status_code == 400  # wrong purpose
    assert client.get(path_of(links[0])[:-2] + "xx").status_code == 400  # tampered


def test_the_feed_is_atom_with_an_entry_per_sent_issue(sent_project: Path,
                                                       run_cli: RunCli) -> None:
    second = sent_project / "issues" / "2021-12-closing"
    shutil.copytree(sent_project / "issues" / ISSUE_ID, second)
    edit(second / "issue.yaml", "date: 2021-10-29", "date: 2021-12-15")
    edit(second / "issue.yaml", '  en: "MIraGE news: final', '  en: "Closing issue: final')
    result = run_cli("send", "issues/2021-12-closing", "--yes", cwd=sent_project)
    assert result.code == 0, result.err
    with client_for(sent_project) as client:
        response = client.get("/feed.xml")
        index = client.get("/").text
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = etree.fromstring(response.content)
    assert feed.tag == f"{ATOM}feed"
    for tag in ("id", "title", "updated", "author"):
        assert feed.find(f"{ATOM}{tag}") is not None
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}id") for e in entries] == [
        f"{BASE}/issues/2021-12-closing/", f"{BASE}/issues/{ISSUE_ID}/"]  # newest first
    for entry in entries:
        assert entry.findtext(f"{ATOM}title") and entry.findtext(f"{ATOM}updated")
        link = entry.find(f"{ATOM}link")
        assert link is not None and link.get("href") == entry.findtext(f"{ATOM}id")
    assert entries[0].findtext(f"{ATOM}title", "").startswith("Closing issue")
    assert index.index("/issues/2021-12-closing/") < index.index(f"/issues/{ISSUE_ID}/")


def test_every_answer_carries_the_security_headers(sent_project: Path,
                                                   client: TestClient) -> None:
    unsubscribe = path_of(https_unsubscribe(message_to(sent_project, MARIA)))
    answers = [
        client.get("/"), client.get(PAGE), client.get(f"{PAGE}fr/"), client.get("/feed.xml"),
        client.get("/static/eu-emblem.png"), client.get("/static/site.css"),
        client.get("/subscribe/subscribers"), client.get(unsubscribe),
        client.get("/nowhere"),  # 404
        client.get("/u/forged.token.here"),  # 400
        client.post("/subscribe/subscribers", data={"email": "x@example.org"}),  # 403
        client.put("/"),  # 405
        client.post(unsubscribe, content=b"x" * 20_000, headers={"Content-Type": FORM}),  # 413
        client.post(unsubscribe, content=ONE_CLICK_BODY, headers={"Content-Type": FORM}),
    ]
    assert [a.status_code for a in answers] == [200] * 8 + [404, 400, 403, 405, 413, 200]
    for answer in answers:
        assert answer.headers["content-security-policy"] == CSP, answer.request.url
        assert "script" not in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "set-cookie" not in answer.headers
        if answer.status_code >= 400:
            assert answer.headers["content-type"].startswith("text/html")
            assert "Traceback" not in answer.text and "<h1>" in answer.text


def test_a_broken_issue_is_a_500_page_not_a_traceback(sent_project: Path) -> None:
    forget_as_sent(sent_project)  # an issue the store kept as sent never renders again
    edit(sent_project / "templates" / "newsletter.html.j2", "{{ issue.title }}",
         "{{ issue.no_such_thing }}")
    with client_for(sent_project, raise_server_exceptions=False) as client:
        page = client.get(PAGE)
        assert page.status_code == 500
        assert "This issue cannot be shown at the moment" in page.text
        assert "Traceback" not in page.text and "no_such_thing" not in page.text
        assert page.headers["content-security-policy"] == CSP
        assert client.get("/").status_code == 200


def test_archive_writes_a_static_site(sent_project: Path, run_cli: RunCli) -> None:
    result = run_cli("archive", "--out", "site", "--base-url", "https://news.example.org",
                     cwd=sent_project)
    assert result.code == 0, result.err
    assert "1 issue(s)" in result.out
    site = sent_project / "site"
    expected = ["index.html", f"issues/{ISSUE_ID}/index.html", f"issues/{ISSUE_ID}/en/index.html",
                f"issues/{ISSUE_ID}/fr/index.html", "feed.xml", "static/eu-emblem.png",
                "static/site.css"]
    for name in expected:
        assert (site / name).is_file(), name
    assert (site / "static/eu-emblem.png").read_bytes() == emblem_bytes()
    issue_page = (site / f"issues/{ISSUE_ID}/index.html").read_text(encoding="utf-8")
    assert "__MM_" not in issue_page and AMIF_TEXT in issue_page
    assert 'src="../../static/eu-emblem.png"' in issue_page
    # the "unsubscribe" of the public copy says how to unsubscribe; sign-up is on the server
    assert 'href="../../subscription/en/index.html"' in issue_page
    manage = (site / "subscription/en/index.html").read_text(encoding="utf-8")
    assert "personal link to unsubscribe" in manage
    assert f'href="{BASE}/subscribe/subscribers?lang=en"' in manage
    french = (site / "subscription/fr/index.html").read_text(encoding="utf-8")
    assert '<html lang="fr">' in french and "lien personnel de désabonnement" in french
    feed = etree.fromstring((site / "feed.xml").read_bytes())
    [entry] = feed.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}id") == f"https://news.example.org/issues/{ISSUE_ID}/"
    for page in site.rglob("*.html"):  # every relative link resolves to a written file
        for target in re.findall(r'(?:href|src)="([^"#]+)"', page.read_text(encoding="utf-8")):
            if urlsplit(target).scheme:
                continue
            assert (page.parent / target).resolve().is_file(), f"{page}: {target}"
