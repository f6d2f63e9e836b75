"""CSS colours and WCAG 2.1 contrast: what `validate` can say about text colours without a
browser (success criterion 1.4.3, contrast minimum, level AA).

The formulas are WCAG's own: relative luminance of sRGB colours, and the ratio
(L1 + 0.05) / (L2 + 0.05); normal text needs 4.5:1, large text (24 px, or 18.66 px bold) 3:1.
"""

from __future__ import annotations

import re
from functools import lru_cache

RGB = tuple[int, int, int]
NORMAL_TEXT = 4.5
LARGE_TEXT = 3.0
LARGE_PX, LARGE_BOLD_PX = 24.0, 18.66

# The CSS named colours a template realistically uses; any other name is left undecided.
NAMED: dict[str, RGB] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128),
    "grey": (128, 128, 128), "silver": (192, 192, 192), "darkgray": (169, 169, 169),
    "darkgrey": (169, 169, 169), "lightgray": (211, 211, 211), "lightgrey": (211, 211, 211),
    "dimgray": (105, 105, 105), "dimgrey": (105, 105, 105), "gainsboro": (220, 220, 220),
    "whitesmoke": (245, 245, 245), "red": (255, 0, 0), "maroon": (128, 0, 0),
    "orange": (255, 165, 0), "yellow": (255, 255, 0), "gold": (255, 215, 0),
    "green": (0, 128, 0), "lime": (0, 255, 0), "navy": (0, 0, 128), "blue": (0, 0, 255),
    "teal": (0, 128, 128), "aqua": (0, 255, 255), "cyan": (0, 255, 255),
    "purple": (128, 0, 128), "fuchsia": (255, 0, 255), "magenta": (255, 0, 255),
    "olive": (128, 128, 0), "darkblue": (0, 0, 139), "darkred": (139, 0, 0),
    "darkgreen": (0, 100, 0), "lightblue": (173, 216, 230), "pink": (255, 192, 203),
}
_HEX = re.compile(r"#([0-9a-f]{3}|[0-9a-f]{4}|[0-9a-f]{6}|[0-9a-f]{8})")
_FUNC = re.compile(r"rgba?\(\s*([\d.]+%?)\s*[, ]\s*([\d.]+%?)\s*[, ]\s*([\d.]+%?)"
                   r"\s*(?:[,/]\s*([\d.]+%?)\s*)?\)")


def parse_colour(value: str) -> RGB | None:
    """An opaque colour, or None for what cannot be decided here (transparent, a variable,
    a translucent colour, an unknown name)."""
    text = value.strip().lower().replace("!important", "").strip()
    if text in NAMED:
        return NAMED[text]
    hexa = _HEX.fullmatch(text)
    if hexa:
        digits = hexa.group(1)
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits)
        if len(digits) == 8 and digits[6:] != "ff":
            return None
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    func = _FUNC.fullmatch(text)
    if func:
        alpha = func.group(4)
        if alpha is not None and _channel(alpha, 1.0) < 1.0:
            return None
        r, g, b = (round(_channel(func.group(i), 255.0)) for i in (1, 2, 3))
        return min(r, 255), min(g, 255), min(b, 255)
    return None


def _channel(text: str, scale: float) -> float:
    return float(text[:-1]) / 100 * scale if text.endswith("%") else float(text)


def colour_in(value: str) -> RGB | None:
    """The colour in a ``background`` shorthand (``#fff url(x) no-repeat``): None when an
    image or gradient is part of it, since its pixels are unknown."""
    if "url(" in value or "gradient(" in value:
        return None
    for token in re.findall(r"rgba?\([^)]*\)|#[0-9a-fA-F]+|[a-zA-Z]+", value):
        found = parse_colour(token)
        if found is not None:
            return found
    return None


def hex_of(colour: RGB) -> str:
    return "#" + "".join(f"{c:02x}" for c in colour)


@lru_cache(maxsize=1024)
def luminance(colour: RGB) -> float:
    """WCAG 2.1 relative luminance."""
    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else float(((s + 0.055) / 1.055) ** 2.4)
    r, g, b = (linear(c) for c in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ratio(one: RGB, other: RGB) -> float:
    """WCAG 2.1 contrast ratio, from 1 (same) to 21 (black on white)."""
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def needed(size_px: float, bold: bool) -> float:
    """The minimum ratio for text of this size and weight (large text needs less)."""
    large = size_px >= LARGE_PX or (bold and size_px >= LARGE_BOLD_PX)
    return LARGE_TEXT if large else NORMAL_TEXT


def suggest(text: RGB, background: RGB, minimum: float) -> RGB:
    """The text colour nearest to ``text``, same hue, that meets ``minimum`` on
    ``background``: darkened on a light background, lightened on a dark one."""
    darker = luminance(background) > 0.18  # black text wins over white text here
    target = 0 if darker else 255
    for step in range(1, 101):
        share = step / 100
        candidate = tuple(round(c + (target - c) * share) for c in text)
        mixed: RGB = (candidate[0], candidate[1], candidate[2])
        if ratio(mixed, background) >= minimum:
            return mixed
    return (target, target, target)
