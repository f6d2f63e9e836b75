"""Issue 8, the public side: encoded-word header injection through the real server, links that
scanners open (GET, HEAD) changing nothing, a person's own confirmation lifting their earlier
unsubscription, sign-up rate limits, and non-ASCII tokens or CSRF fields answered with 400."""

from __future__ import annotations

import email
import re
import sqlite3
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from web_support import (
    BASE,
    ISSUE_ID,
    MARIA,
    TestClient,
    client_for,
    csrf_of,
    https_unsubscribe,
    message_to,
    outbox,
    part,
    path_of,
    serving,
    settings_of,
    signer_of,
    store_of,
)

from helpers import SAMPLE_ISSUE, edit

FORM_PATH = "/subscribe/subscribers"
INJECTION = "=?utf-8?q?X=0D=0ASubject:_PWNED=0D=0A=0D=0A<h1>PHISH</h1>?="
VICTIM = "victim@example.org"


def _post_sign_up(http: httpx.Client | TestClient, *, email_address: str, name: str = "",
                  headers: dict[str, str] | None = None) -> httpx.Response:
    token = csrf_of(http.get(FORM_PATH).text)
    return http.post(FORM_PATH, data={"csrf": token, "email": email_address, "name": name,
                                      "lang": "en", "consent": "yes"}, headers=headers or {})


def _raw_messages(project: Path) -> list[bytes]:
    folder = project / "outbox" / "new"
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []


def _header_lines(raw: bytes, name: bytes) -> list[bytes]:
    head = raw.split(b"\n\n", 1)[0]
    return [line for line in head.split(b"\n") if line.lower().startswith(name.lower() + b":")]


def _assert_not_injected(raw: bytes, to: str) -> EmailMessage:
    """Exactly one Subject, one To (one folded line, the form's address), nothing injected."""
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert len(message.get_all("Subject") or []) == 1
    assert len(_header_lines(raw, b"Subject")) == 1 and len(_header_lines(raw, b"To")) == 1
    assert "PWNED" not in str(message["Subject"])
    addresses = message["To"].addresses
    assert [a.addr_spec for a in addresses] == [to]
    assert "\r" not in str(message["To"]) and "\n" not in str(message["To"])
    assert b"\r" not in raw
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",))
    assert html is not None and "<h1>PHISH</h1>" not in html.get_content()
    return message


# -- 1: header injection through the real `serve` ------------------------------------------


def _wait_for_mail(project: Path, count: int, timeout: float = 15.0) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while len(_raw_messages(project)) < count:
        assert time.monotonic() < deadline, f"{len(_raw_messages(project))} of {count} mails"
        time.sleep(0.1)
    return _raw_messages(project)


def test_an_encoded_word_name_cannot_inject_headers_through_serve(web_project: Path) -> None:
    with serving(web_project) as url, \
            httpx.Client(base_url=url, timeout=10, follow_redirects=False) as http:
        attack = _post_sign_up(http, email_address=VICTIM, name=INJECTION)
        assert attack.status_code == 400
        assert "encoded word" in attack.text and 'aria-describedby="name-error"' in attack.text
        hidden_in_address = _post_sign_up(
            http, email_address="=?utf-8?q?a=0D=0ABcc:_x@evil.example?=@example.org")
        assert hidden_in_address.status_code == 400
        # An encoded word that hides nothing is a name like any other: sent as literal text.
        literal = "=?utf-8?q?Ren=C3=A9?="
        fine = _post_sign_up(http, email_address="rene@example.org", name=literal)
        assert fine.status_code == 200, fine.text
        [raw] = _wait_for_mail(web_project, 1)
    time.sleep(0.2)
    assert len(_raw_messages(web_project)) == 1  # nothing went to the victim
    message = _assert_not_injected(raw, "rene@example.org")
    assert message["To"].addresses[0].display_name == ""  # the name is never mailed here
    assert "Please confirm your subscription" in str(message["Subject"])
    with store_of(web_project) as store:
        assert store.export(VICTIM)["subscriptions"] == []
        [row] = store.export("rene@example.org")["subscriptions"]
    assert row["name"] == literal  # kept as typed, not decoded into "René"


def _name_error(page: str) -> str:
    found = re.search(r'<p class="error" id="name-error">(.*?)</p>', page)
    assert found is not None, page
    return found[1]


