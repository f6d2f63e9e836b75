"""axe-core's WCAG 2.1 A/AA rules in headless Chromium, plus reflow (no sideways scrolling,
which axe-core does not check): the newsletter of the sample project, every public page
`mirage-mailer serve` shows (and the static archive writes) and the sign-up confirmation
mail, in English and French (the newsletter also in every other language its interface
strings ship in: de, es, it, el), at 600 and 320 px. (The pages of a sign-up from the project's
own site are checked the same way in tests/web/test_signup_snippet_browser.py.)

A serious or critical violation fails the test; the others are printed (run with -s). One
browser and one served project for the whole module: each page is opened once per language
and checked at both widths. A control test proves the check fails where it must: a page with
an image without alt and low-contrast text.
"""

from __future__ import annotations

import email
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from browser import BLOCKING, axe_lines, axe_violations, browser
from helpers import SAMPLE_ISSUE, edit
from mirage_mailer.compose.accessibility import check_rendered
from mirage_mailer.project.scaffold import init_project
from web.web_support import free_port, serving  # tests/web/, a namespace package

ISSUE_ID = SAMPLE_ISSUE.rsplit("/", 1)[-1]
LIST = "subscribers"
WIDTHS = (600, 320)
LANGUAGES = ("en", "fr")  # every language with a catalog and a translation in the sample
# The newsletter's interface strings also ship in these: the sample issue gets a subject in
# each, so its articles and disclaimer (English) stand in a document of another language.
INTERFACE_ONLY = {"de": "MIraGE-Neuigkeiten", "es": "Noticias de MIraGE",
                  "it": "Notizie da MIraGE", "el": "Νέα του MIraGE"}
READER = {"en": "maria.georgiou@example.org", "fr": "jean.dupont@example.org"}
NEWCOMER = {"en": "ana.newcomer@example.org", "fr": "claire.nouvelle@example.org"}
WAIT_S = 20.0
PAGE_TIMEOUT_MS = 15_000


def cli(root: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "mirage_mailer", *args], cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@dataclass
class Audit:
    """Violations found so far: the blocking ones fail the test, the others are printed."""

    blocking: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    pages: int = 0

    def check(self, page: Any, name: str) -> None:
        """axe on the page as shown now, at each width (the same page, resized)."""
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            for violation in axe_violations(page):
                lines = axe_lines([violation], f"{name} at {width}px")
                (self.blocking if violation["impact"] in BLOCKING else self.others).extend(lines)
            overflow = page.evaluate("() => document.documentElement.scrollWidth"
                                     " - document.documentElement.clientWidth")
            if overflow > 0:  # WCAG 1.4.10 (reflow): no sideways scrolling at 320 px
                self.blocking.append(f"{name} at {width}px: {overflow}px of horizontal scroll")
        self.pages += 1

    def verdict(self) -> None:
        for line in self.others:
            print(line)
        assert not self.blocking, "\n".join(self.blocking)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as launched:
        yield launched


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The sample project, its issue sent to the Maildir outbox, then served for real."""
    root = tmp_path_factory.mktemp("a11y") / "proj"
    init_project(root)
    port = free_port()
    edit(root / "mirage.yaml", "  # base_url: https://news.mirageproject.eu",
         f"  base_url: http://127.0.0.1:{port}")
    subjects = "".join(f'\n  {code}: "{text}"' for code, text in INTERFACE_ONLY.items())
    edit(root / SAMPLE_ISSUE / "issue.yaml", "\ntitle:", f"{subjects}\ntitle:")
    assert "sent 5" in cli(root, "send", SAMPLE_ISSUE, "--yes")
    with serving(root, port=port, wait=WAIT_S) as url:
        yield root, url


def new_page(chromium: Any, lang: str) -> Any:
    """A tab whose browser asks for ``lang`` (Accept-Language), as a reader's would."""
    page = chromium.new_page(locale={"en": "en-GB", "fr": "fr-FR"}.get(lang, lang))
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return page


