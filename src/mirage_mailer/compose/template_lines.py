"""Where in the templates a broken disclaimer rule comes from.

The checker reads the rendered, inlined HTML, so it knows the declaration, selector or tag
that hides the block but not the template line. Its message names them, and this finds the
line that holds them, so the error can say ``templates/newsletter.html.j2:47:``.
"""

from __future__ import annotations

import re
from pathlib import Path

_SELECTOR = re.compile(r"([a-z-]+): (.+?) in the <style> rule '(.+?)'")
_DECLARATION = re.compile(r"([a-z-]+): (.+?) in the style of <")
_INSIDE = re.compile(r"inside (?:a closed |a )?<([a-z]+)>")
_HIDDEN_ATTRIBUTE = re.compile(r"<[a-z][^>]*\shidden[\s=>/]", re.I)


def locate(templates: Path, rule: str) -> tuple[Path, int | None]:
    """The template file and line a hiding rule comes from, found by what its message names
    (a <style> selector and declaration, a style declaration, a wrapping tag); the newsletter
    template without a line when the rendered output cannot be traced back."""
    newsletter = templates / "newsletter.html.j2"
    for path in (newsletter, templates / "partials" / "disclaimer.html.j2"):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeError):
            continue
        line = _line_of(lines, rule)
        if line is not None:
            return path, line
    return newsletter, None


def _line_of(lines: list[str], rule: str) -> int | None:
    flat = ["".join(line.lower().split()) for line in lines]
    if (found := _SELECTOR.search(rule)):
        prop, value, selector = found.groups()
        wanted, declaration = "".join(selector.split()), f"{prop}:{value}".replace(" ", "")
        starts = [n for n, line in enumerate(flat) if wanted in line]
        for n in starts:  # the rule whose block (up to its closing brace) sets the property
            block = "".join(flat[n:n + 20])
            if _declares(block[:block.find("}", block.find(wanted)) + 1], declaration):
                return n + 1
        return starts[0] + 1 if starts else None
    if (found := _DECLARATION.search(rule)):
        wanted = f"{found.group(1)}:{found.group(2)}".replace(" ", "")
    elif (found := _INSIDE.search(rule)) or (found := re.search(r"<(link) rel=", rule)):
        wanted = f"<{found.group(1)}"
    elif "the hidden attribute" in rule:
        return next((n + 1 for n, line in enumerate(lines) if _HIDDEN_ATTRIBUTE.search(line)),
                    None)
    else:
        return None
    return next((n + 1 for n, line in enumerate(flat) if _declares(line, wanted)), None)


def _declares(flat: str, wanted: str) -> bool:
    """``wanted`` in ``flat`` as a whole property (``height:0`` is not in ``max-height:0``)."""
    return re.search(r"(?<![a-z-])" + re.escape(wanted), flat) is not None