def test_a_raw_line_break_is_refused_as_an_encoded_one_is(web_project: Path) -> None:
    """A browser's text field cannot send CR or LF (HTML strips them), so a raw line break in
    the name or around the address is a script's or an attack's: refused with the same 400
    page as the encoded-word case, where it was folded into a space and mailed. A tab, which
    a paste can bring, is still folded into a space."""
    with serving(web_project) as url, \
            httpx.Client(base_url=url, timeout=10, follow_redirects=False) as http:
        encoded = _post_sign_up(http, email_address=VICTIM, name=INJECTION)
        assert encoded.status_code == 400
        for name in ("Eve\r\nBcc: all@example.org", "Eve\nX", "Eve\rX", "Eve\x0bX",
                     "Eve\u2028X", "Eve\x85X"):
            raw = _post_sign_up(http, email_address=VICTIM, name=name)
            assert raw.status_code == 400, name
            assert 'aria-describedby="name-error"' in raw.text
            assert _name_error(raw.text) == _name_error(encoded.text)
        for address in (f"{VICTIM}\r\n", f"\n{VICTIM}"):
            raw = _post_sign_up(http, email_address=address, name="Eve")
            assert raw.status_code == 400, repr(address)
            assert 'aria-describedby="email-error"' in raw.text
        fine = _post_sign_up(http, email_address="ana@example.org", name=" Ana\tMaria ")
        assert fine.status_code == 200, fine.text
        [raw_mail] = _wait_for_mail(web_project, 1)
    time.sleep(0.2)
    assert len(_raw_messages(web_project)) == 1  # nothing went to the victim
    message = _assert_not_injected(raw_mail, "ana@example.org")
    assert message["To"].addresses[0].display_name == ""  # the name is never mailed here
    with store_of(web_project) as store:
        assert store.export(VICTIM)["subscriptions"] == []
        [row] = store.export("ana@example.org")["subscriptions"]
    assert row["name"] == "Ana Maria"


def test_an_address_with_an_unclosed_encoded_word_is_refused(web_project: Path) -> None:
    """``=`` and ``?`` are allowed in an address, and Python's email parser decodes
    ``=?utf-8?q?=0A...`` even without its closing ``?=``: such an address was taken and the
    confirmation's To header read, in a reader, as a line feed followed by a Bcc line."""
    with client_for(web_project) as http:
        refused = _post_sign_up(http, email_address="=?utf-8?q?=0ABcc=3A=20a=40e.x@example.org")
        assert refused.status_code == 400
        assert 'aria-describedby="email-error"' in refused.text
    assert _raw_messages(web_project) == []


def test_the_confirmation_mail_builder_takes_no_name(web_project: Path) -> None:
    """Defence in depth: the builder has no way to carry a name that skipped the form's check
    (audit 11d: nothing the visitor typed but the address reaches the mail)."""
    import inspect

    from mirage_mailer.web.confirmation import confirmation_message, send_confirmation

    for builder in (confirmation_message, send_confirmation):
        assert "name" not in inspect.signature(builder).parameters
    raw = confirmation_message(settings_of(web_project), list_name="subscribers",
                               email=VICTIM, link=f"{BASE}/confirm/x")
    message = _assert_not_injected(raw, VICTIM)
    assert message["To"].addresses[0].display_name == ""


# -- 3: GET and HEAD change nothing; only the person's POST confirms -----------------------


def _state(project: Path, *, engagement: bool = True) -> list[str]:
    """Every row of the store, as SQL (engagement events left out when asked)."""
    connection = sqlite3.connect(settings_of(project).tracking.database)
    try:
        lines = list(connection.iterdump())
    finally:
        connection.close()
    if not engagement:
        lines = [line for line in lines if "'opened'" not in line and "'clicked'" not in line]
    return lines


def _links_of(project: Path, message: EmailMessage) -> dict[str, str]:
    html = part(message, "html").replace("&amp;", "&")
    links = {"unsubscribe": path_of(https_unsubscribe(message))}
    view = re.search(rf"{re.escape(BASE)}(/v/[^\"\s]+)", html)
    pixel = re.search(rf"{re.escape(BASE)}(/o/[^\"\s]+)", html)
    click = re.search(rf"{re.escape(BASE)}(/c/[^\"\s]+)", html)
    assert view and pixel and click, "the issue must carry view, pixel and click links"
    links.update(view=view[1], pixel=pixel[1], click=click[1])
    return links