def goto(page: Any, url: str, status: int = 200) -> None:
    response = page.goto(url)
    assert response is not None and response.status == status, (url, page.content()[:500])


def mail_to(root: Path, address: str, *, wait: float = 0.0) -> str:
    """The raw text of the first message to ``address`` in the Maildir outbox."""
    deadline = time.monotonic() + wait
    while True:
        found = [p.read_text(encoding="utf-8", errors="replace")
                 for p in sorted((root / "outbox" / "new").iterdir(),
                                 key=lambda p: p.stat().st_mtime_ns)]
        found = [m for m in found if re.search(rf"^To:.*{re.escape(address)}", m, re.M | re.I)]
        if found or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    assert found, f"no message to {address}"
    return found[0]  # the first: later sign-ups of the same address may send no other


def html_part(message: str) -> str:
    """The HTML part of a message, decoded."""
    parsed = email.message_from_string(message, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(preferencelist=("html",))
    assert isinstance(body, EmailMessage)
    content = body.get_content()
    assert isinstance(content, str)
    return content


def link_in(message: str, path: str) -> str:
    """The first link to ``path`` (``/u/``, ``/confirm/``) in a message's headers or parts."""
    flat = re.sub(r"=\r?\n", "", message)  # undo quoted-printable soft breaks
    links = re.findall(rf"https?://[^\s<>\"]+{re.escape(path)}[A-Za-z0-9._~=-]+", flat)
    assert links, f"no {path} link in the message"
    return links[0]


@pytest.fixture(scope="module")
def previewed(site: tuple[Path, str]) -> Path:
    """The folder where `preview` wrote every language of the sample issue."""
    out = site[0] / "preview-a11y"
    cli(site[0], "preview", SAMPLE_ISSUE, "--out", str(out))
    return out


@pytest.mark.parametrize("lang", [*LANGUAGES, *INTERFACE_ONLY])
def test_the_newsletter_passes_axe(chromium: Any, previewed: Path, lang: str) -> None:
    page = new_page(chromium, lang)
    audit = Audit()
    page.goto((previewed / f"{lang}.html").as_uri())
    assert page.evaluate("() => document.documentElement.lang") == lang
    audit.check(page, f"newsletter {lang}.html")
    page.close()
    audit.verdict()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_public_page_passes_axe(chromium: Any, site: tuple[Path, str], lang: str) -> None:
    root, url = site
    page = new_page(chromium, lang)
    audit = Audit()
    suffix = "" if lang == "en" else f"/{lang}"

    def visit(name: str, address: str, status: int = 200) -> None:
        goto(page, address, status)
        assert page.evaluate("() => document.documentElement.lang") == lang, name
        audit.check(page, f"{lang} {name}")

    visit("archive index", f"{url}/")
    visit("issue page", f"{url}/issues/{ISSUE_ID}{suffix}")
    visit("subscription page", f"{url}/subscription{suffix}")
    visit("error page", f"{url}/issues/no-such-issue", 404)

    visit("subscribe form", f"{url}/subscribe/{LIST}")
    page.eval_on_selector("form[method=post]", "form => { form.noValidate = true; }")
    page.fill("#email", "not an address")
    page.check("#consent")
    with page.expect_navigation():
        page.click("form[method=post] button[type=submit]")
    assert page.locator("[aria-invalid=true]").count() >= 1, "the form shows no error"
    audit.check(page, f"{lang} subscribe form with an error")
    page.fill("#email", NEWCOMER[lang])
    page.select_option("#lang", lang)
    page.check("#consent")
    with page.expect_navigation():
        page.click("form[method=post] button[type=submit]")
    audit.check(page, f"{lang} subscribe-sent")
    sent = page.locator("main").inner_text()
    for _attempt in range(4):  # the same address again, until the polite refusal
        goto(page, f"{url}/subscribe/{LIST}")
        page.fill("#email", NEWCOMER[lang])
        page.check("#consent")
        with page.expect_navigation():
            page.click("form[method=post] button[type=submit]")
        if page.locator("main").inner_text() != sent:
            break
    assert page.locator("main").inner_text() != sent, "no rate-limit page after 4 sign-ups"
    audit.check(page, f"{lang} subscribe, already sent recently")

    confirmation = mail_to(root, NEWCOMER[lang], wait=WAIT_S)
    page.set_content(html_part(confirmation))
    assert page.evaluate("() => document.documentElement.lang") == lang
    audit.check(page, f"{lang} confirmation mail")
    confirm = link_in(confirmation, "/confirm/")
    visit("confirm", confirm)
    with page.expect_navigation():
        page.click("form[method=post] button[type=submit]")
    audit.check(page, f"{lang} confirmed")

    newsletter = mail_to(root, READER[lang])
    visit("view online", link_in(newsletter, "/v/"))
    unsubscribe = link_in(newsletter, "/u/")
    visit("unsubscribe", unsubscribe)
    with page.expect_navigation():
        page.click("form[method=post] button[type=submit]")
    audit.check(page, f"{lang} unsubscribed")
    visit("unsubscribe, already done", unsubscribe)
    page.close()
    assert audit.pages == 15
    audit.verdict()


def test_the_static_archive_passes_axe(chromium: Any, site: tuple[Path, str],
                                      tmp_path: Path) -> None:
    """`mirage-mailer archive` writes the same pages as files for any web host."""
    root, _url = site
    out = tmp_path / "archive"
    cli(root, "archive", "--out", str(out))
    pages = sorted(out.rglob("index.html"))
    assert len(pages) >= 7, pages  # index, the issue (default, en, fr), subscription (x3)
    page = new_page(chromium, "en")
    audit = Audit()
    for path in pages:
        page.goto(path.as_uri())
        audit.check(page, f"archive {path.relative_to(out)}")
    page.close()
    audit.verdict()


def test_the_report_pages_pass_axe(chromium: Any, site: tuple[Path, str],
                                   tmp_path: Path) -> None:
    """The HTML reports an officer attaches to the EU periodic report: the issue's and the
    period's (the same pages `serve` shows behind the report password)."""
    root, _url = site
    issue_page, period_page = tmp_path / "issue.html", tmp_path / "period.html"
    cli(root, "report", SAMPLE_ISSUE, "--format", "html", "--out", str(issue_page))
    cli(root, "report", "--period", "2000-01-01..2099-12-31", "--format", "html",
        "--out", str(period_page))
    page = new_page(chromium, "en")
    audit = Audit()
    for path in (issue_page, period_page):
        page.goto(path.as_uri())
        audit.check(page, f"report {path.name}")
    page.close()
    audit.verdict()


BROKEN = [
    ("image-alt", lambda html: html.replace("<body", '<body><img src="eu-emblem.png" '
                                            'width="90" height="60"><hr', 1)),
    ("color-contrast", lambda html: re.sub(r"color:#222\b", "color:#bbb", html)),
]


@pytest.mark.parametrize(("rule", "breaks"), BROKEN, ids=[rule for rule, _ in BROKEN])
def test_the_check_fails_on_a_missing_alt_and_low_contrast(
        chromium: Any, site: tuple[Path, str], previewed: Path, tmp_path: Path, rule: str,
        breaks: Any) -> None:
    """Control: the same newsletter with one flaw fails axe (serious or critical) and the
    no-browser check of `validate`, each naming the flaw."""
    html = breaks((previewed / "en.html").read_text(encoding="utf-8"))
    broken = tmp_path / "en.html"
    broken.write_text(html, encoding="utf-8")
    page = new_page(chromium, "en")
    page.goto(broken.as_uri())
    audit = Audit()
    audit.check(page, "broken newsletter")
    page.close()
    assert any(f": {rule} (" in line for line in audit.blocking), audit.blocking
    found = check_rendered(html, lang="en", parts=[], templates=site[0] / "templates")
    wanted = {"image-alt": "has no alt attribute", "color-contrast": "has a contrast of"}[rule]
    assert any(wanted in problem.message for problem in found), found
