"""Could a reader fail to see this element? The disclaimer checker asks it of the EU emblem, the
funding statement and the disclaimer text in the rendered, inlined HTML, and the unsubscribe
check of the reader's unsubscribe link.

The question is "could it be hidden", not "what does one browser compute": any declaration
that may apply (see ``css_sources``) and hides the element or an ancestor counts, as does an
ancestor whose content is never shown (<template>, a closed <details>).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lxml.html import HtmlElement

from mirage_mailer.compose.css_sources import Declaration, StyleSources, describe

MIN_PX = 9.0  # smallest readable type; a box or image smaller than this shows nothing useful
FAR_PX = 999.0  # an offset at least this large puts the element outside any mail window
# Content these elements hold is not shown: inert (template), fallback for something else
# (noscript where scripts run, which is every browser and webmail; iframe, object, video,
# audio, canvas), or not page content at all (head, title, script, style).
HIDING_TAGS = frozenset({"template", "noscript", "head", "title", "script", "style", "textarea",
                         "select", "datalist", "iframe", "object", "video", "audio", "canvas",
                         "svg", "frameset", "noframes"})
_OVERFLOW_CLIPS = frozenset({"hidden", "clip", "scroll", "auto"})
_OFFSETS = ("left", "top", "right", "bottom")
_UNITS = {"px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4,
          "q": 96 / 101.6, "rem": 16.0, "vw": 3.2, "vh": 3.2, "vmin": 3.2, "vmax": 3.2}
_LENGTH = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(px|pt|pc|in|cm|mm|q|em|rem|ex|ch|%|vw|vh|"
                     r"vmin|vmax)?", re.I)
_FUNCTION = re.compile(r"([a-z0-9-]+)\(([^()]*)\)", re.I)
_KEYWORD_SIZES = {"xx-small": 9.0, "x-small": 10.0, "small": 13.0}


def length(value: str, em: float, percent_of: float | None = None) -> float | None:
    """A CSS length in px; None when it depends on what the checker cannot know.

    A percentage counts only when zero (or against ``percent_of``); viewport units are taken
    at the narrowest width the layout supports (320px); a bare number is read as px, as
    browsers do in quirks mode.
    """
    match = _LENGTH.fullmatch(value.strip())
    if not match:
        return None
    number, unit = float(match.group(1)), (match.group(2) or "px").lower()
    if unit == "%":
        return number * percent_of / 100 if percent_of is not None else (0.0 if number == 0
                                                                        else None)
    if unit == "em":
        return number * em
    if unit in ("ex", "ch"):
        return number * em / 2
    return number * _UNITS[unit]


def hidden_reason(el: HtmlElement, sources: StyleSources, *, text: bool) -> str | None:
    """Why a reader may not see ``el`` at all, or None; ``text`` adds see-through colour,
    which does not hide an image."""
    path = [el, *el.iterancestors()]
    child: HtmlElement | None = None
    for node in path:
        why = _tag_hides(node, child) or _declarations_hide(
            node, sources.props(node), image=node is el and el.tag == "img")
        if why:
            return why
        child = node
    scale, scale_origin = _scale(path, sources)
    if scale < 0.1:
        return f"shrunk to {scale:g} of its size by {scale_origin}"
    return _transparent(path, sources) if text else None


def unseen(el: HtmlElement, what: str, sources: StyleSources, seen: set[str], *,
           text: bool) -> list[str]:
    """The rule ``el`` breaks if it may be hidden, or (``text``) set too small to read: what
    every part a reader must see (the disclaimer, the unsubscribe link) is checked with.

    A cause already in ``seen`` (one rule hiding a whole block) is said once, not per part.
    """
    reason = hidden_reason(el, sources, text=text)
    if reason:
        if reason in seen:
            return []
        seen.add(reason)
        return [f"{what} is hidden ({reason})"]
    if text:
        size, origin = smallest_type(el, sources)
        if size < MIN_PX:
            return [f"{what} is set in {size:g}px type, too small to read (use at least "
                    f"{MIN_PX:g}px; {origin})"]
    return []


def smallest_type(el: HtmlElement, sources: StyleSources) -> tuple[float, str]:
    """The smallest size ``el``'s type may be shown at, in px, and the declaration that
    sets it; em and % are of the parent's size, transforms shrink it further."""
    path = [el, *el.iterancestors()]
    size, origin = 16.0, ""
    for node in reversed(path):
        candidates = []
        props = sources.props(node)
        for decl in props.get("font-size", []) + props.get("font", []):
            value = decl.value if decl.prop == "font-size" else _font_size_in(decl.value)
            px = _KEYWORD_SIZES.get(value) or length(value, size, percent_of=size)
            if px is not None:
                candidates.append((px, decl))
        if candidates:
            px, decl = min(candidates, key=lambda pair: pair[0])
            size, origin = px, _said(decl)
    scale, scale_origin = _scale(path, sources)
    if scale < 1:
        return size * scale, f"{origin or 'font-size: 16px'}, shrunk by {scale_origin}"
    return size, origin


