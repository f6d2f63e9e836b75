"""Accessibility checks of a rendered newsletter that need no browser (WCAG 2.1 AA, EN 301 549).

They read the inlined HTML of one language, as the disclaimer checker does, so whatever a
template does to get there is judged by its result: the document's language on ``<html>``,
the language of parts written in another one (an untranslated article, a disclaimer that has
no confirmed translation), an ``alt`` on every image, a name on every link, and the contrast
of every visible text colour against its background. Each problem points at the template
line that sets what is wrong. axe-core runs the full rule set in the browser tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import lxml.html
from lxml.html import HtmlElement

from mirage_mailer.compose.cascade import SKIPPED, TextStyle, cascade
from mirage_mailer.compose.contrast import RGB, colour_in, hex_of, luminance, needed, ratio, suggest
from mirage_mailer.util.errors import Problem, display_path, shorten

HTML_TEMPLATE = "newsletter.html.j2"
_MAX_TEMPLATE_BYTES = 1_000_000
_MAX_STARTS = 3  # places a split part is looked for: each costs a walk up with its text
_PROP = r"(?<![-\w]){name}\s*:\s*([^;\"'}}]+)"


@dataclass(frozen=True)
class Part:
    """Text that must carry its own language: ``needle`` is the template expression that
    writes it, for the line number; ``hint`` says what to add there."""

    text: str
    lang: str
    what: str
    needle: re.Pattern[str] | str
    hint: str


def check_rendered(html: str, *, lang: str, parts: list[Part],
                   templates: Path) -> list[Problem]:
    """Every problem of one rendered language; an empty list means none was found."""
    doc = lxml.html.document_fromstring(html)
    sources = _Sources(templates)
    computed = cascade(doc)
    shown = [(el, text) for el, text in _text_elements(doc) if not computed[el].hidden]
    problems = _document_language(doc, lang, sources)
    problems += _part_languages(shown, lang, parts, sources)
    problems += _images(doc, sources)
    problems += _links(doc, computed, sources)
    problems += _contrast(shown, computed, sources)
    return problems


class _Sources:
    """The HTML templates' lines, newsletter first, to say where a problem comes from."""

    def __init__(self, templates: Path) -> None:
        self.templates = templates
        self.main = templates / HTML_TEMPLATE

    @cached_property
    def files(self) -> list[tuple[Path, list[str]]]:
        """Read only when a problem needs its line: a clean newsletter reads nothing."""
        found = []
        others = sorted(p for p in self.templates.rglob("*.j2")
                        if not p.name.endswith(".txt.j2") and p != self.main)
        for path in [self.main, *others]:
            try:
                if path.is_file() and path.stat().st_size <= _MAX_TEMPLATE_BYTES:
                    found.append((path, path.read_text(encoding="utf-8",
                                                       errors="replace").splitlines()))
            except OSError:
                continue
        return found

    def find(self, test: re.Pattern[str] | str) -> tuple[str, int | None]:
        """(file, line) of the first template line that matches, else the newsletter."""
        for path, lines in self.files:
            for number, line in enumerate(lines, 1):
                if (test.search(line) if isinstance(test, re.Pattern) else test in line):
                    return display_path(path), number
        return display_path(self.main), None

    def find_colour(self, colour: RGB, props: tuple[str, ...]) -> tuple[str, int | None]:
        """The first line that sets one of ``props`` to ``colour``, however it is written."""
        patterns = [re.compile(_PROP.format(name=re.escape(p)), re.I) for p in props]
        attribute = "bgcolor" if "color" not in props else "color"  # <td bgcolor>, <font color>
        patterns.append(re.compile(rf"(?<![-\w]){attribute}\s*=\s*[\"']?([^\"'\s>]+)", re.I))
        for path, lines in self.files:
            for number, line in enumerate(lines, 1):
                for pattern in patterns:
                    for value in pattern.findall(line):
                        if colour_in(value) == colour:
                            return display_path(path), number
        return display_path(self.main), None


def _problem(where: tuple[str, int | None], message: str, hint: str) -> Problem:
    return Problem(where[0], where[1], message, hint)


def _base(code: str) -> str:
    return code.strip().lower().replace("_", "-").split("-")[0]


def _lang_of(el: HtmlElement) -> str | None:
    for node in [el, *el.iterancestors()]:
        code = node.get("lang") or node.get("{http://www.w3.org/XML/1998/namespace}lang")
        if code is not None:
            return str(code).strip()
    return None


def _document_language(doc: HtmlElement, lang: str, sources: _Sources) -> list[Problem]:
    declared = (doc.get("lang") or "").strip()
    where = sources.find(re.compile(r"<html\b", re.I))
    if not declared:
        return [_problem(where, "the <html> element has no lang attribute",
                         'write <html lang="{{ lang }}"> so screen readers speak the right '
                         "language")]
    if _base(declared) != _base(lang):
        return [_problem(where, f"the <html> element says lang=\"{shorten(declared, 20)}\" in "
                         f"the {lang} newsletter", 'write <html lang="{{ lang }}">')]
    return []


