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
from pathlib import Path

import lxml.html
from lxml.html import HtmlElement

from mirage_mailer.compose.contrast import (
    RGB,
    colour_in,
    hex_of,
    luminance,
    needed,
    parse_colour,
    ratio,
    suggest,
)
from mirage_mailer.util.errors import Problem, display_path, shorten

HTML_TEMPLATE = "newsletter.html.j2"
_SKIP = {"head", "title", "style", "script", "noscript", "template"}
_BOLD_TAGS = {"b", "strong", "th", "h1", "h2", "h3", "h4", "h5", "h6"}
_TAG_SIZE = {"h1": 2.0, "h2": 1.5, "h3": 1.17, "h4": 1.0, "h5": 0.83, "h6": 0.67,
             "small": 0.83, "sub": 0.83, "sup": 0.83}
_WHITE: RGB = (255, 255, 255)
_BLACK: RGB = (0, 0, 0)
_LINK: RGB = (0, 0, 238)  # what browsers give a link that sets no colour
_MAX_TEMPLATE_BYTES = 1_000_000
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
    problems = _document_language(doc, lang, sources)
    problems += _part_languages(doc, lang, parts, sources)
    problems += _images(doc, sources)
    problems += _links(doc, sources)
    problems += _contrast(doc, sources)
    return problems


class _Sources:
    """The HTML templates' lines, newsletter first, to say where a problem comes from."""

    def __init__(self, templates: Path) -> None:
        self.main = templates / HTML_TEMPLATE
        self.files: list[tuple[Path, list[str]]] = []
        others = sorted(p for p in templates.rglob("*.j2")
                        if not p.name.endswith(".txt.j2") and p != self.main)
        for path in [self.main, *others]:
            try:
                if path.is_file() and path.stat().st_size <= _MAX_TEMPLATE_BYTES:
                    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
                    self.files.append((path, lines))
            except OSError:
                continue

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
        patterns.append(re.compile(r"\b(?:bg)?color\s*=\s*[\"']?([^\"'\s>]+)", re.I))
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


def _part_languages(doc: HtmlElement, lang: str, parts: list[Part],
                    sources: _Sources) -> list[Problem]:
    problems = []
    for part in parts:
        element = _smallest_containing(doc, part.text)
        if element is None:
            continue  # the template does not show it: nothing to label
        found = _lang_of(element) or ""
        if _base(found) != _base(part.lang):
            problems.append(_problem(
                sources.find(part.needle),
                f"the {part.what} is in '{part.lang}' but the {lang} newsletter marks it as "
                f"'{found or 'no language'}'", part.hint))
    return problems


def _smallest_containing(doc: HtmlElement, text: str) -> HtmlElement | None:
    wanted = " ".join(text.split())
    body = doc.find("body")
    best = None
    for el in (body if body is not None else doc).iter():
        if isinstance(el.tag, str) and el.tag not in _SKIP and wanted in " ".join(
                el.text_content().split()):
            best = el  # depth first: a later match lies deeper
    return best


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


def _links(doc: HtmlElement, sources: _Sources) -> list[Problem]:
    problems = []
    for link in doc.iter("a"):
        if link.get("href") is None or _hidden(link):
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


def _styles(el: HtmlElement) -> dict[str, str]:
    found: dict[str, str] = {}
    for decl in (el.get("style") or "").split(";"):
        prop, sep, value = decl.partition(":")
        if sep:
            found[prop.strip().lower()] = value.strip().lower().replace("!important", "").strip()
    return found


def _hidden(el: HtmlElement) -> bool:
    for node in [el, *el.iterancestors()]:
        styles = _styles(node)
        if styles.get("display") == "none" or styles.get("visibility") == "hidden":
            return True
        if node.get("hidden") is not None or styles.get("opacity", "1") in ("0", "0.0"):
            return True
        if (styles.get("max-height", "").startswith("0")
                and styles.get("overflow") == "hidden"):
            return True
        if re.fullmatch(r"0(?:\.0+)?(px|pt|em|rem|%)?", styles.get("font-size", "x")):
            return True
    return False


class _Computed:
    """The inherited colour, background, size and weight of elements, as a browser would
    compute them from the inline styles, cached along the tree."""

    def __init__(self) -> None:
        self.sizes: dict[HtmlElement, float] = {}

    def colour(self, el: HtmlElement) -> RGB | None:
        for node in [el, *el.iterancestors()]:
            value = _styles(node).get("color")
            if value is None and node.tag == "font":
                value = node.get("color")
            if value is not None and value not in ("inherit", "currentcolor"):
                return parse_colour(value)
            if node.tag == "a":
                return _LINK
        return _BLACK

    def background(self, el: HtmlElement) -> RGB | None:
        for node in [el, *el.iterancestors()]:
            styles = _styles(node)
            value = styles.get("background-color") or styles.get("background")
            if value is None:
                value = node.get("bgcolor")
            if value is None or value.strip() in ("transparent", "inherit", "none", "initial"):
                if "background-image" in styles and "url(" in styles["background-image"]:
                    return None
                continue
            return colour_in(value)
        return _WHITE

    def size(self, el: HtmlElement) -> float:
        """Font size in px; iterative, since a hostile article may nest deeper than Python
        recurses."""
        chain = []
        node: HtmlElement | None = el
        while node is not None and node not in self.sizes:
            chain.append(node)
            node = node.getparent()
        size = self.sizes[node] if node is not None else 16.0
        for item in reversed(chain):
            inherited = size
            size = inherited * _TAG_SIZE.get(str(item.tag), 1.0)
            value = _styles(item).get("font-size")
            if value:
                size = _length(value, inherited) or size
            self.sizes[item] = size
        return size

    def bold(self, el: HtmlElement) -> bool:
        for node in [el, *el.iterancestors()]:
            weight = _styles(node).get("font-weight")
            if weight:
                return weight in ("bold", "bolder") or (weight.isdigit() and int(weight) >= 600)
            if node.tag in _BOLD_TAGS:
                return True
        return False


def _length(value: str, inherited: float) -> float | None:
    match = re.fullmatch(r"([\d.]+)\s*(px|pt|em|rem|%)?", value.strip())
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2) or "px"
    scale = {"px": 1.0, "pt": 4 / 3, "em": inherited, "rem": 16.0, "%": inherited / 100}
    return number * scale[unit]


def _text_elements(doc: HtmlElement) -> Iterator[HtmlElement]:
    """Elements with text of their own (their text or a child's tail)."""
    body = doc.find("body")
    for el in (body if body is not None else doc).iter():
        if not isinstance(el.tag, str) or el.tag in _SKIP:
            continue
        own = (el.text or "") + "".join(child.tail or "" for child in el)
        if own.strip():
            yield el


def _describe(el: HtmlElement) -> str:
    """``<p class="article-meta">``: the same in every language, so one line for all."""
    classes = " ".join((el.get("class") or "").split())
    return f'<{el.tag} class="{shorten(classes, 40)}">' if classes else f"<{el.tag}>"


def _contrast(doc: HtmlElement, sources: _Sources) -> list[Problem]:
    computed = _Computed()
    seen: set[tuple[RGB, RGB, float]] = set()
    problems = []
    for el in _text_elements(doc):
        if _hidden(el):
            continue
        colour, background = computed.colour(el), computed.background(el)
        if colour is None or background is None:
            continue  # a translucent colour or an image behind: only a browser can tell
        minimum = needed(computed.size(el), computed.bold(el))
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
