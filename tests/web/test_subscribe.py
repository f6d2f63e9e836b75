"""Double opt-in: the form, validation, CSRF, the confirmation message through the configured
transport (Maildir and SMTP), the confirmation link, proof of consent, and the next send."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from web_support import (
    BASE,
    TestClient,
    client_for,
    csrf_of,
    main_of,
    outbox,
    part,
    path_of,
    settings_of,
    signer_of,
    store_of,
)

from helpers import SAMPLE_ISSUE, RunCli, use_relay
from mirage_mailer.util.tokens import load_secret
from mirage_mailer.web.csrf import CsrfTokens
from support.smtp_sink import SmtpSink

FORM_PATH = "/subscribe/subscribers"
NEW = "new.reader@example.org"


def sign_up(client: TestClient, *, email: str = NEW, name: str = "Nóva Reader",
            lang: str = "fr", consent: str | None = "yes", **extra: str) -> httpx.Response:
    token = csrf_of(client.get(FORM_PATH).text)
    data = {"csrf": token, "email": email, "name": name, "lang": lang, **extra}
    if consent is not None:
        data["consent"] = consent
    return client.post(FORM_PATH, data=data, headers={"Origin": BASE})


def subscriptions(project: Path, address: str = NEW) -> list[dict[str, object]]:
    with store_of(project) as store:
        return list(store.export(address)["subscriptions"])


def confirm_link(message_text: str) -> str:
    links = re.findall(rf"{re.escape(BASE)}/confirm/\S+", message_text)
    assert len(links) == 1, message_text
    return links[0]


def press_confirm(client: TestClient, link: str) -> httpx.Response:
    """What a person does: open the link, press the page's one button."""
    page = client.get(path_of(link))
    assert page.status_code == 200, page.text
    return client.post(path_of(link), data={"csrf": csrf_of(page.text)},
                       headers={"Origin": BASE})


def test_the_form_has_every_field(web_project: Path, fresh_client: TestClient) -> None:
    page = fresh_client.get(FORM_PATH)
    assert page.status_code == 200
    html = page.text
    for field in ('name="email" type="email"', 'name="name"', '<select id="lang" name="lang">',
                  'name="consent" type="checkbox"', 'type="hidden" name="csrf"'):
        assert field in html
    assert settings_of(web_project).web.consent_text in html
    assert '<label for="consent">' in html and '<label for="email">' in html
    assert '<option value="en" lang="en" selected>English</option>' in html
    assert "checked" not in html  # consent is never pre-ticked


@pytest.mark.parametrize("name", ["nope", "subscribers.csv", ".subscribers", "mirage"])
def test_an_unknown_list_is_a_404_page(fresh_client: TestClient, name: str) -> None:
    for response in (fresh_client.get(f"/subscribe/{name}"),
                     fresh_client.post(f"/subscribe/{name}", data={"email": NEW})):
        assert response.status_code == 404
        assert "There is no newsletter list of that name" in response.text


def test_subscribe_confirm_and_receive_the_next_send(web_project: Path,
                                                     fresh_client: TestClient,
                                                     run_cli: RunCli) -> None:
    response = sign_up(fresh_client)
    assert response.status_code == 200
    assert "Check your mailbox" in response.text
    assert subscriptions(web_project)[0]["status"] == "pending"

    [message] = outbox(web_project)
    settings = settings_of(web_project)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in message.iter_parts())
    assert message["To"] == NEW  # the name typed is never mailed before confirmation
    assert settings.sender.from_email in message["From"]
    assert message["Message-ID"] and message["Date"]
    link = confirm_link(part(message, "plain"))
    assert link in part(message, "html") and NEW not in link

    confirmed = press_confirm(fresh_client, link)
    assert confirmed.status_code == 200
    assert "Abonnement confirmé" in confirmed.text  # in the language chosen on the form (fr)
    assert press_confirm(fresh_client, link).status_code == 200  # idempotent
    [row] = subscriptions(web_project)
    assert row["status"] == "confirmed" and row["list"] == "subscribers"
    assert row["consent_text"] == settings.web.consent_text
    assert row["consent_version"] == settings.web.consent_version == "2026-11"
    assert row["source"] == "web" and row["lang"] == "fr"
    assert row["requested_at"] and row["confirmed_at"]

    result = run_cli("send", SAMPLE_ISSUE, "--yes", cwd=web_project)
    assert result.code == 0, result.err
    assert "sent 6" in result.out
    report = json.loads(run_cli("report", SAMPLE_ISSUE, "--format", "json",
                                cwd=web_project).out)
    assert {r["email"]: r["status"] for r in report["recipients"]}[NEW] == "sent"
    newsletter = [m for m in outbox(web_project) if NEW in str(m["To"]) and "List-Id" in m]
    assert len(newsletter) == 1
    assert newsletter[0]["Subject"].startswith("Nouvelles de MIraGE")  # the language chosen


