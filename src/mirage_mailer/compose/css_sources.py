"""Every CSS declaration that may apply to an element of the rendered newsletter: its ``style``
attribute and each rule premailer left in a ``<style>`` block (media queries, ``@supports``,
state rules such as ``:hover``, keyframes of an animation it runs).

"May apply" is the point: a media query applies at some width and a ``:hover`` rule at some
moment, so both count, whatever specificity or ``!important`` say. Selectors are matched by
cssselect and declarations parsed by cssutils, the libraries premailer itself uses, so the
checks read CSS as the inliner did instead of through a hand-written matcher.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import cssutils
from cssselect import HTMLTranslator, SelectorError, parse
from lxml.etree import XPath, XPathError
from lxml.html import HtmlElement

from mirage_mailer.util import kept

# States a reader can put an element in (hovering, following a link): a rule for one of them
# applies at some moment, so the state is dropped and the rest of the selector matched.
_STATES = re.compile(r":(?:hover|focus-within|focus-visible|focus|active|visited|link|any-link|"
                     r"target-within|target)\b(?!\()", re.I)
_EMPTY_NOT = re.compile(r":not\(\s*\)", re.I)
_TEXT_PSEUDO = frozenset({"first-line", "first-letter"})  # style the element's own text
# Other spellings of the properties the checks read (logical and prefixed ones), so that
# ``block-size: 0`` counts as ``height: 0`` does.
_ALIASES = {"block-size": "height", "inline-size": "width", "max-block-size": "max-height",
            "max-inline-size": "max-width", "inset-block-start": "top",
            "inset-inline-start": "left", "inset-block-end": "bottom", "inset-inline-end": "right",
            "inset-block": "inset", "inset-inline": "inset", "margin-block-start": "margin-top",
            "margin-inline-start": "margin-left", "margin-block-end": "margin-bottom",
            "margin-inline-end": "margin-right", "margin-block": "margin",
            "margin-inline": "margin", "overflow-block": "overflow", "overflow-inline": "overflow",
            "-webkit-transform": "transform", "-ms-transform": "transform",
            "-webkit-clip-path": "clip-path", "-webkit-filter": "filter"}
_CUSTOM = re.compile(r"(--[\w-]+)\s*:\s*([^;{}\"]+)")
_VAR = re.compile(r"var\(\s*(--[\w-]+)\s*(?:,\s*([^()]*(?:\([^()]*\))?[^()]*))?\)")
_KEYFRAMES = re.compile(r"@(?:-[a-z]+-)?keyframes\s+([\w-]+)", re.I)
_FRAME = re.compile(r"\{([^{}]*)\}")  # one keyframe's declarations
_NOTHING = XPath("false()")
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_UNESCAPE = re.compile(r"\\([^0-9a-fA-F\n])")  # disp\lay is display
Rule = tuple[str, str, list[tuple[str, str]]]  # selector, media condition, declarations

logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
cssutils.log.setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class Declaration:
    prop: str
    value: str
    origin: str  # where it comes from, named in the message


class StyleSources:
    """Property -> declarations that may apply, per element (``props``).

    A rule whose selector cssselect cannot read is applied to every element: failing closed,
    because a selector the checks skipped is one a template could hide the disclaimer behind.
    """

    def __init__(self, doc: HtmlElement) -> None:
        self._matched: dict[HtmlElement, list[Declaration]] = {}
        self._everywhere: list[Declaration] = []
        self._cache: dict[HtmlElement, dict[str, list[Declaration]]] = {}
        self._custom: dict[str, set[str]] = {}  # every value a custom property (--x) is given
        self._keyframes: dict[str, list[Declaration]] = {}
        for text in [*(s.text or "" for s in doc.iter("style")), *doc.xpath("//@style")]:
            for name, value in _CUSTOM.findall(str(text)):
                self._custom.setdefault(name.lower(), set()).add(
                    value.lower().replace("!important", "").strip())
        for style in doc.iter("style"):
            text = style.text or ""
            rules, frames = SHEETS.get(text, partial(_sheet, text))
            for name, prop, value, origin in frames:
                self._keyframes.setdefault(name, []).append(Declaration(prop, value, origin))
            for selector, media, declarations in rules:
                self._apply(doc, selector, media, declarations)

    def _apply(self, doc: HtmlElement, selector: str, media: str,
               declarations: list[tuple[str, str]]) -> None:
        origin = f"the <style> rule '{selector}'" + (f" in @media {media}" if media else "")
        found = [Declaration(prop, value, origin) for prop, value in declarations]
        matcher = _matcher(selector)
        if matcher is None:
            self._everywhere += [Declaration(d.prop, d.value, f"{d.origin}, a selector "
                                             "mirage-mailer cannot read") for d in found]
            return
        try:
            elements = matcher(doc)
        except XPathError:
            self._everywhere += found
            return
        for el in elements if isinstance(elements, list) else ():
            if isinstance(el, HtmlElement):
                self._matched.setdefault(el, []).extend(found)

    def props(self, el: HtmlElement) -> dict[str, list[Declaration]]:
        """Property -> every declaration of it that may apply to ``el``."""
        if el not in self._cache:
            origin = f"the style of {describe(el)}"
            own = [Declaration(prop, value, origin)
                   for prop, value in inline_declarations(el.get("style") or "")]
            own += self._matched.get(el, []) + self._everywhere
            found: dict[str, list[Declaration]] = {}
            for decl in own + self._animated(own):
                for one in self._resolved(decl):
                    found.setdefault(_ALIASES.get(one.prop, one.prop), []).append(one)
            self._cache[el] = found
        return self._cache[el]

    def _animated(self, own: list[Declaration]) -> list[Declaration]:
        """The keyframes of the animations ``own`` runs: each frame applies at some moment."""
        names = {word for decl in own if decl.prop in ("animation", "animation-name")
                 for word in re.split(r"[\s,]+", decl.value)}
        return [decl for name in sorted(names & self._keyframes.keys())
                for decl in self._keyframes[name]]

    def _resolved(self, decl: Declaration) -> list[Declaration]:
        """``decl`` with each ``var()`` replaced by every value its variable is given anywhere
        (and its fallback): a variable may hold the hiding value."""
        values, done = [decl.value], []
        for _ in range(4):  # variables that name variables, a few levels deep
            pending = [v for v in values if _VAR.search(v)]
            done += [v for v in values if not _VAR.search(v)]
            values = []
            for value in pending:
                found = _VAR.search(value)
                assert found is not None
                name, fallback = found.group(1).lower(), found.group(2)
                options = sorted(self._custom.get(name, set())) + (
                    [fallback.strip()] if fallback else [])
                values += [value[:found.start()] + option + value[found.end():]
                           for option in options][:20]
        if done == [decl.value]:
            return [decl]
        origin = f"{decl.origin}, where {decl.value} may give it"
        return [Declaration(decl.prop, value, origin) for value in done[:40]]


def describe(el: HtmlElement) -> str:
    """``<td class="eu-block">``: enough for the user to find the element in the template."""
    cls = el.get("class")
    return f'<{el.tag} class="{cls}">' if cls else f"<{el.tag}>"


def _matcher(selector: str) -> XPath | None:
    """The compiled selector (matching nothing for one that styles generated content only,
    ``::before``), or None for one cssselect cannot read."""
    text = _EMPTY_NOT.sub("", _STATES.sub("", selector)).strip() or "*"
    try:
        paths = []
        for one in parse(text):
            pseudo = one.pseudo_element
            if pseudo is not None and (not isinstance(pseudo, str)
                                       or pseudo.lower() not in _TEXT_PSEUDO):
                continue
            one.pseudo_element = None
            paths.append(HTMLTranslator().selector_to_xpath(one))
        return XPath(" | ".join(paths)) if paths else _NOTHING
    except (SelectorError, XPathError, ValueError, TypeError):
        return None


def _sheet(text: str) -> tuple[list[Rule], list[tuple[str, str, str, str]]]:
    """One ``<style>`` block's rules, and its keyframes' declarations (name, property, value,
    origin): plain values, kept by the block's text (``SHEETS``)."""
    parser = cssutils.CSSParser(validate=False, raiseExceptions=False)
    keyframes: dict[str, list[Declaration]] = {}
    rules = list(_rules(parser.parseString(text).cssRules, "", parser, keyframes))
    return rules, [(name, d.prop, d.value, d.origin)
                   for name, found in keyframes.items() for d in found]


