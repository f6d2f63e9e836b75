"""Pixel widths on article images, for Outlook.

Outlook on Windows lays mail out with Word, which ignores ``max-width`` and percentage
widths on images: an image is drawn at its ``width`` attribute in pixels, or else at its
natural size, so a 1,600-pixel photo pushed a 600-pixel newsletter four times wider. Other
clients follow the inline style (``width: 100%``, ``max-width: 100%``, ``height: auto``),
which wins over the attribute, so they are unchanged.

So after the CSS is inlined, each image the message carries (a ``cid:`` part whose bytes we
hold) gets ``width`` = its natural width (what a browser shows), at most ``MAX_WIDTH``, when
its ``width`` is missing, a percentage, or wider than that. Only the header is read
(``imagesize``: dimensions of PNG, JPEG, GIF, WebP and others without decoding, EXIF
rotation included); an image it cannot read keeps what it had. ``height="auto"``, which
premailer writes from ``height: auto`` and which is no HTML (a height is a number of pixels),
is dropped: a client that reads it can only guess.
"""

from __future__ import annotations

import io
import re
from collections.abc import Collection

from mirage_mailer.compose.images import InlineImage

MAX_WIDTH = 552  # the content width of a 600-pixel layout (the templates `init` writes)

_IMG = re.compile(r"<img\b[^>]*>", re.I)
_SRC = re.compile(r'\ssrc="cid:([^"]+)"', re.I)
_WIDTH = re.compile(r'\swidth="([^"]*)"', re.I)
_AUTO_HEIGHT = re.compile(r'\sheight="auto"', re.I)


def natural_sizes(images: Collection[InlineImage]) -> dict[str, tuple[int, int]]:
    """Content-ID -> (width, height) in pixels, for the images whose header can be read."""
    sizes: dict[str, tuple[int, int]] = {}
    if not images:
        return sizes
    import imagesize  # it imports urllib.request and xml (10 ms): only for an issue with images

    for image in images:
        try:
            width, height = imagesize.get(io.BytesIO(image.data))
        except Exception:  # a damaged or hostile file: its size stays unknown
            continue
        if width > 0 and height > 0:
            sizes[image.cid] = (width, height)
    return sizes


def outlook_widths(html: str, images: Collection[InlineImage]) -> str:
    """``html`` with pixel ``width`` attributes on its images (see the module's docstring)."""
    widths = {cid: width for cid, (width, _height) in natural_sizes(images).items()}

    def fix(match: re.Match[str]) -> str:
        tag = _AUTO_HEIGHT.sub("", match.group(0))
        src = _SRC.search(tag)
        natural = widths.get(src.group(1)) if src else None
        if natural is None:
            return tag
        wanted = min(natural, MAX_WIDTH)
        current = _WIDTH.search(tag)
        if current is None:
            return f'{tag[:4]} width="{wanted}"{tag[4:]}'
        value = current.group(1).strip()
        if value.isdigit() and int(value) <= MAX_WIDTH:
            return tag  # the template's own pixel width
        return f'{tag[:current.start()]} width="{wanted}"{tag[current.end():]}'

    return _IMG.sub(fix, html)
