"""What a file must be to go into a message as an article's image: a PNG, JPEG or GIF by its
content, of a size a mail client can show.

Why the content and not the name: an image is attached to every message, so a file named
``fake.png`` that holds HTML, or ``run.exe``, would reach every reader as an inline part.
The type is read from the first bytes (the PNG, JPEG and GIF signatures), and the MIME type
of the part comes from there. ``imagesize`` (already used for Outlook widths) then reads the
dimensions from the header without decoding; it knows many more formats (WebP, TIFF, SVG...)
and does not say which one it read, so it cannot decide the type, only the size.

WebP is not allowed: Outlook on Windows does not show it, and the EU emblem's readers are
the same readers. The name must end in an image extension too: some relays (Gmail among
them) refuse a message whose parts are named ``.exe`` whatever they hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_IMAGE_BYTES = 10_000_000  # one file; the whole message has its own limit (message_size)
MAX_SIDE = 10_000  # pixels a side: no newsletter photo is wider; a header that says more lies
MAX_PIXELS = 50_000_000  # decoded, 50 Mpx is 200 MB of memory in a mail client
EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif")
FIX = "export it as PNG or JPEG, about 1,100 pixels wide"

_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
               (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))
# what a refused file is, where its first bytes say it: the message names it
_KNOWN = ((b"%PDF", "a PDF document"),
          (b"MZ", "a Windows program"), (b"\x7fELF", "a program"),
          (b"PK\x03\x04", "a ZIP archive (or an Office document)"), (b"BM", "a BMP image"),
          (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"))


@dataclass(frozen=True)
class ImageFile:
    """A file checked to be a PNG, JPEG or GIF image that mail clients can show."""

    path: Path
    mime: str
    size: int  # bytes on disk
    width: int
    height: int


class NotAnImage(Exception):
    """Why a file cannot be an article's image: ``reason`` follows the quoted name."""

    def __init__(self, reason: str, hint: str = FIX) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def sniff(head: bytes) -> str | None:
    """The MIME type the first bytes of a file say, for PNG, JPEG and GIF; else None."""
    return next((mime for magic, mime in _SIGNATURES if head.startswith(magic)), None)


def check_image(path: Path) -> ImageFile:
    """``path`` as an article image, or ``NotAnImage`` saying why not (see the module)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        raise NotAnImage(f"cannot be read: {exc.strerror or exc}",
                         "check that the file is yours to read") from None
    if size == 0:
        raise NotAnImage("is empty (0 bytes)", "copy the image again")
    if size > MAX_IMAGE_BYTES:
        raise NotAnImage(f"is {size / 1_000_000:.1f} MB; an image may be at most "
                         f"{MAX_IMAGE_BYTES // 1_000_000} MB", FIX)
    mime = sniff(head)
    if mime is None:
        raise NotAnImage(f"is not a PNG, JPEG or GIF image: {_what(head)}",
                         "mail clients show only these three reliably, Outlook no WebP: "
                         + FIX)
    if path.suffix.lower() not in EXTENSIONS:
        raise NotAnImage(f"is a {mime.split('/')[1].upper()} image with a name that does "
                         "not end in .png, .jpg, .jpeg or .gif",
                         "rename the file: some relays refuse a message whose parts have "
                         "other names")
    import imagesize  # its own imports cost 10 ms: only for an issue with images

    width, height = imagesize.get(path)
    if width <= 0 or height <= 0:
        raise NotAnImage(f"is a damaged {mime.split('/')[1].upper()} image: its header "
                         "gives no size", "export it again")
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise NotAnImage(f"is {width:,} x {height:,} pixels; at most {MAX_SIDE:,} a side "
                         f"and {MAX_PIXELS // 1_000_000} million pixels", FIX)
    return ImageFile(path, mime, size, width, height)


def _what(head: bytes) -> str:
    """What the first bytes look like, in words a writer knows."""
    if head.startswith(b"RIFF"):
        return "its content is a WebP image" if head[8:12] == b"WEBP" else \
            "its content is a RIFF (sound or video) file"
    for magic, what in _KNOWN:
        if head.startswith(magic):
            return f"its content is {what}"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")):
        return "its content is SVG or other XML"
    if text.startswith(b"<"):
        return "its content is HTML"
    if head[4:8] == b"ftyp":
        return "its content is a HEIC, AVIF or video file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "its content is of another kind"
    return "its content is text"
