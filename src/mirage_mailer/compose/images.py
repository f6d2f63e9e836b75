"""Images an article shows, as inline MIME parts: found by the name the writer gave, named
safely in the message.

Markdown and the HTML cleaner percent-encode an image's address (``été.png`` becomes
``%C3%A9t%C3%A9.png``, a space ``%20``) and escape it for HTML; the file is looked up by the
decoded name (``project.image_refs``, which checked it on loading) and problems quote that
name, as the writer knows it. In the message the
name goes into ``Content-Disposition`` RFC 2231-encoded by the email package (raw UTF-8 there
is invalid without SMTPUTF8), and the Content-ID gets an ASCII form of it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from email import policy
from email.message import MIMEPart
from pathlib import Path

from mirage_mailer.project.content import Article
from mirage_mailer.project.image_files import FIX, NotAnImage, check_image, sniff
from mirage_mailer.project.image_refs import REMOTE, find_image, written_name
from mirage_mailer.util.errors import Collector, InputError, Problem, display_path, shorten

_IMG_SRC = re.compile(r'(<img\b[^>]*?\ssrc=")([^"]*)(")')  # anywhere in the cleaned tag
_NOT_ID = re.compile(r"[^A-Za-z0-9]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_READABLE = 24  # characters of the file name in a Content-ID, for people reading logs
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # cid:, https:, data: ...: not a file


@dataclass(frozen=True)
class InlineImage:
    cid: str
    filename: str
    mime: str
    data: bytes

    def part_headers(self) -> bytes:
        """The MIME headers of this image's part (LF line ends, before its base64 body)."""
        part = MIMEPart(policy=policy.default)
        part["Content-Type"] = self.mime
        part["Content-Transfer-Encoding"] = "base64"
        part.add_header("Content-Disposition", "inline",
                        filename=_CONTROL.sub("_", self.filename))
        folded = {name: policy.default.fold_binary(name, value) for name, value in part.items()}
        # The Content-ID by hand: the stdlib's folder turned an id longer than a line (a long
        # file name) into RFC 2047 words, which match no ``cid:`` link: a broken image.
        return b"".join([folded["Content-Type"], folded["Content-Transfer-Encoding"],
                         f"Content-ID: <{self.cid}>\n".encode("ascii"),
                         folded["Content-Disposition"]])


def content_id(number: int, name: str, data: bytes) -> str:
    """``img<n>.<digest>.<ascii name>@mirage-mailer``: a valid msg-id (RFC 5322 dot-atom),
    unique in the message by ``number``, readable (``été.png`` -> ``...ete.png``); a name
    with no ASCII letters keeps only its extension.

    The digest of the bytes makes it unique across messages too, as RFC 2045 asks: Apple
    Mail on iOS caches inline images by Content-ID across messages, so next month's
    ``photo.jpg`` under the same id showed this month's picture. Same bytes, same id: a
    cached copy is then the right picture."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = [word for word in (_NOT_ID.sub("-", part).strip("-")
                               for part in ascii_name.split(".")) if word]
    digest = hashlib.sha256(data).hexdigest()[:16]
    readable = ".".join(words)[:_READABLE].rstrip(".-")  # the header stays one short line
    return ".".join(filter(None, [f"img{number}", digest, readable])) + "@mirage-mailer"


def inline_image(path: Path, images: dict[Path, InlineImage]) -> str:
    """``cid:`` URL of the part for ``path``, adding the part on first use. Its MIME type
    comes from the bytes (``image_files``), never from the name; a file that is no image
    (changed since it was loaded and checked) is refused."""
    if path not in images:
        data = path.read_bytes()
        mime = sniff(data[:16])
        if mime is None:
            raise InputError(Problem(display_path(path), None,
                                     f"image '{shorten(path.name, 200)}' is not a PNG, JPEG "
                                     "or GIF image", FIX))
        images[path] = InlineImage(content_id(len(images) + 1, path.name, data), path.name,
                                   mime, data)
    return f"cid:{images[path].cid}"


def embed_body_images(html: str, article: Article, images: dict[Path, InlineImage],
                      problems: Collector) -> str:
    """Relative ``<img src>`` in an article become CID parts (mail has no base URL). The
    files were checked when the article was loaded (``project.image_refs``)."""
    def replace(match: re.Match[str]) -> str:
        src = match.group(2)
        if REMOTE.match(src):
            return match.group(0)
        name = written_name(src)
        line = _line_of(article, name, src)
        folder = article.path.parent
        path = find_image(folder, src)
        if path is None or path not in article.images:
            problems.add(article.path, line, f"image '{shorten(name, 200)}' not found",
                         "put it in the issue folder")
            return match.group(0)
        try:
            return f"{match.group(1)}{inline_image(path, images)}{match.group(3)}"
        except InputError as exc:
            problems.problems.extend(exc.problems)
            return match.group(0)
    return _IMG_SRC.sub(replace, html)


def _line_of(article: Article, *needles: str) -> int:
    """The line of the first of ``needles`` found in the body (else the body's first)."""
    for needle in needles:
        index = article.body.find(needle)
        if index >= 0:
            return article.body_line + article.body[:index].count("\n")
    return article.body_line


def embed_template_images(html: str, templates: Path,
                          images: dict[Path, InlineImage]) -> tuple[str, list[Problem]]:
    """A relative ``<img src>`` the templates write (a logo in templates/) becomes a CID part,
    as an article's image does: mail has no base URL, so such an image reached every reader
    broken while validate passed. Its file must be a real image inside templates/."""
    problems: list[Problem] = []

    def replace(match: re.Match[str]) -> str:
        src = match.group(2)
        if not src.strip() or _SCHEME.match(src) or "__MM_" in src:  # slots: per reader
            return match.group(0)
        name = written_name(src)
        path = find_image(templates, src)
        if path is None:
            problems.append(Problem(*_template_line(templates, src, name),
                                    f"image '{shorten(name, 200)}' not found in "
                                    f"{display_path(templates)}/", "put the image file in "
                                    "that folder and give its name, or give its full "
                                    "https:// address"))
            return match.group(0)
        try:
            check_image(path)
            return f"{match.group(1)}{inline_image(path, images)}{match.group(3)}"
        except NotAnImage as exc:  # the templates are read for the line only when it is due
            problems.append(Problem(*_template_line(templates, src, name),
                                    f"image '{shorten(name, 200)}' {exc.reason}", exc.hint))
        except InputError as exc:
            problems.extend(exc.problems)
        return match.group(0)

    return _IMG_SRC.sub(replace, html), problems


def _template_line(templates: Path, *needles: str) -> tuple[str, int | None]:
    """The template file and line that write an image address (the main one if none)."""
    main = templates / "newsletter.html.j2"
    for path in (main, *sorted(templates.glob("**/*.j2"))):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for needle in needles:
            if (index := text.find(needle)) >= 0:
                return display_path(path), text[:index].count("\n") + 1
    return display_path(main), None
