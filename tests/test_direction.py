"""Right-to-left languages: an Arabic issue carries dir="rtl" where browsers and mail clients
read it (on <html>, and inside the body, where Gmail keeps it), parts in another language keep
their own direction, and a template written before templates had ``dir`` still gets it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from browser import browser
from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.compose.direction import ensure_direction
from mirage_mailer.util.langs import text_direction

PREVIEW = Path("preview/2021-10-partners-meeting")
HTML = "templates/newsletter.html.j2"
ARABIC = ('---\ntitle: "اجتماع الشركاء"\n---\n'
          "اجتمع شركاء MIraGE في نيقوسيا يوم 15 أكتوبر 2021، وناقشوا نتائج التدريبات.\n")


def add_arabic(project: Path) -> None:
    """An Arabic subject and one translated article (the other stays English)."""
    edit(project / SAMPLE_ISSUE / "issue.yaml", "\ntitle:", '\n  ar: "أخبار ميراج"\ntitle:')
    (project / SAMPLE_ISSUE / "partners-meeting.ar.md").write_text(ARABIC, encoding="utf-8")


def preview(project: Path, run_cli: RunCli, lang: str) -> lxml.html.HtmlElement:
    result = run_cli("preview", SAMPLE_ISSUE, "--lang", lang)
    assert result.code == 0, result.err
    return lxml.html.document_fromstring((project / PREVIEW / f"{lang}.html").read_bytes())


@pytest.mark.parametrize("code", ["ar", "fa", "he", "ur", "ps", "yi", "dv", "ar-EG"])
def test_right_to_left_languages_come_from_cldr(code: str) -> None:
    assert text_direction(code) == "rtl"


@pytest.mark.parametrize("code", ["en", "fr", "el", "pt-BR", "xx"])
def test_other_languages_are_left_to_right(code: str) -> None:
    assert text_direction(code) == "ltr"


def test_an_arabic_issue_is_right_to_left_inside_the_body(project: Path,
                                                         run_cli: RunCli) -> None:
    add_arabic(project)
    doc = preview(project, run_cli, "ar")
    assert doc.get("lang") == "ar" and doc.get("dir") == "rtl"
    body = doc.body
    wrapper = body.find_class("wrapper")[0]
    assert wrapper.get("dir") == "rtl"  # Gmail drops <html dir>: the body's tables carry it
    assert body.find_class("container")[0].get("dir") == "rtl"
    assert "text-align:right" in body.find_class("content")[0].get("style").replace(" ", "")
    arabic, english = body.find_class("article")
    assert (arabic.get("lang"), arabic.get("dir")) == ("ar", "rtl")
    assert (english.get("lang"), english.get("dir")) == ("en", "ltr")  # untranslated
    assert "text-align:left" in english.get("style").replace(" ", "")
    disclaimer = body.cssselect('[data-mirage="eu-disclaimer"]')[0]
    assert (disclaimer.get("lang"), disclaimer.get("dir")) == ("en", "ltr")  # no ar wording
    footer = body.find_class("footer")[0]  # English interface strings stand in
    assert (footer.get("lang"), footer.get("dir")) == ("en", "ltr")
    english_doc = preview(project, run_cli, "en")
    assert english_doc.get("dir") == "ltr"
    assert not english_doc.body.cssselect('[dir="rtl"]')


def test_chromium_lays_the_arabic_issue_out_right_to_left(project: Path,
                                                         run_cli: RunCli) -> None:
    """What the audit saw: Chromium computed ltr for the Arabic paragraph, so a sentence
    mixing Arabic, "MIraGE" and numbers came out in the wrong order."""
    add_arabic(project)
    preview(project, run_cli, "ar")
    with browser() as chromium:
        page: Any = chromium.new_page(viewport={"width": 320, "height": 900})  # type: ignore[attr-defined]
        page.goto((project / PREVIEW / "ar.html").as_uri())
        found = page.evaluate("""() => [...document.querySelectorAll('.article p')]
            .map(p => [p.textContent.slice(0, 12), getComputedStyle(p).direction,
                       getComputedStyle(p).textAlign])""")
        arabic = [row for row in found if row[0].startswith("اجتمع")]
        english = [row for row in found if row[0].startswith("The training")]
        assert arabic and english, found
        assert arabic[0][1:] == ["rtl", "right"] and english[0][1:] == ["ltr", "left"]
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{overflow}px of horizontal overflow at 320px"


def test_a_template_without_dir_still_gets_the_direction(project: Path,
                                                         run_cli: RunCli) -> None:
    """A project made before templates had ``dir``: the body is wrapped in a dir="rtl"
    block (and <html> gets it) for an rtl language; ltr output is left as it was."""
    for template in (project / HTML, project / "templates/partials/disclaimer.html.j2"):
        old = re.sub(r' dir="[^"]*"', "", template.read_text(encoding="utf-8"))
        assert "dir=" not in old
        template.write_text(old, encoding="utf-8")
    add_arabic(project)
    doc = preview(project, run_cli, "ar")
    assert doc.get("dir") == "rtl"
    first = doc.body[0]
    assert first.tag == "div" and first.get("dir") == "rtl"
    assert first.find_class("wrapper"), "the wrapper div holds the whole body"
    english = preview(project, run_cli, "en")
    assert english.get("dir") is None and not english.body.cssselect("[dir]")


@pytest.mark.parametrize(("html", "expected"), [
    ("<html><body><p>x</p></body></html>",
     '<html dir="rtl"><body><div dir="rtl"><p>x</p></div></body></html>'),
    ('<html lang="ar"><BODY class="b"><p>x</p></BODY></html>',
     '<html lang="ar" dir="rtl"><BODY class="b"><div dir="rtl"><p>x</p></div></BODY></html>'),
    ("<p>x</p>", '<div dir="rtl"><p>x</p></div>'),
    ('<html><body><table dir="rtl"></table></body></html>',
     '<html><body><table dir="rtl"></table></body></html>'),  # the template took care of it
    ('<html dir="rtl"><body><p>x</p></body></html>',  # not where Gmail would see it
     '<html dir="rtl"><body><div dir="rtl"><p>x</p></div></body></html>'),
])
def test_ensure_direction(html: str, expected: str) -> None:
    assert ensure_direction(html, "rtl") == expected
    assert ensure_direction(html, "ltr") == html


def test_the_archive_page_of_an_arabic_issue_is_right_to_left(project: Path,
                                                              run_cli: RunCli) -> None:
    """The web archive shows the same rendered HTML; its navigation bar, in the interface
    language (English: no Arabic catalog), keeps its own direction."""
    add_arabic(project)
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    result = run_cli("archive", "--out", "site")
    assert result.code == 0, result.err
    page = project / "site/issues/2021-10-partners-meeting/ar/index.html"
    doc = lxml.html.document_fromstring(page.read_bytes())
    assert doc.get("dir") == "rtl" and doc.body.find_class("wrapper")[0].get("dir") == "rtl"
    nav = doc.body.cssselect('[role="navigation"]')[0]
    assert (nav.get("lang"), nav.get("dir")) == ("en", "ltr")
