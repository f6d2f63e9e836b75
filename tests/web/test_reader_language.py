"""Every page and error page of `mirage-mailer serve`, fetched over HTTP (httpx against the
real server), is in the reader's language: French for `Accept-Language: fr-CH, fr;q=0.9,
en;q=0.5`, English for `de` (no German catalog), and the project's language without a header.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import httpx
import pytest
from babel.messages.pofile import read_po
from web_support import (
    ISSUE_ID,
    JEAN,
    MARIA,
    csrf_of,
    forget_as_sent,
    https_unsubscribe,
    message_to,
    path_of,
    serving,
    settings_of,
)

from helpers import edit

POT = Path(__file__).resolve().parents[2] / "src/mirage_mailer/data/locale/messages.pot"
FRENCH = "fr-CH, fr;q=0.9, en;q=0.5"
FORM_PATH = "/subscribe/subscribers"
PAGE = f"/issues/{ISSUE_ID}/"
SAME_IN_FRENCH = {"minute", "minutes"}  # words of the source strings that French shares


@lru_cache(maxsize=1)
def english_fragments() -> tuple[str, ...]:
    """The words of every English source string, cut at placeholders and tags."""
    with POT.open("rb") as handle:
        ids = [m.id for m in read_po(handle) if m.id]
    found: set[str] = set()
    for message in ids:
        for text in [message] if isinstance(message, str) else message:
            for piece in re.split(r"<[^>]+>|%\(\w+\)[sd]|&\w+;", text):
                piece = piece.strip(" .,:;?()\"")
                if len(piece) >= 6 and piece not in SAME_IN_FRENCH:
                    found.add(piece)
    return tuple(sorted(found))


def visible(page: str) -> str:
    """What a reader reads: text without tags and comments, entities decoded."""
    text = re.sub(r"<!--.*?-->|<style\b.*?</style>|<[^>]+>", " ", page, flags=re.S)
    return " ".join(html.unescape(text).split())


def english_left(text: str, *, allowed: tuple[str, ...] = ()) -> list[str]:
    for words in allowed:
        text = text.replace(" ".join(words.split()), " ")
    return [piece for piece in english_fragments()
            if re.search(rf"(?<!\w){re.escape(piece)}(?!\w)", text)]


def nav_of(page: str) -> str:
    match = re.search(r'<div role="navigation".*?</div>', page, re.S)
    assert match, "no archive navigation bar on the issue page"
    return match.group(0)


def sign_up_post(http: httpx.Client, email: str, **fields: str) -> httpx.Response:
    token = csrf_of(http.get(FORM_PATH).text)
    data = {"csrf": token, "email": email, "name": "", "lang": "fr", "consent": "yes", **fields}
    return http.post(FORM_PATH, data=data)


def every_page(root: Path, http: httpx.Client) -> dict[str, httpx.Response]:
    """Each kind of page a reader can meet, keyed by a name for failure messages."""
    pages: dict[str, httpx.Response] = {
        "archive": http.get("/"),
        "issue": http.get(PAGE),
        "subscription": http.get("/subscription"),
        "form": http.get(FORM_PATH),
        "form-errors": sign_up_post(http, "not an address", consent=""),
        "confirm-400": http.get("/confirm/forged.token.value"),
        "unsubscribe-400": http.get("/u/forged.token.value"),
        "view-400": http.get("/v/forged.token.value"),
        "click-400": http.get("/c/forged", params={"u": "https://example.org/"}),
        "404": http.get("/nowhere"),
        "issue-404": http.get(f"{PAGE}xx/"),
        "405": http.put("/"),
        "413": http.post(path_of(https_unsubscribe(message_to(root, MARIA))),
                         content=b"x" * 100_000,
                         headers={"Content-Type": "application/x-www-form-urlencoded"}),
        "403": http.post(FORM_PATH, data={"csrf": "1.forged", "email": "a@example.org"}),
        "form-400": http.post(FORM_PATH, files={"cv": ("cv.txt", b"a file")}),
    }
    # The sign-up answers and both rate-limit pages: one mailbox four times, then others.
    answers = [sign_up_post(http, "ana@example.org") for _ in range(4)]
    pages["sent"], pages["mailbox-limit"] = answers[0], answers[3]
    for n in range(6):
        assert sign_up_post(http, f"reader{n}@example.org").status_code == 200
    pages["429"] = sign_up_post(http, "one.more@example.org")
    # A template broken while the server runs: the issue page of a store without the issue
    # as sent (an older store's; a kept one never renders again) is a 500 page.
    forget_as_sent(root)
    edit(root / "templates" / "newsletter.html.j2", "{{ issue.title }}",
         "{{ issue.no_such_thing }}")
    pages["500"] = http.get(PAGE)
    return pages


EXPECTED_STATUS = {
    "archive": 200, "issue": 200, "subscription": 200, "form": 200, "form-errors": 400,
    "confirm-400": 400, "unsubscribe-400": 400, "view-400": 400, "click-400": 400, "404": 404,
    "issue-404": 404, "405": 405, "413": 413, "403": 403, "form-400": 400, "sent": 200,
    "mailbox-limit": 200, "429": 429, "500": 500,
}
FRENCH_WORDS = {
    "archive": "Archives de la lettre d'information",
    "issue": "Archives de la lettre d'information MIraGE",
    "subscription": "lien personnel de désabonnement",
    "form": "Abonnez-vous à la lettre d'information MIraGE",
    "form-errors": "Cochez la case pour donner votre consentement",
    "confirm-400": "Ce lien de confirmation n'est pas valide",
    "unsubscribe-400": "Ce lien de désabonnement n'est pas valide",
    "view-400": "Ce lien n'est pas valide",
    "click-400": "Il a peut-être été modifié ou tronqué",
    "404": "Page introuvable",
    "issue-404": "Ce numéro n'existe pas dans cette langue",
    "405": "Action non autorisée ici",
    "413": "La requête dépasse la taille acceptée par ce site",
    "403": "Ce formulaire ne peut pas être accepté",
    "form-400": "Ce formulaire ne peut pas être lu",
    "sent": "Consultez votre boîte aux lettres",
    "mailbox-limit": "Un message de confirmation a déjà été envoyé récemment",
    "429": "Trop d'inscriptions",
    "500": "Ce numéro ne peut pas être affiché pour le moment",
}
ENGLISH_WORDS = {
    "archive": "Newsletter archive", "issue": "MIraGE newsletter archive",
    "subscription": "personal link to unsubscribe", "form": "Subscribe to the MIraGE newsletter",
    "form-errors": "Tick the box to give your consent", "404": "Page not found",
    "405": "Not allowed here", "413": "The request is larger than this site accepts",
    "form-400": "This form cannot be read",
    "sent": "Check your mailbox", "429": "Too many sign-ups",
    "500": "This issue cannot be shown at the moment", "click-400": "This link is not valid",
}


@pytest.fixture
def french_server(sent_project: Path) -> Iterator[httpx.Client]:
    with serving(sent_project) as url, httpx.Client(
            base_url=url, timeout=10, headers={"Accept-Language": FRENCH}) as http:
        yield http


def check_language(name: str, response: httpx.Response, lang: str) -> str:
    """The page's reader-facing text, after checking its declared language."""
    assert response.status_code == EXPECTED_STATUS[name], (name, response.text[:300])
    assert response.headers.get("content-language") == (
        "en" if name == "issue" else lang), name  # the issue page is the issue's language
    page = response.text
    if name == "issue":
        nav = nav_of(page)
        assert f'lang="{lang}"' in nav, name
        return visible(nav)
    assert re.search(rf'<html lang="{lang}"[ >]', page), (name, page[:200])
    return visible(page)


