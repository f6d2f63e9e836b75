"""An image the templates show (a logo in templates/) travels with the message, as an
article's image does: ``<img src="logo.png">`` was left as written, so every reader's mail
client showed a broken image while validate, preview and send passed. A real CLI run."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, edit

MASTHEAD = '  <tr><td class="masthead">'
PNG = bytes.fromhex(  # a 1x1 PNG
    "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
    "53de0000000c4944415408d763f8ffff3f0005fe02fea7d6a4830000000049454e44ae426082")


def with_logo(project: Path, src: str) -> None:
    edit(project / "templates/newsletter.html.j2", MASTHEAD,
         f'{MASTHEAD}<img src="{src}" alt="MIraGE logo" width="120" height="40">')


def test_a_template_logo_is_embedded_in_every_message(project: Path, run_cli: RunCli) -> None:
    (project / "templates/images").mkdir()
    (project / "templates/images/logo.png").write_bytes(PNG)
    with_logo(project, "images/logo.png")
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.err
    message = email.message_from_bytes(
        next((project / "outbox/new").iterdir()).read_bytes(), policy=policy.default)
    html = next(p for p in message.walk() if p.get_content_type() == "text/html")
    logo = next(p for p in message.walk() if p.get_filename() == "logo.png")
    assert logo.get_content_type() == "image/png" and logo.get_content() == PNG
    cid = str(logo["Content-ID"]).strip("<>")
    assert f'src="cid:{cid}"' in html.get_content()
    assert 'src="images/logo.png"' not in html.get_content()
    preview = run_cli("preview", SAMPLE_ISSUE, "--lang", "en")
    assert preview.code == 0, preview.err
    out = project / "preview" / SAMPLE_ISSUE.split("/")[-1]
    shown = (out / "en.html").read_text(encoding="utf-8")
    assert 'src="en.1.logo.png"' in shown and (out / "en.1.logo.png").read_bytes() == PNG


def test_a_template_image_that_is_missing_is_refused_at_its_line(project: Path,
                                                                 run_cli: RunCli) -> None:
    with_logo(project, "logo.png")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    line = next(n for n, text in enumerate(
        (project / "templates/newsletter.html.j2").read_text("utf-8").splitlines(), start=1)
        if 'src="logo.png"' in text)
    assert (f"templates/newsletter.html.j2:{line}: image 'logo.png' not found in templates/ "
            "(put the image file in that folder and give its name, or give its full "
            "https:// address)") in result.err.splitlines(), result.err


def test_a_remote_template_image_is_left_to_the_web(project: Path, run_cli: RunCli) -> None:
    with_logo(project, "https://www.mirageproject.eu/logo.png")
    assert run_cli("validate", SAMPLE_ISSUE).code == 0
