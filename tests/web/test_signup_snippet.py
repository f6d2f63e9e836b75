"""Sign-up from the project's own site: a form posted from an allowed site gets this site's one
button (nothing stored, nothing sent), the button records and mails only when pressed at a
person's pace, a robot that fills the trap field or presses at once gets a polite page and
nothing else, other sites are refused, and the way back to the site is never an open redirect.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from web_support import (
    BASE,
    TestClient,
    client_for,
    csrf_of,
    outbox,
    settings_of,
    store_of,
)

from helpers import edit, use_relay
from mirage_mailer.project.origins import safe_return_url
from mirage_mailer.util.tokens import load_secret
from mirage_mailer.web.signup_ticket import MIN_SECONDS, SignUpTickets, Ticket, Verdict
from support.smtp_sink import SmtpSink

SITE = "https://www.mirageproject.eu"
FORM_PATH = "/subscribe/subscribers"
FINISH_PATH = f"{FORM_PATH}/finish"
NEW = "new.reader@example.org"
FROM_SITE = {"Origin": SITE, "Sec-Fetch-Site": "cross-site"}
ON_THIS_SITE = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}
COMMENTED = "  # allowed_origins:\n  #   - https://www.mirageproject.eu\n"


def allow(root: Path, *origins: str) -> Path:
    listed = "".join(f"    - {origin}\n" for origin in origins)
    edit(root / "mirage.yaml", COMMENTED, f"  allowed_origins:\n{listed}")
    return root


class Clock:
    """The tickets' clock, moved by the test (seconds since the epoch)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def site_project(web_project: Path) -> Path:
    return allow(web_project, SITE)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def site_client(site_project: Path, clock: Clock) -> Iterator[TestClient]:
    """The app, its sign-up tickets on the test's clock (the CSRF fields keep the real one)."""
    with client_for(site_project) as client:
        settings = settings_of(site_project)
        key = load_secret(settings.state_dir, settings.tracking.secret_env)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        client.app.state.ctx = dataclasses.replace(  # type: ignore[attr-defined]
            ctx, tickets=SignUpTickets(key, clock=clock))
        yield client


def snippet_post(client: TestClient, *, headers: dict[str, str] | None = None,
                 **fields: str) -> httpx.Response:
    """What the pasted form sends: no CSRF field, the browser's Origin of the project's site."""
    data = {"email": NEW, "name": "Nóva Reader", "lang": "en", "consent": "yes", "website": "",
            **fields}
    return client.post(FORM_PATH, data=data, headers=FROM_SITE if headers is None else headers)


def ticket_of(page: str) -> str:
    match = re.search(r'name="ticket" value="([^"]+)"', page)
    assert match, "no ticket in the page"
    return match.group(1)


def press(client: TestClient, page: str) -> httpx.Response:
    """The person presses the one button of the page."""
    return client.post(FINISH_PATH, data={"csrf": csrf_of(page), "ticket": ticket_of(page)},
                       headers=ON_THIS_SITE)


def rows(project: Path) -> list[dict[str, object]]:
    with store_of(project) as store:
        return list(store.export(NEW)["subscriptions"])


def nothing_kept(project: Path) -> bool:
    return rows(project) == [] and outbox(project) == []


def back_links(page: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)">Back to ', page)


def test_a_post_from_an_allowed_site_gets_one_button_and_keeps_nothing(
        site_project: Path, site_client: TestClient) -> None:
    page = snippet_post(site_client)
    assert page.status_code == 200, page.text
    assert "One more step" in page.text and NEW in page.text
    assert f'action="{FINISH_PATH}"' in page.text
    assert f'href="{SITE}/privacy"' in page.text
    assert back_links(page.text) == [f"{SITE}/"]
    assert page.headers["x-robots-tag"] == "noindex"
    assert nothing_kept(site_project)