def test_the_confirmation_goes_through_smtp_too(web_project: Path) -> None:
    with SmtpSink().running_in_thread() as sink:
        use_relay(web_project, sink.url, paced=True)
        with client_for(web_project) as client:
            assert sign_up(client).status_code == 200
        assert sink.recipients() == [NEW]
        assert b"/confirm/" in sink.received[0].data
    assert outbox(web_project) == []


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"consent": None}, "consent", "Tick the box"),
    ({"consent": "no"}, "consent", "Tick the box"),
    ({"email": ""}, "email", "Enter your e-mail address"),
    ({"email": "not-an-address"}, "email", "not a valid e-mail address"),
    ({"email": "a@b@example.org"}, "email", "not a valid e-mail address"),
    ({"lang": "klingon"}, "lang", "Choose a language"),
    ({"name": "x" * 201}, "name", "under 200 characters"),
    ({"name": "Eve\x07"}, "name", "cannot be used"),
])
def test_a_bad_form_is_shown_again_with_the_problem(web_project: Path,
                                                    fresh_client: TestClient,
                                                    change: dict[str, str | None], field: str,
                                                    message: str) -> None:
    response = sign_up(fresh_client, **change)
    assert response.status_code == 400
    html = response.text
    assert message in html
    assert f'aria-describedby="{field}-error"' in html
    assert "checked" not in html
    assert subscriptions(web_project) == [] and outbox(web_project) == []


def test_the_form_needs_its_csrf_field(web_project: Path, fresh_client: TestClient) -> None:
    data = {"email": NEW, "lang": "en", "consent": "yes"}
    assert fresh_client.post(FORM_PATH, data=data).status_code == 403
    settings = settings_of(web_project)
    secret = load_secret(settings.state_dir, settings.tracking.secret_env)
    stale = CsrfTokens(secret, clock=lambda: 1_000_000.0).issue(FORM_PATH)
    expired = fresh_client.post(FORM_PATH, data={**data, "csrf": stale})
    assert expired.status_code == 403 and "expired" in expired.text
    foreign = CsrfTokens(b"another key").issue(FORM_PATH)
    assert fresh_client.post(FORM_PATH, data={**data, "csrf": foreign}).status_code == 403
    other_form = CsrfTokens(secret).issue("/subscribe/another")
    assert fresh_client.post(FORM_PATH, data={**data, "csrf": other_form}).status_code == 403
    token = csrf_of(fresh_client.get(FORM_PATH).text)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}):
        response = fresh_client.post(FORM_PATH, data={**data, "csrf": token}, headers=headers)
        assert response.status_code == 403
    assert subscriptions(web_project) == [] and outbox(web_project) == []


def test_pages_do_not_reveal_who_is_subscribed(web_project: Path,
                                              fresh_client: TestClient) -> None:
    sign_up(fresh_client)
    [message] = outbox(web_project)
    press_confirm(fresh_client, confirm_link(part(message, "plain")))
    again = sign_up(fresh_client)
    stranger = sign_up(fresh_client, email="stranger@example.org")
    assert again.status_code == stranger.status_code == 200
    assert (main_of(again.text).replace(NEW, "X")
            == main_of(stranger.text).replace("stranger@example.org", "X"))
    # the confirmed reader gets no second message; the new one gets theirs
    assert [str(m["To"]) for m in outbox(web_project)][1:] == ["stranger@example.org"]
    assert subscriptions(web_project)[0]["status"] == "confirmed"


