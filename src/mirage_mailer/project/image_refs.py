"""The images an article's body shows (Markdown ``![...](...)`` and raw ``<img>``), checked
when the article is loaded, so ``validate`` names the file and line.

Every image a message carries is a file of the issue folder: the HTML cleaner drops an
address a mail cannot use (``C:/Users/me/chart.png``, ``data:``, ``cid:``), and the reader
got an ``<img>`` with no picture. So such an address is an error here, a file is checked by
``image_files`` (a real PNG, JPEG or GIF), and a remote image is left to the web, except a
remote 1x1 image: that is a third-party tracking pixel, outside the project's own open
tracking (which needs the reader's consent, see docs/guide/web.md), and is warned about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import unquote

from markdown_it.token import Token

from mirage_mailer.project.article_text import article_tokens
from mirage_mailer.project.image_files import NotAnImage, check_image
from mirage_mailer.project.issue_values import inside, is_file
from mirage_mailer.util.errors import Collector, shorten
from mirage_mailer.util.pathfaults import LOCALE_FIX, fits_locale, locale_name_said

REMOTE = re.compile(r"^https?:", re.I)
PIXEL_SIDE = 2  # a remote image this small shows nothing: it counts who opened the mail
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_IMG_TAG = re.compile(r"<img\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.I)


def _attribute(name: str) -> re.Pattern[str]:
    return re.compile(r"\s" + name + r"\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))", re.I)


_SRC, _WIDTH, _HEIGHT = _attribute("src"), _attribute("width"), _attribute("height")


@dataclass(frozen=True)
class ImageRef:
    """One image of a body: its line in the file and its address as the parser gives it."""

    line: int
    src: str
    width: str | None = None  # raw <img> only: Markdown gives no size
    height: str | None = None


def written_name(src: str) -> str:
    """The file name as the writer wrote it: Markdown and the HTML cleaner percent-encode
    an address (``été.png`` is ``%C3%A9t%C3%A9.png``) and escape it for HTML."""
    return unquote(unescape(src))


def find_image(folder: Path, src: str) -> Path | None:
    """The file of ``folder`` an image address names (symlinks resolved), or None. A file
    whose name holds a '%' code is found as it is written, too."""
    for candidate in (folder / written_name(src), folder / unescape(src)):
        if inside(candidate, folder) and is_file(candidate):
            return candidate.resolve()
    return None


def image_refs(body: str, body_line: int) -> list[ImageRef]:
    """Every image of ``body`` in order, with the line of the file it is on."""
    refs: list[ImageRef] = []
    for block in article_tokens(body):
        line = body_line + (block.map[0] if block.map else 0)
        if block.type == "html_block":
            refs += _raw(line, block.content)
        elif block.type == "inline" and block.children:
            refs += _inline(line, block.children)
    return refs


def _inline(line: int, children: list[Token]) -> list[ImageRef]:
    refs: list[ImageRef] = []
    for child in children:
        if child.type in ("softbreak", "hardbreak"):
            line += 1
        elif child.type == "image":
            refs.append(ImageRef(line, str(child.attrs.get("src", ""))))
        elif child.type == "html_inline":
            refs += _raw(line, child.content)
    return refs


def _raw(line: int, html: str) -> list[ImageRef]:
    refs = []
    for match in _IMG_TAG.finditer(html):
        tag = match.group(0)
        src, width, height = (_value(pattern, tag) for pattern in (_SRC, _WIDTH, _HEIGHT))
        refs.append(ImageRef(line + html[: match.start()].count("\n"), unescape(src or ""),
                             width, height))
    return refs


def _value(pattern: re.Pattern[str], tag: str) -> str | None:
    found = pattern.search(tag)
    return next((g for g in found.groups() if g is not None), "") if found else None


def check_body_images(path: Path, body: str, body_line: int,
                      problems: Collector) -> tuple[Path, ...]:
    """The files the body's images name, each checked; problems for the others."""
    files: dict[Path, None] = {}
    for ref in image_refs(body, body_line):
        src = ref.src.strip()
        name = shorten(written_name(src), 200)
        if REMOTE.match(src):
            if sides := _pixel(ref):
                problems.add(path, ref.line, f"remote image '{shorten(src, 120)}' is "
                             f"{sides[0]}x{sides[1]} pixels: a tracking pixel, which tells "
                             "another site who opens the mail, without your readers' consent",
                             "remove it; the project's own open tracking is tracking.opens, "
                             "which needs consent: docs/guide/web.md#opens-and-clicks",
                             warning=True)
            continue
        if not src:
            problems.add(path, ref.line, "an image has no file name",
                         "write ![what it shows](photo.png) with a file of the issue folder")
            continue
        if _SCHEME.match(src) or src.startswith(("//", "\\")) or "\\" in src:
            base = re.split(r"[/\\]", written_name(src))[-1]
            example = base if re.fullmatch(r"[^:;,?#]+\.(?:png|jpe?g|gif)", base,
                                           re.I) else "photo.png"
            problems.add(path, ref.line, f"image '{name}' is not a file name in the issue "
                         "folder: a message carries only the images it holds",
                         f"copy the image into the issue folder and write its name, e.g. "
                         f"![...]({shorten(example, 80)})")
            continue
        folder = path.parent
        if not fits_locale(written_name(src)):
            problems.add(path, ref.line, f"image '{name}' {locale_name_said()}", LOCALE_FIX)
            continue
        if not inside(folder / written_name(src), folder):
            problems.add(path, ref.line, f"image '{name}' is outside the issue folder",
                         "copy the image into the issue folder and give its file name")
            continue
        found = find_image(folder, src)
        if found is None:
            problems.add(path, ref.line, f"image '{name}' not found",
                         "put it in the issue folder")
            continue
        if found in files:
            continue
        try:
            check_image(found)
        except NotAnImage as exc:
            problems.add(path, ref.line, f"image '{name}' {exc.reason}", exc.hint)
            continue
        files[found] = None
    return tuple(files)


def _pixel(ref: ImageRef) -> tuple[int, int] | None:
    """Width and height of a remote <img> that say at most ``PIXEL_SIDE`` pixels each."""
    found = [re.fullmatch(r"\s*(\d+)\s*(?:px)?\s*", value or "") for value in
             (ref.width, ref.height)]
    sides = [int(side.group(1)) for side in found if side is not None]
    return (sides[0], sides[1]) if len(sides) == 2 and max(sides) <= PIXEL_SIDE else None
