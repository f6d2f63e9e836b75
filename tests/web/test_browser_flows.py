"""The subscriber side in a real browser: headless Debian Chromium (Playwright) against
`mirage-mailer serve` running for real on 127.0.0.1.

A person opens the unsubscribe link of a message that was sent, sees one button, clicks it,
and is suppressed; a person subscribes through the form and confirms from the message that
arrived in the test SMTP server; the archive page of the sent issue fits a 320 px screen and
shows the EU emblem and disclaimer. Screenshots are kept in test-artifacts/.
Every wait is bounded and the server is always stopped.
"""

from __future__ import annotations

import email
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from web_support import free_port, serving

from browser import ARTIFACTS, browser
from helpers import SAMPLE_ISSUE, RunCli, edit, use_relay
from mirage_mailer.compose.disclaimer import AMIF_TEXT, EMBLEM_ALT, FUNDED
from mirage_mailer.project.config import load_settings
from mirage_mailer.store import Store
from support.smtp_sink import SmtpSink

ISSUE_ID = SAMPLE_ISSUE.rsplit("/", 1)[-1]
LIST = "subscribers"
NEWCOMER = "ana.newcomer@example.org"
WAIT_S = 20.0  # upper bound for the server to start and for a message to arrive
PAGE_TIMEOUT_MS = 15_000

# The newest consent wording of the sample project (the scaffolded mirage.yaml).
CONSENT_START = "I agree that the MIraGE project sends me its newsletter"


@dataclass
class Site:
    root: Path
    url: str
    sink: SmtpSink

    def store(self) -> Store:
        return Store(self.root / ".mirage" / "tracking.sqlite")


@pytest.fixture
def served(project: Path, run_cli: RunCli, sink: SmtpSink) -> Iterator[Site]:
    """The sample project with its issue sent (Maildir outbox), then served for real.

    Links in the messages point at the server (tracking.base_url); from the moment the server
    runs, the transport is the test SMTP server, so sign-up confirmations arrive there.
    """
    port = free_port()
    config = project / "mirage.yaml"
    edit(config, "  # base_url: https://news.mirageproject.eu",
         f"  base_url: http://127.0.0.1:{port}")
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.out + sent.err
    assert "sent 5" in sent.out, sent.out
    use_relay(project, sink.url, paced=True)
    with serving(project, port=port, wait=WAIT_S) as url:
        yield Site(project, url, sink)


@pytest.fixture
def chromium() -> Iterator[Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    with browser() as launched:
        yield launched


def new_page(chromium: Any, width: int = 800) -> Any:
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return page


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"serve-{name}.png"), full_page=True)


def main_text(page: Any) -> str:
    """What the page says, for a failure message (an error page names its reason)."""
    text: str = page.locator("main").inner_text()
    return text