def test_the_button_pressed_at_a_persons_pace_signs_up_and_mails(
        site_project: Path, site_client: TestClient, clock: Clock) -> None:
    page = snippet_post(site_client, return_url=f"{SITE}/newsletter/?from=side#form")
    clock.now += MIN_SECONDS + 0.5
    done = press(site_client, page.text)
    assert done.status_code == 200, done.text
    assert "Check your mailbox" in done.text
    assert back_links(done.text) == [f"{SITE}/newsletter/?from=side#form"]
    [row] = rows(site_project)
    settings = settings_of(site_project)
    assert row["status"] == "pending" and row["list"] == "subscribers" and row["lang"] == "en"
    assert row["name"] == "Nóva Reader"
    assert row["source"] == f"form on {SITE}"  # where the consent was given
    assert row["consent_text"] == settings.web.consent_text
    [message] = outbox(site_project)
    assert message["To"] == NEW  # the name typed is never mailed before confirmation
    assert "/confirm/" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_the_pages_speak_the_language_of_the_pasted_form(site_project: Path,
                                                         site_client: TestClient,
                                                         clock: Clock) -> None:
    english_browser = {**FROM_SITE, "Accept-Language": "en"}
    page = snippet_post(site_client, headers=english_browser, lang="fr")
    assert page.headers["content-language"] == "fr" and '<html lang="fr">' in page.text
    clock.now += 3
    done = site_client.post(FINISH_PATH, data={"csrf": csrf_of(page.text),
                                               "ticket": ticket_of(page.text)},
                            headers={**ON_THIS_SITE, "Accept-Language": "en"})
    assert done.headers["content-language"] == "fr"
    assert "Consultez votre boîte aux lettres" in done.text
    [message] = outbox(site_project)
    assert message["Content-Language"] == "fr"


def test_the_button_pressed_at_once_sends_nothing(site_project: Path, site_client: TestClient,
                                                  clock: Clock) -> None:
    page = snippet_post(site_client)
    clock.now += MIN_SECONDS - 0.3
    again = press(site_client, page.text)
    assert again.status_code == 200
    assert "pressed very quickly" in again.text and 'role="alert"' in again.text
    assert nothing_kept(site_project)
    # A person reads the note and presses again: the new page's own clock counts.
    clock.now += MIN_SECONDS + 0.1
    assert "Check your mailbox" in press(site_client, again.text).text
    assert len(rows(site_project)) == 1 and len(outbox(site_project)) == 1


def test_a_robot_posting_both_steps_at_once_with_the_real_clock_gets_no_mail(
        site_project: Path) -> None:
    with client_for(site_project) as client:
        page = snippet_post(client)
        answer = press(client, page.text)
    assert answer.status_code == 200 and "pressed very quickly" in answer.text
    assert nothing_kept(site_project)


