"""A French reader's whole journey (issue 9) in headless Debian Chromium (Playwright) against
`mirage-mailer serve` running for real: the sign-up form with a French browser, the
confirmation mail from the Maildir outbox (subject and body in French), the one-button confirm
page, the confirmed page, then the unsubscribe link of a French subscriber's newsletter (the
link's language wins over an English browser), and the archive copy's honest "Se désabonner".
Every page is checked to declare ``lang="fr"``. Screenshots are kept in test-artifacts/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from test_browser_flows import (
    CONSENT_START,
    ISSUE_ID,
    LIST,
    PAGE_TIMEOUT_MS,
    WAIT_S,
    Site,
    main_text,
    read_mail,
    shot,
    text_of,
)
from web_support import free_port, serving

from browser import ARTIFACTS, browser
from helpers import SAMPLE_ISSUE, RunCli, edit
from support.smtp_sink import SmtpSink


@pytest.fixture
def chromium() -> Iterator[Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    with browser() as launched:
        yield launched


FRENCH_READER = "claire.martin@example.org"


@pytest.fixture
def served_maildir(project: Path, run_cli: RunCli) -> Iterator[Site]:
    """The sample issue sent, then served, confirmations going to the Maildir outbox too."""
    port = free_port()
    edit(project / "mirage.yaml", "  # base_url: https://news.mirageproject.eu",
         f"  base_url: http://127.0.0.1:{port}")
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.out + sent.err
    with serving(project, port=port, wait=WAIT_S) as url:
        yield Site(project, url, SmtpSink())


def maildir_message_to(root: Path, address: str, *, wait: float = 0.0) -> EmailMessage:
    """The one message to ``address`` in outbox/new (waiting up to ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        found = [m for m in (read_mail(p.read_bytes()) for p in (root / "outbox" / "new").iterdir())
                 if address in str(m["To"])]
        if found or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    assert len(found) == 1, f"{len(found)} messages to {address}"
    return found[0]


def french_page(chromium: Any, locale: str = "fr-FR") -> Any:
    """A browser tab whose Accept-Language is the locale's (Chromium derives it)."""
    page = chromium.new_page(viewport={"width": 800, "height": 900}, locale=locale)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return page


def assert_french(page: Any) -> None:
    assert page.evaluate("() => document.documentElement.lang") == "fr", main_text(page)


def test_a_french_reader_subscribes_confirms_and_unsubscribes_in_french(
        served_maildir: Site, chromium: Any) -> None:
    site = served_maildir
    page = french_page(chromium)
    response = page.goto(f"{site.url}/subscribe/{LIST}")
    assert response is not None and response.status == 200
    assert response.headers["content-language"] == "fr"
    assert_french(page)
    assert page.get_by_role(
        "heading", name="Abonnez-vous à la lettre d'information MIraGE").is_visible()
    language = page.get_by_label("Langue de la lettre d'information")
    assert language.input_value() == "fr"  # the reader's language is proposed
    page.get_by_label("Adresse électronique").fill(FRENCH_READER)
    page.get_by_label("Nom").fill("Claire Martin")
    page.get_by_label(CONSENT_START).check()
    with page.expect_navigation():
        page.get_by_role("button", name="S'abonner").click()
    assert page.get_by_role("heading", name="Consultez votre boîte aux lettres").is_visible(), \
        main_text(page)
    assert_french(page)
    shot(page, "fr-subscribe-sent")

    message = maildir_message_to(site.root, FRENCH_READER, wait=WAIT_S)
    assert str(message["Subject"]) == (
        "Veuillez confirmer votre abonnement à la lettre d'information MIraGE")
    assert message["Content-Language"] == "fr"
    plain = text_of(message)
    assert plain.startswith("Bonjour,\n")  # the name typed is not mailed before confirmation
    assert "Quelqu'un, vous sans doute, a demandé l'abonnement de cette adresse" in plain
    assert "Si vous n'êtes pas à l'origine de cette demande" in plain
    assert "Someone" not in plain and "If it was not you" not in plain
    html_part = message.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    html = html_part.get_content()
    assert '<html lang="fr">' in html and "Confirmer mon abonnement" in html
    links = re.findall(r"https?://\S+/confirm/[^\s<>\"]+", plain)
    assert len(set(links)) == 1, links

    response = page.goto(links[0])
    assert response is not None and response.status == 200
    assert_french(page)
    assert page.get_by_role("heading", name="Confirmez votre abonnement").is_visible()
    # the name typed is shown, with a way to subscribe without it
    assert "L'inscription indique le nom Claire Martin :" in main_text(page)
    assert page.locator("button").count() == 2
    assert page.get_by_role("button", name="M'abonner sans ce nom").is_visible()
    shot(page, "fr-confirm")
    with page.expect_navigation():
        page.get_by_role("button", name="Confirmer mon abonnement").click()
    assert page.get_by_role("heading", name="Abonnement confirmé").is_visible(), main_text(page)
    assert_french(page)
    main = main_text(page)
    assert "Merci. L'adresse c…@example.org est abonnée" in main
    shot(page, "fr-confirmed")
    page.close()
    with site.store() as store:
        [row] = [r for r in store.confirmed_subscribers(LIST) if r["email"] == FRENCH_READER]
    assert row["lang"] == "fr"

    # Jean reads the newsletter in French; his browser says English: the link knows better.
    newsletter = maildir_message_to(site.root, "jean.dupont@example.org")
    link = next(u for u in re.findall(r"<([^>]+)>", str(newsletter["List-Unsubscribe"]))
                if u.startswith("http"))
    page = french_page(chromium, locale="en-US")
    response = page.goto(link)
    assert response is not None and response.status == 200
    assert_french(page)
    assert page.get_by_role("heading", name="Se désabonner").is_visible(), main_text(page)
    assert "Ne plus envoyer la lettre d'information MIraGE à j…@example.org" in main_text(page)
    assert page.locator("button").count() == 1
    shot(page, "fr-unsubscribe")
    with page.expect_navigation():
        page.get_by_role("button", name="Se désabonner").click()
    assert page.get_by_role("heading", name="Vous êtes désabonné·e").is_visible(), \
        main_text(page)
    assert_french(page)
    assert "ne recevra plus aucun message de MIraGE" in main_text(page)
    shot(page, "fr-unsubscribed")
    with site.store() as store:
        assert store.is_suppressed("jean.dupont@example.org")

    # The public copy of the French issue: its "Se désabonner" is honest now.
    page.goto(f"{site.url}/issues/{ISSUE_ID}/fr/")
    with page.expect_navigation():
        page.get_by_role("link", name="Se désabonner").click()
    assert "/subscription/fr/" in page.url
    assert_french(page)
    assert page.get_by_role("heading", name="Gérer votre abonnement").is_visible()
    assert page.get_by_role("link", name="S'abonner").count() == 1
    page.close()