def test_a_pending_sign_up_cannot_flood_the_mailbox(web_project: Path,
                                                    fresh_client: TestClient) -> None:
    sign_up(fresh_client)
    again = sign_up(fresh_client, name="Nova R.")
    assert "Check your mailbox" in again.text  # the page never tells what happened
    assert len(outbox(web_project)) == 1  # asked again within 10 minutes: no second mail
    assert subscriptions(web_project)[0]["name"] != "Nova R."


def test_bad_confirmation_links_get_400(web_project: Path, fresh_client: TestClient) -> None:
    signer = signer_of(web_project)
    csrf = CsrfTokens(load_secret(settings_of(web_project).state_dir, None))
    genuine_but_unknown = signer.make("confirm", "subscribers", "nobody@example.org")
    wrong_purpose = signer.make("unsubscribe", "subscribers", NEW)
    other_list = signer.make("confirm", "other-list", NEW)
    sign_up(fresh_client)
    real = path_of(confirm_link(part(outbox(web_project)[0], "plain"))).rsplit("/", 1)[1]
    for token in (genuine_but_unknown, wrong_purpose, real[:-1] + ("A" if real[-1] != "A" else "B"),
                  "x", other_list):
        path = f"/confirm/{token}"
        response = fresh_client.post(path, data={"csrf": csrf.issue(path)},
                                     headers={"Origin": BASE})
        assert response.status_code == 400, token
        assert "confirmation link" in response.text
        if token != other_list:  # a known address: its page shows the button, the POST refuses
            response = fresh_client.get(path)
            assert response.status_code == 400, token
            assert "confirmation link" in response.text
    assert subscriptions(web_project)[0]["status"] == "pending"


def test_confirmed_sign_up_ends_an_earlier_unsubscription(web_project: Path,
                                                          fresh_client: TestClient) -> None:
    with store_of(web_project) as store:
        store.suppress(NEW, source="cli")
    sign_up(fresh_client)
    with store_of(web_project) as store:
        assert store.is_suppressed(NEW)  # a form alone is not consent
    page = press_confirm(fresh_client, confirm_link(part(outbox(web_project)[0], "plain")))
    assert page.status_code == 200
    assert "Votre confirmation y met fin" in page.text  # the sign-up chose French
    with store_of(web_project) as store:
        assert not store.is_suppressed(NEW)
        kinds = [e["kind"] for e in store.export(NEW)["events"]]
    assert kinds[-2:] == ["subscribed", "resubscribed"]


def test_a_browsers_null_origin_on_a_same_origin_post_is_accepted(
        web_project: Path, fresh_client: TestClient) -> None:
    """What Chromium sends for our own forms under Referrer-Policy: no-referrer."""
    token = csrf_of(fresh_client.get(FORM_PATH).text)
    response = fresh_client.post(
        FORM_PATH, data={"csrf": token, "email": NEW, "name": "N", "lang": "en",
                         "consent": "yes"},
        headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200, response.text
    assert len(outbox(web_project)) == 1
    forged = fresh_client.post(
        FORM_PATH, data={"csrf": token, "email": NEW, "consent": "yes"},
        headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 403


HALF_SET = ("mirage.yaml:20: MIRAGE_SMTP_USER is set but MIRAGE_SMTP_PASSWORD is not "
            "(export MIRAGE_SMTP_PASSWORD=... (or unset MIRAGE_SMTP_USER))")


def test_the_confirmation_is_not_sent_without_auth_when_the_password_is_missing(
        web_project: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A configured user with no password is refused as ``send`` refuses it (the same words),
    never quietly tried without AUTH (the web side used to do that)."""
    monkeypatch.setenv("MIRAGE_SMTP_USER", "officer")
    monkeypatch.delenv("MIRAGE_SMTP_PASSWORD", raising=False)
    with SmtpSink().running_in_thread() as sink:
        use_relay(web_project, sink.url, paced=True)
        with caplog.at_level("WARNING", logger="mirage_mailer.web.confirmation"), \
                client_for(web_project) as client:
            assert sign_up(client).status_code == 200  # the page is the same for the visitor
        assert sink.received == []
    assert any(HALF_SET in record.getMessage() for record in caplog.records), caplog.text
    assert outbox(web_project) == []
