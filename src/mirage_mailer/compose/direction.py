"""Writing direction of the rendered newsletter: right-to-left languages (Arabic, Persian,
Hebrew, Urdu...) need ``dir="rtl"``, or a browser and every mail client lay them out left to
right and scramble sentences that mix them with Latin words and numbers.

Templates get ``dir`` and ``align`` (see ``render``). A template written before it had them
still gets the direction: ``ensure_direction`` adds it to ``<html>`` and wraps the body in a
``<div dir="rtl">``, because Gmail and other webmail clients drop the attributes of
``<html>`` and ``<body>`` and keep only what sits inside the body.
"""

from __future__ import annotations

import re

from mirage_mailer.util.langs import text_direction

# dir="rtl", dir='rtl' or dir=rtl in any tag: the template took care of the direction itself
_DIR_RTL = re.compile(r"""<[^>]*\sdir\s*=\s*["']?rtl\b""", re.I)
_HTML_TAG = re.compile(r"<html\b[^>]*>", re.I)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.I)
_BODY_CLOSE = re.compile(r"</body\s*>", re.I)
_DIR_ATTR = re.compile(r"\sdir\s*=", re.I)


def start_side(direction: str) -> str:
    """Where lines start (``text-align``) in text of ``direction``: ``right`` for ``rtl``."""
    return "right" if direction == "rtl" else "left"


def direction_values(lang: str) -> tuple[str, str]:
    """``(dir, align)`` for text in ``lang``: ``("rtl", "right")`` or ``("ltr", "left")``."""
    direction = text_direction(lang)
    return direction, start_side(direction)


def ensure_direction(html: str, direction: str) -> str:
    """``html`` with ``dir="rtl"`` where a template that never says ``rtl`` inside the body
    left it out (``<html dir="rtl">`` alone is lost in Gmail).

    Left-to-right is every client's default, so only ``rtl`` needs adding. The body's
    content goes into one ``<div dir="rtl">``; without a ``<body>`` tag the whole output is
    wrapped (unless it has an ``<html>`` tag, which then carries the direction alone).
    """
    if direction != "rtl":
        return html
    opened = _BODY_OPEN.search(html)
    if _DIR_RTL.search(html, opened.end() if opened else 0):
        return html  # the template set it inside the body, where every client sees it
    html_tag = _HTML_TAG.search(html)
    if html_tag and not _DIR_ATTR.search(html_tag.group(0)):
        tag = html_tag.group(0)
        html = html[:html_tag.start()] + tag[:-1] + ' dir="rtl">' + html[html_tag.end():]
    opened = _BODY_OPEN.search(html)
    if opened is None:
        return html if html_tag else f'<div dir="rtl">{html}</div>'
    closes = list(_BODY_CLOSE.finditer(html, opened.end()))
    end = closes[-1].start() if closes else len(html)
    return (html[:opened.end()] + '<div dir="rtl">' + html[opened.end():end] + "</div>"
            + html[end:])