def _sheet_valid(value: Any) -> bool:
    def strings(item: Any, count: int) -> bool:
        return isinstance(item, tuple) and len(item) == count and all(
            isinstance(one, str) for one in item)
    return (isinstance(value, tuple) and len(value) == 2
            and isinstance(value[0], list) and isinstance(value[1], list)
            and all(isinstance(rule, tuple) and len(rule) == 3 and strings(rule[:2], 2)
                    and isinstance(rule[2], list) and all(strings(d, 2) for d in rule[2])
                    for rule in value[0])
            and all(strings(frame, 4) for frame in value[1]))


# the first parse of a <style> block costs cssutils some 10 ms; the text is the template's
SHEETS = kept.kind("style-rules", kept.library_stamp(cssutils), _sheet_valid, 40)


def _rules(rules: object, media: str, parser: cssutils.CSSParser,
           keyframes: dict[str, list[Declaration]]) -> Iterator[Rule]:
    """Every style rule, at-rules opened recursively; keyframes go into ``keyframes``.

    An at-rule cssutils does not know (``@supports``, ``@layer``, ``@container``) is parsed
    again from its body: its rules apply wherever the condition holds, so they count.
    """
    for rule in rules:  # type: ignore[attr-defined]
        if rule.type == rule.STYLE_RULE:
            declarations = _declarations(rule.style)
            for selector in rule.selectorList:
                yield selector.selectorText, media, declarations
        elif rule.type == rule.MEDIA_RULE:
            inner = rule.media.mediaText
            yield from _rules(rule.cssRules, f"{media} and {inner}" if media else inner, parser,
                              keyframes)
        elif rule.type == rule.UNKNOWN_RULE and "{" in rule.cssText:
            text = rule.cssText
            body, condition = text[text.find("{") + 1:text.rfind("}")], text[:text.find("{")]
            if (name := _KEYFRAMES.match(condition.strip())):
                origin = f"@keyframes {name.group(1)}"
                keyframes.setdefault(name.group(1).lower(), []).extend(
                    Declaration(prop, value, origin) for frame in _FRAME.findall(body)
                    for prop, value in inline_declarations(frame))
                continue
            condition = condition.strip()
            yield from _rules(parser.parseString(body).cssRules,
                              f"{media} and {condition}" if media else condition, parser,
                              keyframes)


def inline_declarations(style: str) -> list[tuple[str, str]]:
    """A ``style`` attribute as a browser reads it, value syntax cssutils does not know
    included (``rgb(0 0 0 / 0)``): premailer leaves an attribute no rule touched as written."""
    text = _UNESCAPE.sub(r"\1", _COMMENT.sub("", style))
    found = []
    for part in _split(text):
        prop, sep, value = part.partition(":")
        if sep and prop.strip():
            value = re.sub(r"!\s*important\s*$", "", value.strip(), flags=re.I)
            found.append((prop.strip().lower(), value.strip().lower()))
    return found


def _split(text: str) -> list[str]:
    """``text`` cut at each ``;`` outside brackets and quotes (``url("a;b")`` stays whole)."""
    parts, start, depth, quote = [], 0, 0, ""
    for at, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == ";" and depth == 0:
            parts.append(text[start:at])
            start = at + 1
    return [*parts, text[start:]]


def _declarations(style: cssutils.css.CSSStyleDeclaration) -> list[tuple[str, str]]:
    return [(prop.name.lower(), prop.value.lower().strip())
            for prop in style.getProperties(all=True)]
