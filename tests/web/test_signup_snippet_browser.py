"""The pasted sign-up form in a real browser: headless Chromium on a page of "the project's
site" (a second HTTP server on another 127.0.0.1 port, serving the output of
`mirage-mailer signup-snippet`), posting to `mirage-mailer serve` running for real.

From the allowed site: one button on the mailer's page, pressed too soon (nothing sent), then at
a person's pace; the confirmation arrives in the test SMTP server, and the thank-you page leads
back to the site's page; axe-core finds no serious or critical violation on any of these pages.
From a site that is not allowed: refused, nothing kept or sent.
Screenshots are kept in test-artifacts/.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from web_support import free_port, serving

from browser import ARTIFACTS, BLOCKING, axe_lines, axe_violations, browser
from helpers import RunCli, edit, use_relay
from mirage_mailer.store import Store
from mirage_mailer.web.signup_ticket import MIN_SECONDS
from support.smtp_sink import SmtpSink

LIST = "subscribers"
READER = "ana.website@example.org"
STRANGER = "someone.else@example.org"
WAIT_S = 20.0
PAGE_TIMEOUT_MS = 15_000
CONSENT_START = "I agree that the MIraGE project sends me its newsletter"
COMMENTED = "  # allowed_origins:\n  #   - https://www.mirageproject.eu\n"
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>MIraGE: newsletter</title></head>
<body><main><h1>Our newsletter</h1>
{snippet}
</main></body></html>
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_site(folder: Path) -> Iterator[str]:
    """A plain HTTP server for ``folder`` on 127.0.0.1 (a free port), in a thread."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Sites:
    mailer: str  # `mirage-mailer serve`
    allowed: str  # the project's site, in web.allowed_origins
    other: str  # a site that is not
    root: Path
    sink: SmtpSink

    def rows(self, address: str) -> list[dict[str, object]]:
        with Store(self.root / ".mirage" / "tracking.sqlite") as store:
            return list(store.export(address)["subscriptions"])


@pytest.fixture
def sites(project: Path, run_cli: RunCli, tmp_path: Path) -> Iterator[Sites]:
    allowed_dir, other_dir = tmp_path / "site", tmp_path / "elsewhere"
    allowed_dir.mkdir()
    other_dir.mkdir()
    port = free_port()
    config = project / "mirage.yaml"
    with SmtpSink().running_in_thread() as sink, static_site(allowed_dir) as allowed, \
            static_site(other_dir) as other:
        edit(config, "  # base_url: https://news.mirageproject.eu",
             f"  base_url: http://127.0.0.1:{port}")
        edit(config, COMMENTED, f"  allowed_origins:\n    - {allowed}\n")
        use_relay(project, sink.url, paced=True)
        made = run_cli("signup-snippet", LIST, "--return-url", f"{allowed}/news.html")
        assert made.code == 0, made.err
        for folder in (allowed_dir, other_dir):  # the same form pasted on both sites
            (folder / "news.html").write_text(PAGE.format(snippet=made.out), encoding="utf-8")
        with serving(project, port=port, wait=WAIT_S) as mailer:
            yield Sites(mailer, allowed, other, project, sink)


@pytest.fixture
def chromium() -> Iterator[Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    with browser() as launched:
        yield launched


def new_page(chromium: Any) -> Any:
    page = chromium.new_page(viewport={"width": 800, "height": 900})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return page


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"snippet-{name}.png"), full_page=True)


def assert_accessible(page: Any, where: str) -> None:
    """axe-core (WCAG 2.1 A/AA): no serious or critical violation on the page as it is now."""
    blocking = [v for v in axe_violations(page) if v["impact"] in BLOCKING]
    assert not blocking, "\n".join(axe_lines(blocking, where))


def fill_and_send(page: Any, address: str) -> Any:
    """What a visitor does on the project's page; the response of the navigation."""
    page.get_by_label("E-mail address").fill(address)
    page.get_by_label("Name").fill("Ana Website")
    page.get_by_label(CONSENT_START).check()
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Subscribe").click()
    return navigation.value


def wait_for_mail(sink: SmtpSink, count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while len(sink.received) < count:
        assert time.monotonic() < deadline, "no confirmation message arrived"
        time.sleep(0.1)


def test_the_form_on_the_projects_site_signs_up_through_serve(sites: Sites,
                                                              chromium: Any) -> None:
    page = new_page(chromium)
    response = page.goto(f"{sites.allowed}/news.html")
    assert response is not None and response.status == 200
    # The trap field is neither seen nor reached with Tab; the privacy notice is linked.
    trap = page.locator('input[name="website"]')
    box = trap.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 0
    page.get_by_label("E-mail address").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "name"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "consent"
    assert page.get_by_role("link", name="privacy notice").get_attribute("href") \
        == "https://www.mirageproject.eu/privacy"
    assert_accessible(page, "the form on the project's page")
    shot(page, "site")

    answer = fill_and_send(page, READER)
    assert answer.status == 200
    assert page.url.startswith(f"{sites.mailer}/subscribe/{LIST}")
    assert page.get_by_role("heading", name="One more step").is_visible()
    assert READER in page.locator("main").inner_text()
    assert_accessible(page, "one more step")
    shot(page, "one-more-step")
    assert sites.rows(READER) == [] and sites.sink.received == []

    # Pressed at once, as a robot would: the page says so, and nothing is kept or sent.
    with page.expect_navigation():
        page.get_by_role("button", name="Send me the confirmation message").click()
    assert "pressed very quickly" in page.get_by_role("alert").inner_text()
    assert_accessible(page, "one more step, pressed too soon")
    time.sleep(0.5)
    assert sites.rows(READER) == [] and sites.sink.received == []

    # A person reads the page (the new page's own clock counts), then presses.
    time.sleep(MIN_SECONDS + 0.3)
    with page.expect_navigation():
        page.get_by_role("button", name="Send me the confirmation message").click()
    assert page.get_by_role("heading", name="Check your mailbox").is_visible(), \
        page.locator("main").inner_text()
    back = page.get_by_role("link", name="Back to 127.0.0.1")
    assert back.get_attribute("href") == f"{sites.allowed}/news.html"
    assert_accessible(page, "check your mailbox")
    shot(page, "sent")

    wait_for_mail(sites.sink, 1)
    time.sleep(0.3)  # one message, not several
    assert [m.recipients for m in sites.sink.received] == [(READER,)]
    assert b"/confirm/" in sites.sink.received[0].data
    [row] = sites.rows(READER)
    assert row["status"] == "pending" and row["name"] == "Ana Website"
    assert row["source"] == f"form on {sites.allowed}"
    assert str(row["consent_text"]).startswith(CONSENT_START)

    with page.expect_navigation():
        back.click()
    assert page.url == f"{sites.allowed}/news.html"
    page.close()


def test_the_same_form_on_another_site_is_refused(sites: Sites, chromium: Any) -> None:
    page = new_page(chromium)
    response = page.goto(f"{sites.other}/news.html")
    assert response is not None and response.status == 200
    answer = fill_and_send(page, STRANGER)
    assert answer.status == 403
    assert page.get_by_role("heading", name="This form cannot be accepted").is_visible()
    assert "sent from another site" in page.locator("main").inner_text()
    shot(page, "refused")
    page.close()
    time.sleep(0.5)
    assert sites.rows(STRANGER) == [] and sites.sink.received == []