def _font_size_in(shorthand: str) -> str:
    """The size in a ``font`` shorthand (``bold 1px/2 Arial`` gives ``1px``)."""
    for word in shorthand.split():
        size = word.split("/")[0]
        bare = re.fullmatch(r"[\d.]+", size)  # a weight (700), unless it is 0
        if size in _KEYWORD_SIZES or (_LENGTH.fullmatch(size) and (not bare or float(size) == 0)):
            return size
    return ""


def _tag_hides(node: HtmlElement, child: HtmlElement | None) -> str | None:
    tag = str(node.tag).lower()
    if tag in HIDING_TAGS:
        return f"inside <{tag}>, which browsers and mail clients do not show"
    if node.get("hidden") is not None:
        return f"the hidden attribute of {describe(node)}"
    if tag == "details" and node.get("open") is None and (
            child is None or child.tag != "summary" or child is not node.find("summary")):
        return "inside a closed <details>; only its <summary> shows"
    if tag == "dialog" and node.get("open") is None:
        return "inside a <dialog> that is not open"
    return None


def _first(decls: list[Declaration], test: Callable[[str], bool]) -> Declaration | None:
    return next((d for d in decls if test(d.value)), None)


def _said(decl: Declaration) -> str:
    return f"{decl.prop}: {decl.value} in {decl.origin}"


def _declarations_hide(node: HtmlElement, props: dict[str, list[Declaration]], *,
                       image: bool) -> str | None:
    """One element's own declarations that hide it and everything inside it."""
    simple = (("display", lambda v: v == "none"),
              ("visibility", lambda v: v in ("hidden", "collapse")),
              ("opacity", _faint), ("mso-hide", lambda v: v == "all"),
              ("content-visibility", lambda v: v == "hidden"),
              ("filter", lambda v: any(_faint(arg) for name, arg in _FUNCTION.findall(v)
                                       if name == "opacity")),
              ("max-height", lambda v: length(v, 16.0) == 0),
              ("clip-path", _clip_path_hides),
              # an image as the content of a real element replaces it, text and all (Chrome)
              ("content", lambda v: any(f in v for f in ("url(", "image(", "gradient("))))
    for prop, test in simple:
        if (decl := _first(props.get(prop, []), test)):
            return _said(decl)
    clips = [d for prop in ("overflow", "overflow-x", "overflow-y") for d in props.get(prop, [])
             if set(d.value.split()) & _OVERFLOW_CLIPS]
    boxes = ("height", "max-height", "width", "max-width")
    if clips or image:
        for prop in boxes:
            if (decl := _first(props.get(prop, []), _tiny)):
                return _said(decl) + ("" if image else f", with {_said(clips[0])}")
        if image:
            for attr in ("width", "height"):
                if _tiny(node.get(attr) or "x"):
                    return f'{attr}="{node.get(attr)}" on {describe(node)}'
    if clips and (decl := _first(props.get("line-height", []), _no_line)):
        return f"{_said(decl)}, with {_said(clips[0])}"
    sized = ("size", "strict")  # size containment: no size from the content, so 0 x 0 here
    if clips and (decl := _first(props.get("contain", []),
                                 lambda v: any(w in v.split() for w in sized))):
        return f"{_said(decl)}, with {_said(clips[0])}"
    return _moved_away(props)


def _moved_away(props: dict[str, list[Declaration]]) -> str | None:
    """Offsets, margins, indents and translations that put the element off the page."""
    positioned = [d for d in props.get("position", []) if d.value != "static"]
    if positioned:
        offsets = [d for side in (*_OFFSETS, "inset") for d in props.get(side, [])]
        if (decl := _first(offsets, lambda v: any(_far(part) for part in v.split()))):
            return f"{_said(decl)}, with {_said(positioned[0])}"
        if (decl := _first(props.get("clip", []), _clip_rect_hides)):
            return f"{_said(decl)}, with {_said(positioned[0])}"
    margins = [d for side in ("margin", *(f"margin-{side}" for side in _OFFSETS))
               for d in props.get(side, [])]
    if (decl := _first(margins, lambda v: any((length(p, 16.0) or 0) <= -FAR_PX
                                              for p in v.split()))):
        return _said(decl)
    if (decl := _first(props.get("text-indent", []), _far)):
        return _said(decl)
    moves = props.get("transform", []) + props.get("translate", [])
    if (decl := _first(moves, _translates_far)):
        return _said(decl)
    return None


def _faint(value: str) -> bool:
    value = value.strip()
    try:
        number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        return False
    return number < 0.1


def _tiny(value: str) -> bool:
    size = length(value, 16.0)
    return size is not None and size < MIN_PX


def _no_line(value: str) -> bool:
    """A line-height that leaves no room for a line (0, or a tiny multiple of the size)."""
    try:
        return float(value) < 0.1
    except ValueError:
        size = length(value, 16.0)
        return size is not None and size < 1


