"""A page in French leads to the sign-up form in French, whatever the browser's language: the
link carries the page's language (?lang=fr) and the form honours it, both for its own words
and for the newsletter language it proposes."""

from __future__ import annotations

import re
from pathlib import Path

from web_support import TestClient, csrf_of, settings_of

from mirage_mailer.web.static_site import write_archive

ENGLISH = {"Accept-Language": "en"}


def _signup_links(page: str) -> list[str]:
    return [link.replace("&amp;", "&") for link in re.findall(r'href="([^"]*/subscribe/[^"]*)"',
                                                              page)]


def _preselected(page: str) -> list[str]:
    return re.findall(r'<option value="([\w-]+)"[^>]*selected', page)


def test_the_french_subscription_page_links_to_the_french_form(client: TestClient) -> None:
    page = client.get("/subscription/fr/", headers=ENGLISH)
    assert page.headers["content-language"] == "fr"
    assert _signup_links(page.text) == ["/subscribe/subscribers?lang=fr"]
    english = client.get("/subscription/en/", headers={"Accept-Language": "fr"})
    assert _signup_links(english.text) == ["/subscribe/subscribers?lang=en"]


def test_the_form_follows_lang_over_the_browser(client: TestClient) -> None:
    form = client.get("/subscribe/subscribers?lang=fr", headers=ENGLISH)
    assert form.status_code == 200
    assert form.headers["content-language"] == "fr"
    assert re.search(r'<html lang="fr"[ >]', form.text)
    assert "S'abonner" in form.text and "Subscribe to the" not in form.text
    assert _preselected(form.text) == ["fr"]
    assert 'action="/subscribe/subscribers?lang=fr"' in form.text
    plain = client.get("/subscribe/subscribers", headers=ENGLISH)  # no ?lang: the browser's
    assert plain.headers["content-language"] == "en" and _preselected(plain.text) == ["en"]


def test_a_form_with_mistakes_comes_back_in_the_same_language(client: TestClient) -> None:
    form = client.get("/subscribe/subscribers?lang=fr", headers=ENGLISH)
    again = client.post("/subscribe/subscribers?lang=fr", headers=ENGLISH,
                        data={"csrf": csrf_of(form.text), "email": "not an address",
                              "name": "", "lang": "fr", "website": ""})
    assert again.status_code == 400  # the CSRF field was accepted: only the fields are wrong
    assert again.headers["content-language"] == "fr"
    assert 'action="/subscribe/subscribers?lang=fr"' in again.text


def test_an_unknown_lang_is_ignored(client: TestClient) -> None:
    form = client.get("/subscribe/subscribers?lang=%3Cx%3E", headers=ENGLISH)
    assert form.status_code == 200 and form.headers["content-language"] == "en"
    assert 'action="/subscribe/subscribers"' in form.text and _preselected(form.text) == ["en"]


def test_the_static_archive_links_to_the_form_in_each_page_language(sent_project: Path,
                                                                    tmp_path: Path) -> None:
    write_archive(settings_of(sent_project), tmp_path / "site", site_url="https://x.example")
    french = (tmp_path / "site" / "subscription" / "fr" / "index.html").read_text("utf-8")
    assert _signup_links(french) == ["http://127.0.0.1:8025/subscribe/subscribers?lang=fr"]