def _part_languages(shown: list[tuple[HtmlElement, str]], lang: str, parts: list[Part],
                    sources: _Sources) -> list[Problem]:
    problems = []
    for part in parts:
        element = _holder(shown, part.text)
        if element is None:
            continue  # the template does not show it: nothing to label
        found = _lang_of(element) or ""
        if _base(found) != _base(part.lang) and not any(  # the same words elsewhere first (a
                _base(_lang_of(el) or "") == _base(part.lang)  # translated "## Agenda"): fine
                for el, own in shown if own == " ".join(part.text.split())):
            problems.append(_problem(
                sources.find(part.needle),
                f"the {part.what} is in '{part.lang}' but the {lang} newsletter marks it as "
                f"'{found or 'no language'}'", part.hint))
    return problems


def _holder(shown: list[tuple[HtmlElement, str]], text: str) -> HtmlElement | None:
    """The element that shows ``text``: the one whose own text holds it, else (text split
    by inline tags) the nearest ancestor, of an element holding its first word, that holds
    it all.
    Looking only there keeps 100 untranslated articles from costing 100 walks of the page."""
    wanted = " ".join(text.split())
    if not wanted:
        return None
    exact = next((el for el, own in shown if own == wanted), None)
    if exact is not None:  # a link or a cell of just these words, not a sentence quoting them
        return exact
    for el, own in shown:
        if wanted in own:
            return el
    first = wanted.split(" ", 1)[0]
    starts = ([el for el, own in shown if own.startswith(first)]
              + [el for el, own in shown if first in own])[:_MAX_STARTS]
    for el in starts:
        for node in [el, *el.iterancestors()]:
            if wanted in " ".join(node.text_content().split()):
                return node
    return None


def _images(doc: HtmlElement, sources: _Sources) -> list[Problem]:
    problems = []
    for img in doc.iter("img"):
        if img.get("alt") is None and img.get("role") not in ("presentation", "none"):
            src = img.get("src") or ""
            problems.append(_problem(
                sources.find(re.compile(r"<img\b(?![^>]*\balt\s*=)", re.I)),
                f"an image has no alt attribute ({shorten(src, 80)})",
                'describe it with alt="...", or write alt="" if it is only decoration'))
    return problems


def _links(doc: HtmlElement, computed: dict[HtmlElement, TextStyle],
           sources: _Sources) -> list[Problem]:
    problems = []
    for link in doc.iter("a"):
        if link.get("href") is None or computed[link].hidden:
            continue
        named = " ".join(link.text_content().split()) or link.get("aria-label", "").strip()
        named = named or any((img.get("alt") or "").strip() for img in link.iter("img"))
        if not named:
            href = link.get("href") or ""
            problems.append(_problem(
                sources.find(href) if href and "__MM_" not in href else sources.find("<a "),
                f"a link has no text a screen reader can say ({shorten(href, 80)})",
                "put words in the link, or an image with alt text"))
    return problems


def _text_elements(doc: HtmlElement) -> Iterator[tuple[HtmlElement, str]]:
    """Elements with text of their own (their text or a child's tail), and that text."""
    for el in doc.iter():
        if not isinstance(el.tag, str) or el.tag in SKIPPED:
            continue
        own = (el.text or "") + "".join(child.tail or "" for child in el)
        if own.strip():
            yield el, " ".join(own.split())


def _describe(el: HtmlElement) -> str:
    """``<p class="article-meta">``: the same in every language, so one line for all."""
    classes = " ".join((el.get("class") or "").split())
    return f'<{el.tag} class="{shorten(classes, 40)}">' if classes else f"<{el.tag}>"


def _contrast(shown: list[tuple[HtmlElement, str]], computed: dict[HtmlElement, TextStyle],
              sources: _Sources) -> list[Problem]:
    seen: set[tuple[RGB, RGB, float]] = set()
    problems = []
    for el, _text in shown:
        style = computed[el]
        colour, background = style.colour, style.background
        if colour is None or background is None:
            continue  # a translucent colour or an image behind: only a browser can tell
        minimum = needed(style.size, style.bold)
        measured = ratio(colour, background)
        if measured >= minimum or (colour, background, minimum) in seen:
            continue
        seen.add((colour, background, minimum))
        where = sources.find_colour(colour, ("color",))
        if where[1] is None:
            where = sources.find_colour(background, ("background-color", "background"))
        kind = "normal" if minimum > 3.0 else "large"
        suggested = suggest(colour, background, minimum)
        better = hex_of(suggested)
        problems.append(_problem(
            where,
            f"text colour {hex_of(colour)} on {hex_of(background)} has a contrast of "
            f"{measured:.2f}:1, below the {minimum:g}:1 WCAG 2.1 AA asks for {kind} text "
            f"(in {_describe(el)})",
            f"use {better} or darker for this text" if luminance(suggested) < luminance(colour)
            else f"use {better} or lighter for this text"))
    return problems