@pytest.mark.parametrize("trap", ["http://spam.example", "x"])
def test_a_filled_trap_field_gets_the_thank_you_page_and_nothing_else(
        site_project: Path, site_client: TestClient, trap: str) -> None:
    answer = snippet_post(site_client, website=trap)
    assert answer.status_code == 200
    assert "Check your mailbox" in answer.text and "ticket" not in answer.text
    # the built-in form on this site has the same trap
    form = site_client.get(FORM_PATH).text
    assert re.search(r'name="website" type="text" value="" tabindex="-1" autocomplete="off"',
                     form)
    built_in = site_client.post(FORM_PATH, headers=ON_THIS_SITE, data={
        "csrf": csrf_of(form), "email": NEW, "lang": "en", "consent": "yes", "website": trap})
    assert built_in.status_code == 200 and "Check your mailbox" in built_in.text
    assert nothing_kept(site_project)


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://www.mirageproject.eu.evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "http://www.mirageproject.eu", "Sec-Fetch-Site": "cross-site"},  # not https
    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    {"Referer": "https://evil.example/page", "Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "cross-site"},
])
def test_a_site_that_is_not_allowed_is_refused(site_project: Path, site_client: TestClient,
                                               headers: dict[str, str],
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mirage_mailer.web.subscribe"):
        answer = snippet_post(site_client, headers=headers)
    assert answer.status_code == 403
    assert "The form was sent from another site" in answer.text
    assert nothing_kept(site_project)
    # the operator learns which site was refused, and why (no personal data in the line)
    named = headers.get("Origin", headers.get("Referer", "null"))
    warned = [r.getMessage() for r in caplog.records]
    if named == "null":  # the browser named no site
        assert warned == []
    else:
        assert warned == [f"sign-up form posted from {named.removesuffix('/page')} refused: "
                          "that site is not in web.allowed_origins"]


def test_without_an_origin_header_the_referer_names_the_site(
        site_project: Path, site_client: TestClient) -> None:
    page = snippet_post(site_client, headers={"Referer": f"{SITE}/newsletter/"})
    assert page.status_code == 200 and "One more step" in page.text


def test_a_site_removed_from_the_config_can_no_longer_finish(
        site_project: Path, clock: Clock) -> None:
    with client_for(site_project) as client:
        page = snippet_post(client).text
    edit(site_project / "mirage.yaml", f"    - {SITE}\n", "    - https://other.example\n")
    with client_for(site_project) as client:
        answer = press(client, page)
    assert answer.status_code == 403
    assert nothing_kept(site_project)


def test_an_altered_or_foreign_ticket_is_refused(site_project: Path, site_client: TestClient,
                                                 clock: Clock) -> None:
    page = snippet_post(site_client).text
    clock.now += 5
    ticket = ticket_of(page)
    body, _, mac = ticket.partition(".")
    csrf = csrf_of(page)
    forged = SignUpTickets(b"not the key" * 4, clock=clock).issue(
        Ticket("subscribers", "victim@example.org", None, "en", SITE, None))
    for value in (f"{body}x.{mac}", f"{body}.{mac[:-2]}", "", "é.é", forged):
        answer = site_client.post(FINISH_PATH, data={"csrf": csrf, "ticket": value},
                                  headers=ON_THIS_SITE)
        assert answer.status_code == 400, value
    # a ticket for one list is not one for another
    settings = settings_of(site_project)
    tickets = SignUpTickets(load_secret(settings.state_dir, settings.tracking.secret_env),
                            clock=clock)
    assert tickets.read(ticket, "another")[0] is Verdict.INVALID
    assert tickets.read(ticket, "subscribers")[0] is Verdict.OK
    # the button's post is this site's own: another site cannot post it
    cross = site_client.post(FINISH_PATH, data={"csrf": csrf, "ticket": ticket},
                             headers=FROM_SITE)
    assert cross.status_code == 403
    assert nothing_kept(site_project)


def test_a_page_left_open_too_long_expires(site_project: Path, site_client: TestClient,
                                           clock: Clock) -> None:
    page = snippet_post(site_client).text
    clock.now += 3601
    answer = press(site_client, page)
    assert answer.status_code == 400 and "This page has expired" in answer.text
    assert back_links(answer.text) == [f"{SITE}/"]
    assert nothing_kept(site_project)


def test_a_form_with_problems_is_finished_on_this_site(site_project: Path,
                                                       site_client: TestClient) -> None:
    answer = snippet_post(site_client, consent="", return_url=f"{SITE}/news/")
    assert answer.status_code == 400
    assert "Tick the box" in answer.text and NEW in answer.text
    assert 'name="return_url" value="https://www.mirageproject.eu/news/"' in answer.text
    retry = site_client.post(FORM_PATH, headers=ON_THIS_SITE, data={
        "csrf": csrf_of(answer.text), "email": NEW, "lang": "fr", "consent": "yes",
        "return_url": f"{SITE}/news/"})
    assert retry.status_code == 200 and "Check your mailbox" in retry.text
    assert back_links(retry.text) == [f"{SITE}/news/"]
    assert [row["source"] for row in rows(site_project)] == ["web"]


HOSTILE_RETURNS = [
    "https://evil.example/",
    "//evil.example/",
    "https://www.mirageproject.eu.evil.example/",
    "https://www.mirageproject.eu@evil.example/",
    "https://evil.example\\@www.mirageproject.eu/",
    "https://evil.example#@www.mirageproject.eu/",
    "http://www.mirageproject.eu/",  # another origin: not https
    "https://www.mirageproject.eu:8443/",
    "javascript:alert(document.domain)//https://www.mirageproject.eu/",
    "javascript://www.mirageproject.eu/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "https:evil.example",
    "https:/evil.example",
    "/\\evil.example",
    " https://evil.example/",
    "https://www.mirageproject.eu/\r\nLocation: https://evil.example/",
    "https://www.mirageproject.eu/\" onmouseover=\"alert(1)",
    "https://www.mirageproject.eu/" + "a" * 3000,
    "https://www.mirageproject.eu./",
    "https://www.mirаgeproject.eu/",  # Cyrillic а: another host
]


@pytest.mark.parametrize("hostile", HOSTILE_RETURNS)
def test_the_way_back_is_never_an_open_redirect(site_project: Path, site_client: TestClient,
                                                clock: Clock, hostile: str) -> None:
    assert safe_return_url(hostile, frozenset({SITE})) is None
    page = snippet_post(site_client, return_url=hostile)
    assert back_links(page.text) == [f"{SITE}/"]  # the site's home page instead
    clock.now += 5
    done = press(site_client, page.text)
    assert back_links(done.text) == [f"{SITE}/"]
    trapped = snippet_post(site_client, website="x", return_url=hostile)
    assert back_links(trapped.text) == [f"{SITE}/"]
    # the built-in form's return_url may only name an allowed site; otherwise no link at all
    shown = site_client.get(FORM_PATH, params={"return_url": hostile}).text
    assert 'name="return_url"' not in shown
    for text in (page.text, done.text, trapped.text, shown):
        assert "evil.example" not in text and "javascript:" not in text


def test_a_page_of_the_allowed_site_is_a_way_back(site_client: TestClient) -> None:
    for url in (f"{SITE}/", f"{SITE}/news/?x=1&y=2", "HTTPS://WWW.MIRAGEPROJECT.EU/a",
                f"{SITE}:443/b"):
        assert safe_return_url(url, frozenset({SITE})) is not None
    shown = site_client.get(FORM_PATH, params={"return_url": f"{SITE}/news/?x=1&y=2"}).text
    assert 'name="return_url" value="https://www.mirageproject.eu/news/?x=1&amp;y=2"' in shown


def test_the_confirmation_goes_through_the_configured_transport(site_project: Path,
                                                                clock: Clock) -> None:
    """The one outbound path: the SMTP relay of mirage.yaml, as for the built-in form."""
    with SmtpSink().running_in_thread() as sink:
        use_relay(site_project, sink.url, paced=True)
        with client_for(site_project) as client:
            settings = settings_of(site_project)
            key = load_secret(settings.state_dir, settings.tracking.secret_env)
            client.app.state.ctx = dataclasses.replace(  # type: ignore[attr-defined]
                client.app.state.ctx, tickets=SignUpTickets(key, clock=clock))
            page = snippet_post(client).text
            clock.now += 3
            assert press(client, page).status_code == 200
        assert sink.recipients() == [NEW]
        assert b"/confirm/" in sink.received[0].data
    assert outbox(site_project) == []


def test_sign_up_can_be_switched_off(web_project: Path) -> None:
    edit(web_project / "mirage.yaml", "  privacy_url: https://www.mirageproject.eu/privacy\n",
         "  signup: false\n")
    with client_for(web_project) as client:
        for answer in (client.get(FORM_PATH), snippet_post(client, headers=ON_THIS_SITE),
                       client.post(FINISH_PATH, data={}, headers=ON_THIS_SITE)):
            assert answer.status_code == 404
            assert "Sign-up is not open on this site" in answer.text
    assert nothing_kept(web_project)
