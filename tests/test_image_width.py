"""Images in a newsletter carry a pixel width that Outlook on Windows obeys (it ignores
``max-width`` and percentages, and drew a wide photo at its natural size), and no
``height="auto"`` (no HTML: a height is a number of pixels)."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.compose.image_width import MAX_WIDTH, outlook_widths
from mirage_mailer.compose.images import InlineImage
from support.images import png

ISSUE_DIR = SAMPLE_ISSUE


def english_html(project: Path) -> str:
    mails = [path.read_bytes() for path in (project / "outbox/new").iterdir()]
    raw = next(raw for raw in mails if b"\nTo: Maria Georgiou <maria.georgiou@" in raw)
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def test_sent_images_get_their_width_capped_for_outlook(project: Path, run_cli: RunCli) -> None:
    folder = project / ISSUE_DIR
    (folder / "wide.png").write_bytes(png(1600, 400))
    (folder / "small.png").write_bytes(png(200, 100))
    article = folder / "partners-meeting.md"
    text = article.read_text(encoding="utf-8")
    text = text.replace("\n---\n", "\nimage: wide.png\nimage_alt: The partners\n---\n", 1)
    text += "\n![A wide photo](wide.png)\n\n![A small one](small.png)\n"
    article.write_text(text, encoding="utf-8")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    html = english_html(project)
    tags = {re.search(r'alt="([^"]*)"', tag).group(1): tag  # type: ignore[union-attr]
            for tag in re.findall(r"<img\b[^>]*>", html)}
    assert re.search(r'\swidth="552"', tags["The partners"]), tags  # the template's 100 %
    assert re.search(r'\swidth="552"', tags["A wide photo"]), tags  # natural 1600
    assert re.search(r'\swidth="200"', tags["A small one"]), tags  # natural, not stretched
    assert 'height="auto"' not in html
    # other clients still follow the fluid inline style, which wins over the attribute
    assert "max-width:100%" in tags["A wide photo"]


def image(cid: str, data: bytes) -> InlineImage:
    return InlineImage(cid, f"{cid}.png", "image/png", data)


def test_a_template_pixel_width_within_the_cap_is_kept() -> None:
    images = [image("a@x", png(800, 10)), image("b@x", png(300, 10))]
    html = ('<p><img src="cid:a@x" width="300" alt="kept"><img src="cid:a@x" width="900">'
            '<img src="cid:b@x" width="50%" height="auto"><img src="https://example.org/r.png"'
            ' height="auto" width="100%"></p>')
    assert outlook_widths(html, images) == (
        f'<p><img src="cid:a@x" width="300" alt="kept"><img src="cid:a@x" width="{MAX_WIDTH}">'
        '<img src="cid:b@x" width="300"><img src="https://example.org/r.png" width="100%"></p>')