def read_mail(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    content = body.get_content()
    assert isinstance(content, str)
    return content


def overflow(page: Any) -> int:
    value: int = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    return value


def test_a_person_unsubscribes_from_the_link_in_a_message(served: Site, chromium: Any) -> None:
    outbox = sorted((served.root / "outbox" / "new").iterdir(),
                    key=lambda p: p.stat().st_mtime_ns)
    assert len(outbox) == 5
    message = read_mail(outbox[0].read_bytes())
    address = parseaddr(str(message["To"]))[1]
    assert "@" in address
    links = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    web_links = [link for link in links if link.startswith(("https://", "http://"))]
    assert len(web_links) == 1, links
    link = web_links[0]
    assert link.startswith(f"{served.url}/u/"), link
    assert address not in link and address.split("@")[0] not in link  # no address in URLs
    assert link in text_of(message)  # the body's unsubscribe link is the same page

    page = new_page(chromium)
    response = page.goto(link)
    assert response is not None and response.status == 200
    assert page.get_by_role("heading", name="Unsubscribe").is_visible()
    assert page.locator("button").count() == 1
    button = page.get_by_role("button", name="Unsubscribe")
    assert button.is_visible()
    masked = f"{address[0]}…@{address.split('@')[1]}"
    assert masked in page.locator("main").inner_text()
    assert address not in page.content()
    shot(page, "unsubscribe-before")
    with served.store() as store:
        assert not store.is_suppressed(address), "opening the link alone unsubscribed"

    with page.expect_navigation():
        button.click()
    assert page.get_by_role("heading", name="You are unsubscribed").is_visible(), main_text(page)
    main = page.locator("main").inner_text()
    assert masked in main and "will receive no further messages from MIraGE" in main
    assert page.locator("button").count() == 0
    shot(page, "unsubscribe-after")
    with served.store() as store:
        assert store.is_suppressed(address)
        suppression = store.export(address)["suppressed"]
    assert suppression is not None and suppression["source"] == "web"
    assert ISSUE_ID in suppression["reason"]

    page.goto(link)  # the link again: no button, it says so
    assert "already unsubscribed" in page.locator("main").inner_text()
    assert page.locator("button").count() == 0
    page.close()


def test_a_person_subscribes_and_confirms_from_the_message(served: Site, chromium: Any) -> None:
    form_url = f"{served.url}/subscribe/{LIST}"
    page = new_page(chromium)
    response = page.goto(form_url)
    assert response is not None and response.status == 200
    assert page.get_by_role("heading", name="Subscribe to the MIraGE newsletter").is_visible()
    consent = page.get_by_label(CONSENT_START)
    assert consent.is_visible() and not consent.is_checked()

    # Without the consent tick: the browser itself refuses to send the form (required)...
    page.get_by_label("E-mail address").fill(NEWCOMER)
    page.get_by_label("Name").fill("Ana Newcomer")
    page.get_by_label("Language of the newsletter").select_option("fr")
    page.get_by_role("button", name="Subscribe").click()
    assert page.url == form_url
    assert consent.evaluate("(box) => box.validity.valueMissing")
    # ...and the server refuses it too when a browser sends it anyway.
    page.locator("form").evaluate("(form) => { form.noValidate = true; }")
    with page.expect_navigation():
        page.get_by_role("button", name="Subscribe").click()
    alert = page.get_by_role("alert")
    assert alert.is_visible(), main_text(page)
    assert "Tick the box to give your consent" in alert.inner_text()
    assert page.locator("#consent-error").is_visible()
    assert page.get_by_label("E-mail address").input_value() == NEWCOMER  # kept for the retry
    shot(page, "subscribe-no-consent")
    time.sleep(0.5)  # a confirmation would go out right after the response
    assert served.sink.received == []
    with served.store() as store:
        assert store.export(NEWCOMER)["subscriptions"] == []
        assert list(store.confirmed_subscribers(LIST)) == []

    # With consent: "check your mailbox", and the confirmation arrives in the SMTP server.
    page.get_by_label("Language of the newsletter").select_option("fr")
    page.get_by_label(CONSENT_START).check()
    shot(page, "subscribe-filled")
    with page.expect_navigation():
        page.get_by_role("button", name="Subscribe").click()
    assert page.get_by_role("heading", name="Check your mailbox").is_visible(), main_text(page)
    assert NEWCOMER in page.locator("main").inner_text()
    shot(page, "subscribe-sent")

    deadline = time.monotonic() + WAIT_S
    while not served.sink.received:
        assert time.monotonic() < deadline, "no confirmation message arrived"
        time.sleep(0.1)
    time.sleep(0.3)  # one message, not several
    assert len(served.sink.received) == 1
    received = served.sink.received[0]
    assert received.recipients == (NEWCOMER,)
    confirmation = read_mail(received.data)
    assert NEWCOMER in str(confirmation["To"])
    assert "confirm" in str(confirmation["Subject"]).lower()
    links = re.findall(r"https?://\S+/confirm/[^\s<>\"]+", text_of(confirmation))
    assert len(set(links)) == 1, links
    link = links[0]
    assert link.startswith(f"{served.url}/confirm/")
    with served.store() as store:
        assert list(store.confirmed_subscribers(LIST)) == []  # pending until the link is opened

    # From the link on, pages speak the newsletter language chosen on the form (French).
    response = page.goto(link)
    assert response is not None and response.status == 200
    assert page.get_by_role("heading", name="Confirmez votre abonnement").is_visible(), \
        main_text(page)
    with served.store() as store:
        assert list(store.confirmed_subscribers(LIST)) == []  # opening the link is not enough
    with page.expect_navigation():
        page.get_by_role("button", name="Confirmer mon abonnement").click()
    assert page.get_by_role("heading", name="Abonnement confirmé").is_visible(), \
        main_text(page)
    main = page.locator("main").inner_text()
    assert f"{NEWCOMER[0]}…@example.org" in main and "lettre d'information MIraGE" in main
    assert "désabonnée" not in main
    shot(page, "subscribe-confirmed")
    page.close()

    settings = load_settings(served.root / "mirage.yaml")
    with served.store() as store:
        confirmed = list(store.confirmed_subscribers(LIST))
    assert len(confirmed) == 1
    row = confirmed[0]
    assert row["email"] == NEWCOMER and row["name"] == "Ana Newcomer" and row["lang"] == "fr"
    assert row["status"] == "confirmed" and row["source"] == "web"
    assert row["consent_text"] == settings.web.consent_text
    assert row["consent_text"].startswith(CONSENT_START)
    assert row["consent_version"] == settings.web.consent_version == "2026-11"
    assert row["requested_at"] and row["confirmed_at"]
    assert row["requested_at"] <= row["confirmed_at"]


@pytest.mark.parametrize("width", [600, 320])
def test_the_archive_page_fits_and_shows_the_eu_block(served: Site, chromium: Any,
                                                       width: int) -> None:
    page = new_page(chromium, width)
    home = page.goto(f"{served.url}/")
    assert home is not None and home.status == 200
    assert overflow(page) <= 0, f"the archive index overflows by {overflow(page)}px at {width}px"
    page.locator(f'a[href*="/issues/{ISSUE_ID}/"]').first.click()
    page.wait_for_load_state()
    assert f"/issues/{ISSUE_ID}/" in page.url
    assert overflow(page) <= 0, f"{overflow(page)}px of horizontal overflow at {width}px"

    emblem = page.locator(f'img[alt="{EMBLEM_ALT}"]')
    assert emblem.count() == 1
    emblem.scroll_into_view_if_needed()
    assert emblem.is_visible()
    assert emblem.evaluate("(img) => img.complete && img.naturalWidth > 0"), \
        "the emblem image did not load"
    box = emblem.bounding_box()
    assert box is not None and box["width"] >= 60 and box["height"] >= 40
    assert page.get_by_text(FUNDED, exact=True).is_visible()
    disclaimer = page.get_by_text(AMIF_TEXT[:60])
    assert disclaimer.is_visible()
    assert float(disclaimer.evaluate("(el) => getComputedStyle(el).fontSize")[:-2]) >= 9
    body = page.locator("body").inner_text()
    assert "Dear reader" in body
    assert "@example.org" not in body  # the page is for no one in particular
    shot(page, f"archive-issue-{width}px")
    page.close()

