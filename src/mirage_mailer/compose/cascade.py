"""The text style every element of an inlined newsletter inherits, computed as a browser
would from the ``style`` attributes (premailer has moved every rule there): colour,
background, size, weight, and whether it is hidden.

One pass from the root down, each element from its parent's style, so a 100-article issue
costs one walk, not one walk up the tree per element.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml.html import HtmlElement

from mirage_mailer.compose.contrast import RGB, colour_in, parse_colour

SKIPPED = frozenset({"head", "title", "style", "script", "noscript", "template"})
_BOLD_TAGS = frozenset({"b", "strong", "th", "h1", "h2", "h3", "h4", "h5", "h6"})
_TAG_SIZE = {"h1": 2.0, "h2": 1.5, "h3": 1.17, "h4": 1.0, "h5": 0.83, "h6": 0.67,
             "small": 0.83, "sub": 0.83, "sup": 0.83}
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)
LINK: RGB = (0, 0, 238)  # what browsers give a link that sets no colour
_ZERO = re.compile(r"0(?:\.0+)?(px|pt|em|rem|%)?")
_LENGTH = re.compile(r"([\d.]+)\s*(px|pt|em|rem|%)?")
_UNSET = ("transparent", "inherit", "none", "initial")


@dataclass(frozen=True, slots=True)
class TextStyle:
    """``colour`` or ``background`` is None when only a browser can tell (translucent,
    a variable, an image behind the text)."""

    colour: RGB | None
    background: RGB | None
    size: float  # px
    bold: bool
    hidden: bool


ROOT = TextStyle(BLACK, WHITE, 16.0, False, False)


def styles(el: HtmlElement) -> dict[str, str]:
    """The element's ``style`` attribute as lower-case property -> value."""
    found: dict[str, str] = {}
    for decl in (el.get("style") or "").split(";"):
        prop, sep, value = decl.partition(":")
        if sep:
            found[prop.strip().lower()] = value.strip().lower().replace("!important", "").strip()
    return found


def cascade(doc: HtmlElement) -> dict[HtmlElement, TextStyle]:
    """The style of every element of ``doc``; what sits in <head> counts as hidden."""
    computed: dict[HtmlElement, TextStyle] = {}
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        parent = el.getparent()
        inherited = computed.get(parent, ROOT) if parent is not None else ROOT
        computed[el] = _own(el, inherited)
    return computed


def _own(el: HtmlElement, parent: TextStyle) -> TextStyle:
    own = styles(el)
    tag = str(el.tag)
    return TextStyle(
        colour=_colour(el, tag, own, parent),
        background=_background(el, own, parent),
        size=_size(tag, own, parent.size),
        bold=_bold(tag, own, parent.bold),
        hidden=parent.hidden or tag in SKIPPED or _hides(el, own),
    )


def _colour(el: HtmlElement, tag: str, own: dict[str, str], parent: TextStyle) -> RGB | None:
    value = own.get("color")
    if value is None and tag == "font":
        value = el.get("color")
    if value is not None and value not in ("inherit", "currentcolor"):
        return parse_colour(value)
    return LINK if tag == "a" else parent.colour


def _background(el: HtmlElement, own: dict[str, str], parent: TextStyle) -> RGB | None:
    if "url(" in own.get("background-image", "") or el.get("background"):
        return None  # an image over the colour, behind the text (CSS, <td background="...">)
    value = own.get("background-color") or own.get("background") or el.get("bgcolor")
    if value is not None and value.strip() not in _UNSET:
        return colour_in(value)
    return parent.background


def _size(tag: str, own: dict[str, str], inherited: float) -> float:
    size = inherited * _TAG_SIZE.get(tag, 1.0)
    value = own.get("font-size")
    if value:
        size = length(value, inherited) or size
    return size


def _bold(tag: str, own: dict[str, str], inherited: bool) -> bool:
    weight = own.get("font-weight")
    if weight:
        return weight in ("bold", "bolder") or (weight.isdigit() and int(weight) >= 600)
    return inherited or tag in _BOLD_TAGS


def _hides(el: HtmlElement, own: dict[str, str]) -> bool:
    if own.get("display") == "none" or own.get("visibility") == "hidden":
        return True
    if el.get("hidden") is not None or own.get("opacity", "1") in ("0", "0.0"):
        return True
    if own.get("max-height", "").startswith("0") and own.get("overflow") == "hidden":
        return True
    return bool(_ZERO.fullmatch(own.get("font-size", "x")))


def length(value: str, inherited: float) -> float | None:
    """A CSS length in px (px, pt, em, rem, %), or None for what is not one."""
    match = _LENGTH.fullmatch(value.strip())
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2) or "px"
    scale = {"px": 1.0, "pt": 4 / 3, "em": inherited, "rem": 16.0, "%": inherited / 100}
    return number * scale[unit]
