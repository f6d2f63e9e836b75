"""Where in the templates a broken visibility rule comes from.

The checkers (the disclaimer's, the unsubscribe link's) read the rendered, inlined HTML, so
they know the declaration, selector or tag that hides a part but not the template line. Their
messages name them, and this finds the line that holds them, so the error can say
``templates/newsletter.html.j2:47:``. A declaration found in an element's ``style`` is either
written there or put there by premailer from a ``<style>`` rule: the line is the ``style``
attribute that declares it on such an element, else a rule whose selector fits the element,
never a rule for some other element that happens to declare the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

DISCLAIMER_PARTIAL = "partials/disclaimer.html.j2"
_MAX_TEMPLATE_BYTES = 1_000_000
_SELECTOR = re.compile(r"([a-z-]+): (.+?) in the <style> rule '(.+?)'")
_DECLARATION = re.compile(r"([a-z-]+): (.+?) in the style of <([a-z][\w-]*)"
                          r"(?: class=\"([^\"]*)\")?>(?:, where (var\(.+?\)) may give it)?")
_INSIDE = re.compile(r"inside (?:a closed |a )?<([a-z]+)>")
_HIDDEN_ATTRIBUTE = re.compile(r"<[a-z][^>]*\shidden[\s=>/]", re.I)
_STYLE_ATTRIBUTE = re.compile(r"(?<![-\w])style\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.I)
_CLASS_ATTRIBUTE = re.compile(r"(?<![-\w])class\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.I)
_TAG_NAME = re.compile(r"<([a-z][\w-]*)", re.I)
_STYLE_BLOCK = re.compile(r"<style\b[^>]*>(.*?)</style>", re.I | re.S)
_RULE = re.compile(r"([^{}]*)\{([^{}]*)\}")
_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def locate(templates: Path, rule: str, *,
           partial: str | None = DISCLAIMER_PARTIAL) -> tuple[Path, int | None]:
    """The template file and line a hiding rule comes from, found by what its message names
    (a <style> selector and declaration, a style declaration, a wrapping tag); the newsletter
    template without a line when the rendered output cannot be traced back.

    The newsletter is searched first, then ``partial``, then the other HTML templates.
    """
    newsletter = templates / "newsletter.html.j2"
    for path, text in html_templates(templates, partial):
        line = _line_of(text, rule)
        if line is not None:
            return path, line
    return newsletter, None


def html_templates(templates: Path, partial: str | None) -> Iterator[tuple[Path, str]]:
    """(path, text) of each readable HTML template: the newsletter, ``partial``, the rest."""
    first = [templates / "newsletter.html.j2"] + ([templates / partial] if partial else [])
    try:
        others = sorted(p for p in templates.rglob("*.html.j2") if p not in first)
    except OSError:
        others = []
    for path in [*first, *others]:
        try:
            if path.is_file() and path.stat().st_size <= _MAX_TEMPLATE_BYTES:
                yield path, path.read_text(encoding="utf-8")
        except (OSError, UnicodeError):
            continue


def line_with(text: str, pattern: re.Pattern[str]) -> int | None:
    """The first line of ``text`` that ``pattern`` matches."""
    found = pattern.search(text)
    return text.count("\n", 0, found.start()) + 1 if found else None


def _line_of(text: str, rule: str) -> int | None:
    lines = text.splitlines()
    flat = [_flat(line) for line in lines]
    if (found := _SELECTOR.search(rule)):
        prop, value, selector = found.groups()
        wanted, declaration = _flat(selector), f"{prop}:{value}".replace(" ", "")
        starts = [n for n, line in enumerate(flat) if wanted in line]
        for n in starts:  # the rule whose block (up to its closing brace) sets the property
            block = "".join(flat[n:n + 20])
            if _declares(block[:block.find("}", block.find(wanted)) + 1], declaration):
                return n + 1
        return starts[0] + 1 if starts else None
    if (found := _DECLARATION.search(rule)):
        prop, value, tag, classes, variable = found.groups()
        wanted = _flat(f"{prop}:{variable or value}")
        return _style_attribute(text, wanted, tag, (classes or "").split()) or _style_rule(
            text, wanted, tag, set((classes or "").split()))
    if (found := _INSIDE.search(rule)) or (found := re.search(r"<(link) rel=", rule)):
        wanted = f"<{found.group(1)}"
    elif "the hidden attribute" in rule:
        return next((n + 1 for n, line in enumerate(lines) if _HIDDEN_ATTRIBUTE.search(line)),
                    None)
    else:
        return None
    return next((n + 1 for n, line in enumerate(flat) if _declares(line, wanted)), None)


def _style_attribute(text: str, wanted: str, tag: str, classes: list[str]) -> int | None:
    """The line of a ``style`` attribute that declares ``wanted`` on a ``<tag>`` (its class
    too, when the element has one, is the better fit)."""
    best: tuple[int, int] | None = None  # (fit, line)
    for found in _STYLE_ATTRIBUTE.finditer(text):
        if not _declares(_flat(found.group(1) or found.group(2) or ""), wanted):
            continue
        start = text.rfind("<", 0, found.start())
        name = _TAG_NAME.match(text, start) if start >= 0 else None
        if name is None or name.group(1).lower() != tag:
            continue
        end = text.find(">", found.end())
        own = _CLASS_ATTRIBUTE.search(text[start:end if end >= 0 else len(text)])
        fit = 2 if own and (own.group(1) or own.group(2) or "").split() == classes else 1
        if best is None or fit > best[0]:
            best = (fit, text.count("\n", 0, found.start()) + 1)
    return best[1] if best else None


def _style_rule(text: str, wanted: str, tag: str, classes: set[str]) -> int | None:
    """The line of a ``<style>`` rule that declares ``wanted`` and whose selector may select
    a ``<tag>`` of ``classes`` (premailer moved it into the element's ``style``)."""
    for block in _STYLE_BLOCK.finditer(text):
        css = _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), block.group(1))
        for rule in _RULE.finditer(css):
            selectors, body = rule.groups()
            if not _declares(_flat(body), wanted) or not any(
                    _may_select(one, tag, classes) for one in selectors.split(",")):
                continue
            at = block.start(1) + rule.start(1) + len(selectors) - len(selectors.lstrip())
            return text.count("\n", 0, at) + 1
    return None


def _may_select(selector: str, tag: str, classes: set[str]) -> bool:
    """Whether the last compound of ``selector`` fits a ``<tag>`` of ``classes``: its type and
    classes are checked, the rest (ids, attributes, states) is taken as a fit."""
    compounds = [c for c in re.split(r"[\s>+~]+", selector.strip()) if c]
    if not compounds:
        return False
    last = re.sub(r"\[[^\]]*\]|::?[\w-]+(?:\([^)]*\))?", "", compounds[-1])
    name = re.match(r"[a-z][\w-]*|\*", last, re.I)
    if name and name.group(0).lower() not in ("*", tag):
        return False
    return set(re.findall(r"\.([\w-]+)", last)) <= classes


def _flat(text: str) -> str:
    return "".join(text.lower().split())


def _declares(flat: str, wanted: str) -> bool:
    """``wanted`` in ``flat`` as a whole declaration (``height:0`` is not in ``max-height:0``
    nor in ``height:0.5em``)."""
    return re.search(r"(?<![a-z-])" + re.escape(wanted) + r"(?![\w.%])", flat) is not None
