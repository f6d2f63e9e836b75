"""The sent newsletter fits a phone without media queries, and keeps 600 px on a desktop.

Gmail's apps with non-Google accounts, several Android and webmail clients, and every client
that strips ``<style>`` ignore the ``@media`` rules; premailer has inlined the rest. The
template `init` writes is fluid by itself (100 % wide, at most 600 px, a ghost table in MSO
conditional comments for Outlook on Windows), so the message is judged as sent: its HTML part
from the Maildir, in Chromium, with every media rule deleted.
"""

from __future__ import annotations

import base64
import email
import os
import re
import subprocess
import sys
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from browser import ARTIFACTS, browser
from helpers import SAMPLE_ISSUE
from mirage_mailer.compose.disclaimer import EMBLEM_ALT, FUNDED
from mirage_mailer.project.scaffold import init_project
from support.images import png

# A code line and a URL longer than a phone is wide, and a photo wider than the layout.
EXTRA = ("\n![A wide photo](wide.png)\n\n    curl -fsSL https://ec.europa.eu/info/funding-tenders/"
         "opportunities/portal/screen/opportunities/topic-details/amif-2024-tf2-ag-call-01\n")
DROP_MEDIA = """() => {
    let dropped = 0;
    for (const sheet of document.styleSheets) {
        for (let i = sheet.cssRules.length - 1; i >= 0; i--) {
            if (sheet.cssRules[i] instanceof CSSMediaRule) { sheet.deleteRule(i); dropped++; }
        }
    }
    return dropped;
}"""
MEASURE = """() => {
    const box = (el) => el.getBoundingClientRect();
    const container = document.querySelector('table.container');
    const emblem = document.querySelector('img.eu-emblem');
    const statement = document.querySelector('.eu-statement');
    return {scrollWidth: document.documentElement.scrollWidth,
            clientWidth: document.documentElement.clientWidth,
            container: box(container).width, containerLeft: box(container).left,
            images: [...document.images].map((img) => [img.alt, box(img).right, img.complete
                                                       && img.naturalWidth > 0]),
            emblem: [box(emblem).width, box(emblem).top, box(emblem).bottom],
            statement: [box(statement).width, box(statement).top, box(statement).bottom]};
}"""


def message_of(outbox: Path, recipient: bytes) -> EmailMessage:
    raw = next(data for path in (outbox / "new").iterdir()
               if recipient in (data := path.read_bytes()))
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture(scope="module")
def sent_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The English HTML part as sent, its ``cid:`` images made data URIs a page can load."""
    root = tmp_path_factory.mktemp("fluid") / "proj"
    init_project(root)
    folder = root / SAMPLE_ISSUE
    (folder / "wide.png").write_bytes(png(1600, 400))
    article = folder / "partners-meeting.md"
    text = article.read_text(encoding="utf-8")
    text = text.replace("\n---\n", "\nimage: wide.png\nimage_alt: The partners\n---\n", 1)
    article.write_text(text + EXTRA, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE, "--yes"],
                          cwd=root, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    message = message_of(root / "outbox", b"\nTo: Maria Georgiou <maria.georgiou@")
    body = message.get_body(("html",))
    assert body is not None
    html = str(body.get_content())
    for part in message.walk():
        if part.get_content_maintype() == "image":
            cid = str(part["Content-ID"]).strip("<>")
            data = base64.b64encode(part.get_payload(decode=True)).decode("ascii")
            html = html.replace(f"cid:{cid}", f"data:{part.get_content_type()};base64,{data}")
    assert "cid:" not in html
    return html


def measure(html: str, width: int, *, media: bool) -> dict[str, Any]:
    with browser() as chromium:
        page: Any = chromium.new_page(viewport={"width": width, "height": 800})  # type: ignore[attr-defined]
        page.set_content(html, wait_until="load", timeout=20_000)
        if not media:
            assert page.evaluate(DROP_MEDIA) > 0, "the template has no media query to drop"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"fluid-{width}px-{'media' if media else 'none'}"
                                             ".png"), full_page=True)
        found: dict[str, Any] = page.evaluate(MEASURE)
        return found


@pytest.mark.parametrize("width", [320, 375])
def test_a_phone_without_media_queries_gets_no_sideways_scroll(sent_html: str,
                                                               width: int) -> None:
    found = measure(sent_html, width, media=False)
    assert found["clientWidth"] == width
    assert found["scrollWidth"] <= width, f"{found['scrollWidth']}px wide at {width}px: {found}"
    assert found["container"] <= width, found
    for alt, right, loaded in found["images"]:
        assert right <= width, f"image {alt!r} ends at {right}px at {width}px"
        assert loaded, f"image {alt!r} did not load"
    assert any(alt == "The partners" for alt, _, _ in found["images"])
    # the EU block shrinks: the statement stays live text beside the full-size emblem
    emblem_width, emblem_top, emblem_bottom = found["emblem"]
    statement_width, statement_top, statement_bottom = found["statement"]
    assert emblem_width == 90, found
    assert statement_top < emblem_bottom and statement_bottom > emblem_top, found
    assert statement_width >= 150, found


def test_a_desktop_gets_the_600_pixel_layout_centred(sent_html: str) -> None:
    found = measure(sent_html, 1024, media=False)
    assert found["container"] == 600, found
    assert found["containerLeft"] == (1024 - 600) / 2, found
    assert found["scrollWidth"] <= 1024, found


def test_media_queries_still_stack_the_eu_block_on_a_phone(sent_html: str) -> None:
    """Where media queries work they stay a progressive enhancement: emblem above statement."""
    found = measure(sent_html, 375, media=True)
    assert found["scrollWidth"] <= 375 and found["container"] == 375, found
    assert found["statement"][1] >= found["emblem"][2], found


def test_outlook_ghost_table_survives_into_the_sent_message(sent_html: str) -> None:
    """premailer and the MIME encoding keep the conditional comments, in order around the
    fluid container: Word reads only the 600 px table, other clients only the fluid one."""
    opening = re.search(r'<!--\[if mso\]><table role="presentation" align="center" '
                        r'width="600"[^>]*><tr><td width="600"><!\[endif\]-->', sent_html)
    container = re.search(r'<table role="presentation" class="container"[^>]*>', sent_html)
    closing = sent_html.rfind("<!--[if mso]></td></tr></table><![endif]-->")
    assert opening and container and closing > 0, sent_html[:3000]
    assert opening.end() <= container.start() < closing
    assert 'width="100%"' in container.group(0)
    assert re.search(r'style="[^"]*\bwidth:100%;[^"]*max-width:600px', container.group(0))
    assert 'width="600"' not in container.group(0)
    assert f'alt="{EMBLEM_ALT}"' in sent_html and FUNDED in sent_html