def _far(value: str) -> bool:
    match = _LENGTH.fullmatch(value.strip())
    if not match:
        return False
    if (match.group(2) or "").lower() in ("%", "vw", "vh", "vmin", "vmax"):
        return abs(float(match.group(1))) >= 100
    size = length(value, 16.0)
    return size is not None and abs(size) >= FAR_PX


def _translates_far(value: str) -> bool:
    for name, args in _FUNCTION.findall(value):
        name = name.lower()
        if name.startswith("translate") and any(_far(a) for a in re.split(r"[\s,]+", args)):
            return True
    return value.split() != [] and "(" not in value and any(_far(p) for p in value.split())


def _clip_path_hides(value: str) -> bool:
    """``inset()`` that meets in the middle, ``circle(0)``, ``ellipse()`` with a zero radius."""
    for name, args in _FUNCTION.findall(value):
        parts = args.split(" round ")[0].split(" at ")[0].split()
        name = name.lower()
        if name == "inset" and parts:
            top, right, bottom, left = _sides(parts)
            if any(_percent(a) + _percent(b) >= 100 for a, b in ((top, bottom), (left, right))):
                return True
        if name in ("circle", "ellipse") and parts and any(length(p, 16.0) == 0
                                                            for p in parts):
            return True
    return False


def _sides(parts: list[str]) -> tuple[str, str, str, str]:
    """top, right, bottom, left of a 1- to 4-value shorthand, as CSS expands it."""
    top = parts[0]
    right = parts[1] if len(parts) > 1 else top
    bottom = parts[2] if len(parts) > 2 else top
    left = parts[3] if len(parts) > 3 else right
    return top, right, bottom, left


def _percent(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)%", value.strip())
    return float(match.group(1)) if match else 0.0


def _clip_rect_hides(value: str) -> bool:
    """``clip: rect(top, right, bottom, left)`` whose window is under a readable size."""
    for name, args in _FUNCTION.findall(value):
        parts = [p for p in re.split(r"[\s,]+", args.strip()) if p]
        if name.lower() != "rect" or len(parts) != 4:
            continue
        top, right, bottom, left = (length(p, 16.0) for p in parts)
        if (top is not None and bottom is not None and bottom - top < MIN_PX) or (
                left is not None and right is not None and right - left < MIN_PX):
            return True
    return False


def _scale(path: list[HtmlElement], sources: StyleSources) -> tuple[float, str]:
    """The smallest factor that transforms and zoom on the element and its ancestors may
    shrink it by, and the declaration that shrinks it most."""
    total, worst, worst_factor = 1.0, "", 1.0
    for node in path:
        props = sources.props(node)
        for decl in props.get("transform", []) + props.get("scale", []) + props.get("zoom", []):
            factor = _factor(decl)
            if factor < worst_factor:
                worst, worst_factor = _said(decl), factor
            total *= min(factor, 1.0)
    return total, worst


def _numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"[+-]?(?:\d+\.?\d*|\.\d+)", text)]


def _factor(decl: Declaration) -> float:
    """How much one transform, ``scale`` or ``zoom`` declaration shrinks (1 = not at all)."""
    if decl.prop in ("scale", "zoom"):
        values = _numbers(decl.value)
        if decl.value.strip().endswith("%"):
            values = [v / 100 for v in values]
        if decl.prop == "zoom" and values == [0.0]:
            return 1.0  # zoom: 0 is read as 1 by browsers
        return min((abs(v) for v in values), default=1.0)
    factor = 1.0
    for name, args in _FUNCTION.findall(decl.value):
        name, values = name.lower(), _numbers(args)
        if name in ("scale", "scalex", "scaley", "scale3d") and values:
            factor = min(factor, *(abs(v) for v in values[:2]))
        elif name in ("matrix", "matrix3d") and len(values) >= 4:
            a, b, c, d = (values[0], values[1], values[4], values[5]) if name == "matrix3d" \
                and len(values) >= 6 else values[:4]
            factor = min(factor, abs(a * d - b * c) ** 0.5, (a * a + b * b) ** 0.5,
                         (c * c + d * d) ** 0.5)
    return factor


def _transparent(path: list[HtmlElement], sources: StyleSources) -> str | None:
    """Text whose colour (nearest setting wins, as colour inherits) may be see-through."""
    for prop in ("color", "-webkit-text-fill-color"):
        for node in path:
            decls = sources.props(node).get(prop, [])
            if decls:
                if (decl := _first(decls, _see_through)):
                    return _said(decl)
                break
    return None


def _see_through(value: str) -> bool:
    """``transparent``, or an alpha under 0.1: ``#0000``, ``rgba(0,0,0,0)``, ``rgb(0 0 0 / 0)``."""
    value = value.replace(" ", "")
    if value == "transparent" or re.fullmatch(r"#[0-9a-f]{3}0|#[0-9a-f]{6}00", value):
        return True
    found = re.fullmatch(r"(?:rgba?|hsla?)\((.*)\)", value)
    if not found:
        return False
    inner = found.group(1)
    if "/" in inner:
        return _faint(inner.rsplit("/", 1)[1])
    parts = inner.split(",")
    return len(parts) == 4 and _faint(parts[3])