def test_every_page_is_french_for_a_french_reader(sent_project: Path,
                                                  french_server: httpx.Client) -> None:
    consent = settings_of(sent_project).web.consent_text
    pages = every_page(sent_project, french_server)
    assert set(pages) == set(EXPECTED_STATUS)
    for name, response in pages.items():
        text = check_language(name, response, "fr")
        assert FRENCH_WORDS[name] in text, (name, text)
        assert english_left(text, allowed=(consent,)) == [], (name, text)
    feed = french_server.get("/feed.xml")
    assert feed.headers["content-language"] == "fr"
    assert "<title>Lettre d'information MIraGE</title>" in feed.text
    assert "Tous les numéros de la lettre d'information MIraGE" in feed.text
    assert 'xml:lang="fr"' in feed.text


def test_a_french_subscriber_gets_french_pages_whatever_the_browser_says(
        sent_project: Path) -> None:
    """The unsubscribe token knows the recipient's language: it comes first."""
    link = path_of(https_unsubscribe(message_to(sent_project, JEAN)))
    with serving(sent_project) as url, httpx.Client(
            base_url=url, timeout=10, headers={"Accept-Language": "de"}) as http:
        page = http.get(link)
        assert page.headers["content-language"] == "fr"
        assert "Ne plus envoyer la lettre d'information MIraGE" in visible(page.text)
        done = http.post(link, data={"csrf": csrf_of(page.text)})
        assert done.status_code == 200
        assert "Vous êtes désabonné·e" in visible(done.text)
        assert english_left(visible(done.text)) == []
        again = http.get(link)
        assert "est déjà désabonnée" in visible(again.text)
        english = http.get(path_of(https_unsubscribe(message_to(sent_project, MARIA))))
        assert english.headers["content-language"] == "en"
        assert "Stop sending the MIraGE newsletter" in visible(english.text)


def test_every_page_is_english_for_a_reader_of_a_language_without_a_catalog(
        sent_project: Path) -> None:
    with serving(sent_project) as url, httpx.Client(
            base_url=url, timeout=10, headers={"Accept-Language": "de-DE, de;q=0.9"}) as http:
        pages = every_page(sent_project, http)
        feed = http.get("/feed.xml")
    for name, response in pages.items():
        text = check_language(name, response, "en")
        if name in ENGLISH_WORDS:
            assert ENGLISH_WORDS[name] in text, (name, text)
        assert "lettre d'information" not in text and "Erreur" not in text, name
    assert feed.headers["content-language"] == "en"
    assert "<title>MIraGE newsletter</title>" in feed.text


def test_without_a_header_the_pages_speak_the_project_language(web_project: Path) -> None:
    edit(web_project / "mirage.yaml", "  language: en", "  language: fr")
    with serving(web_project) as url, httpx.Client(base_url=url,
                                                               timeout=10) as http:
        assert "accept-language" not in http.headers
        pages = {
            "archive": http.get("/"), "form": http.get(FORM_PATH),
            "subscription": http.get("/subscription"), "404": http.get("/nowhere"),
            "405": http.put("/"), "unsubscribe-400": http.get("/u/forged.token.value"),
            "form-errors": sign_up_post(http, "not an address", consent=""),
        }
        feed = http.get("/feed.xml")
        english = http.get("/nowhere", headers={"Accept-Language": "en-GB"})
    for name, response in pages.items():
        text = check_language(name, response, "fr")
        assert FRENCH_WORDS[name] in text, (name, text)
    assert "<title>Lettre d'information MIraGE</title>" in feed.text
    assert "Page not found" in english.text  # a reader who asks for English gets it