@pytest.fixture
def tracked_project(web_project: Path) -> Path:
    """The sample issue sent with opens and clicks on, and one pending web sign-up."""
    edit(web_project / "mirage.yaml", f"  base_url: {BASE}",
         f"  base_url: {BASE}\n  opens: true\n  clicks: true")
    proc = subprocess.run([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE, "--yes"],
                          cwd=web_project, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    with client_for(web_project) as client:
        assert _post_sign_up(client, email_address="new.reader@example.org").status_code == 200
    return web_project


def test_head_and_get_on_every_link_change_nothing(tracked_project: Path) -> None:
    links = _links_of(tracked_project, message_to(tracked_project, MARIA))
    confirmation = [m for m in outbox(tracked_project) if "new.reader@" in str(m["To"])]
    [link] = re.findall(rf"{re.escape(BASE)}(/confirm/\S+)", part(confirmation[0], "plain"))
    links["confirm"] = link
    with client_for(tracked_project) as client:
        for name, path in links.items():
            before = _state(tracked_project)
            head = client.head(path)
            assert head.status_code in (200, 302), (name, head.status_code)
            assert _state(tracked_project) == before, f"HEAD {name} changed the store"
            get = client.get(path)
            assert get.status_code in (200, 302), (name, get.status_code)
            # Opens and clicks are engagement events by design (README "Opens and clicks");
            # nothing else may change, and HEAD records not even those.
            assert _state(tracked_project, engagement=False) == [
                line for line in before if "'opened'" not in line and "'clicked'" not in line
            ], f"GET {name} changed the store"
    with store_of(tracked_project) as store:
        assert not store.is_suppressed(MARIA)
        [row] = store.export("new.reader@example.org")["subscriptions"]
    assert row["status"] == "pending"


def test_a_scanner_cannot_resubscribe_someone_but_the_person_can(web_project: Path) -> None:
    """Issue 8 #3: a third party posts the address of someone who unsubscribed; the mail
    scanner opens the link (HEAD, GET). Nothing changes until the person presses the button;
    then their fresh consent lifts the earlier unsubscription, with a dated event."""
    with store_of(web_project) as store:
        store.suppress(VICTIM, source="web", reason="link in issue 1")
    with client_for(web_project) as client:
        assert _post_sign_up(client, email_address=VICTIM).status_code == 200
        [message] = outbox(web_project)
        [link] = re.findall(rf"{re.escape(BASE)}(/confirm/\S+)", part(message, "plain"))
        before = _state(web_project)
        for _ in range(2):
            assert client.head(link).status_code == 200
            page = client.get(link)
            assert page.status_code == 200
            assert 'method="post"' in page.text and "Confirm my subscription" in page.text
        assert _state(web_project) == before
        with store_of(web_project) as store:
            assert store.is_suppressed(VICTIM)
        forged = client.post(link, data={})  # no CSRF field: not the page's button
        assert forged.status_code == 403
        assert _state(web_project) == before
        pressed = client.post(link, data={"csrf": csrf_of(page.text)}, headers={"Origin": BASE})
        assert pressed.status_code == 200
        assert "Your confirmation ends that" in pressed.text
    with store_of(web_project) as store:
        assert not store.is_suppressed(VICTIM)
        events = store.export(VICTIM)["events"]
    resubscribed = [e for e in events if e["kind"] == "resubscribed"]
    assert len(resubscribed) == 1 and resubscribed[0]["at"]


def _confirm_link(project: Path, address: str) -> str:
    mails = [m for m in outbox(project) if address in str(m["To"])]
    [link] = re.findall(rf"{re.escape(BASE)}(/confirm/\S+)", part(mails[-1], "plain"))
    return link


def _press(client: TestClient, link: str) -> httpx.Response:
    page = client.get(link)
    if page.status_code != 200:
        return page
    return client.post(link, data={"csrf": csrf_of(page.text)}, headers={"Origin": BASE})


def test_an_old_confirmation_link_cannot_undo_a_later_unsubscription(web_project: Path) -> None:
    """The confirmation link was the same for every sign-up of one address: whoever once saw
    it (a forwarded mail, a shared mailbox) could post the address of someone who had since
    unsubscribed, press the old link's button and lift the suppression. Only the link mailed
    for the sign-up that is waiting now confirms it; the person's own new link still does."""
    with client_for(web_project) as client:
        assert _post_sign_up(client, email_address=VICTIM).status_code == 200
        old = _confirm_link(web_project, VICTIM)
        assert _press(client, old).status_code == 200
        with store_of(web_project) as store:
            store.suppress(VICTIM, source="web", reason="link in issue 1")
        assert _press(client, old).status_code == 200  # still suppressed: nothing lifted
        with store_of(web_project) as store:
            assert store.is_suppressed(VICTIM)
        # a stranger posts her address (a new mail goes to her), then presses the old link
        assert _post_sign_up(client, email_address=VICTIM).status_code == 200
        new = _confirm_link(web_project, VICTIM)
        assert new != old
        before = _state(web_project)
        for refused in (client.get(old), _press(client, old)):
            assert refused.status_code == 400
            assert "does not match a sign-up" in refused.text
        assert _state(web_project) == before
        with store_of(web_project) as store:
            assert store.is_suppressed(VICTIM)
        # the person's own link of this sign-up: her consent, which lifts the suppression
        pressed = _press(client, new)
        assert pressed.status_code == 200 and "Your confirmation ends that" in pressed.text
    with store_of(web_project) as store:
        assert not store.is_suppressed(VICTIM)


def test_a_link_mailed_before_links_carried_the_sign_ups_time(web_project: Path) -> None:
    """Links already mailed (scope: the list alone) confirm as before, but for a pending
    sign-up of an address that unsubscribed: that one only the newest link confirms."""
    legacy = "/confirm/" + signer_of(web_project).make("confirm", "subscribers", VICTIM)
    with client_for(web_project) as client:
        assert _post_sign_up(client, email_address=VICTIM).status_code == 200
        assert _press(client, legacy).status_code == 200
        with store_of(web_project) as store:
            assert store.export(VICTIM)["subscriptions"][0]["status"] == "confirmed"
            store.suppress(VICTIM, source="web", reason="link in issue 1")
        assert _post_sign_up(client, email_address=VICTIM).status_code == 200
        assert _press(client, legacy).status_code == 400
        with store_of(web_project) as store:
            assert store.is_suppressed(VICTIM)


# -- 12: rate limits, and non-ASCII in tokens and CSRF fields -------------------------------


def test_one_mailbox_gets_at_most_three_confirmations_a_day(web_project: Path,
                                                            fresh_client: TestClient) -> None:
    variants = ["ann@example.org", "Ann+news@example.org", "ANN+x@Example.ORG",
                "ann+y@example.org", "aNN@EXAMPLE.org", "ann+z@example.org"]
    pages = [_post_sign_up(fresh_client, email_address=v) for v in variants]
    assert [p.status_code for p in pages] == [200] * len(variants)
    assert len(outbox(web_project)) == 3
    assert all("a message is on its way" in p.text for p in pages[:3])
    for page in pages[3:]:
        assert "already sent recently" in page.text
    assert "ben@example.org" in str(
        _post_sign_up(fresh_client, email_address="ben@example.org").text)
    assert len(outbox(web_project)) == 4  # another mailbox is not affected


def test_one_client_cannot_make_the_site_mail_two_hundred_strangers(
        web_project: Path, fresh_client: TestClient) -> None:
    token = csrf_of(fresh_client.get(FORM_PATH).text)
    statuses = []
    for n in range(200):
        response = fresh_client.post(FORM_PATH, data={
            "csrf": token, "email": f"stranger{n}@example.org", "lang": "en", "consent": "yes"})
        statuses.append(response.status_code)
    assert statuses[:10] == [200] * 10
    assert set(statuses[10:]) == {429}
    assert len(outbox(web_project)) == 10
    refused = fresh_client.post(FORM_PATH, data={
        "csrf": token, "email": "late@example.org", "lang": "en", "consent": "yes"})
    assert refused.status_code == 429
    assert "Too many sign-ups" in refused.text and int(refused.headers["Retry-After"]) > 0


NON_ASCII = ["é", "\u212a", "ſ", "\u00b2", "\U0001f600"]


@pytest.mark.parametrize("char", NON_ASCII)
def test_non_ascii_tokens_and_csrf_fields_are_a_400_never_a_500(sent_project: Path,
                                                                char: str) -> None:
    signer = signer_of(sent_project)
    subject = signer.subject_id(MARIA)
    good = {
        "u": signer.make_for_subject("unsubscribe", ISSUE_ID, subject),
        "v": signer.make_for_subject("view", ISSUE_ID, subject),
        "confirm": signer.make("confirm", "subscribers", MARIA),
    }
    with client_for(sent_project, raise_server_exceptions=False) as client:
        for prefix, token in good.items():
            for bad in (token[:-1] + char, token + char, char + token):
                response = client.get(f"/{prefix}/{bad}")
                assert response.status_code == 400, (prefix, bad, response.status_code)
        click = client.get(f"/c/{good['v'][:-1]}{char}", params={"u": "https://example.org"})
        assert click.status_code == 400
        pixel = client.get(f"/o/{good['v'][:-1]}{char}.gif")
        assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
        form_token = csrf_of(client.get(FORM_PATH).text)
        stamp, _, signature = form_token.partition(".")
        for csrf in (f"{stamp}.{signature[:-1]}{char}", f"{stamp}{char}.{signature}",
                     f"{char}.{signature}"):
            response = client.post(FORM_PATH, data={"csrf": csrf, "email": "x@example.org",
                                                    "lang": "en", "consent": "yes"})
            assert response.status_code == 400, (csrf, response.status_code)
        unsubscribe = path_of(https_unsubscribe(message_to(sent_project, MARIA)))
        response = client.post(unsubscribe, data={"csrf": f"{stamp}.{signature[:-1]}{char}"})
        assert response.status_code == 400
    with store_of(sent_project) as store:
        assert not store.is_suppressed(MARIA)
