"""The rule that every message lets its reader leave: a visible link to the reader's own
unsubscribe address in the HTML part, and that address in the text part.

Like the disclaimer check it reads the *rendered* output (after CSS inlining), with the same
visibility rules (``visibility``), so a template that drops the link, hides it, shrinks it or
points it at a fixed page is caught whatever it does to get there. The address is the
per-recipient ``unsubscribe_url`` slot: a link anywhere else unsubscribes nobody in
particular. A ``<link rel="stylesheet">`` that could hide it is refused by the disclaimer
check, which reads the same page.
"""

from __future__ import annotations

import re
from pathlib import Path

import lxml.html
from lxml.html import HtmlElement

from mirage_mailer.compose.css_sources import StyleSources
from mirage_mailer.compose.slots import slot
from mirage_mailer.compose.template_lines import html_templates, line_with, locate
from mirage_mailer.compose.visibility import unseen
from mirage_mailer.util.errors import Problem, display_path

SLOT = str(slot("unsubscribe_url"))
HTML_LINK = '<a href="{{ unsubscribe_url }}">{{ t.unsubscribe }}</a>'
TEXT_LINE = "{{ t.unsubscribe }}: {{ unsubscribe_url }}"
_USES_SLOT = re.compile(r"\bunsubscribe_url\b")
_MENTIONS = re.compile(r"unsubscribe", re.I)
_BODY_END = re.compile(r"</body\s*>", re.I)


def check_html(html: str) -> list[str]:
    """Broken rules in the rendered, inlined HTML; an empty list means a reader sees the link."""
    doc = lxml.html.document_fromstring(html)
    links = [a for a in doc.iter("a") if (a.get("href") or "").strip() == SLOT]
    if not links:
        if SLOT in html:
            return ["the reader's unsubscribe address is not the href of a link"]
        return ["the HTML part has no link to the reader's own unsubscribe address"]
    sources, seen = StyleSources(doc), set[str]()
    broken: list[str] = []
    for link in links:
        if not _has_words(link):
            broken.append("the unsubscribe link has no words a reader can see")
            continue
        found = unseen(link, "the unsubscribe link", sources, seen, text=True)
        if not found:
            return []  # one visible link is enough
        broken += found
    return broken[:1]


def check_text(text: str) -> list[str]:
    """Broken rules in the plain-text part."""
    if SLOT in text:
        return []
    return ["the text part lacks the reader's own unsubscribe address"]


def problems(html: str, text: str, *, lang: str, templates: Path) -> list[Problem]:
    """Each broken rule of one language as ``file:line: message (fix)``: the line that hides
    the link, else the one that should hold it."""
    found = []
    for rule in check_html(html):
        path, line = locate(templates, rule, partial=None)
        if line is None:
            path, line = _where_it_belongs(templates)
        found.append(Problem(display_path(path), line,
                             f"unsubscribe rule broken ({lang} HTML): {rule}",
                             f"every message needs a visible {HTML_LINK}, as "
                             "'mirage-mailer init' writes it in the footer"))
    text_template = templates / "newsletter.txt.j2"
    for rule in check_text(text):
        found.append(Problem(display_path(text_template), _text_line(text_template),
                             f"unsubscribe rule broken ({lang} text): {rule}",
                             f"add the line '{TEXT_LINE}', as 'mirage-mailer init' writes "
                             "it in the footer"))
    return found


def _has_words(link: HtmlElement) -> bool:
    if link.text_content().strip():
        return True
    return any((img.get("alt") or "").strip() for img in link.iter("img"))


def _where_it_belongs(templates: Path) -> tuple[Path, int | None]:
    """The line that uses the slot, else one that mentions unsubscribing (a link to a fixed
    page), else the end of the body, where a footer goes."""
    for pattern in (_USES_SLOT, _MENTIONS, _BODY_END):
        for path, source in html_templates(templates, None):
            line = line_with(source, pattern)
            if line is not None:
                return path, line
    return templates / "newsletter.html.j2", None


def _text_line(path: Path) -> int | None:
    """The line that mentions unsubscribing, else the last one, where a footer goes."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError):
        return None
    return line_with(source, _MENTIONS) or (len(source.splitlines()) or None)
