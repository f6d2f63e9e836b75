"""An article's images are images.

Any file of the issue folder went into every message as an "image" (an .eml, an HTML page
named .png, a program), addresses a mail cannot carry (``C:/...``, ``data:``) became empty
``<img>`` tags, and the preview wrote an article's ``eu-emblem.png`` over its own emblem.
Real CLI runs on the sample project, real PNG files.
"""

from __future__ import annotations

import email
import struct
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.compose.render import emblem_bytes
from mirage_mailer.project.image_files import NotAnImage, check_image
from support.images import png

ARTICLE = f"{SAMPLE_ISSUE}/online-trainings.md"  # its body starts on line 6
FRONT = "---\ntitle: T\ndate: 2021-10-20\nauthor: MIraGE consortium\n---\n"


def write(project: Path, body: str, files: dict[str, bytes], front: str = FRONT) -> None:
    folder = project / SAMPLE_ISSUE
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (project / ARTICLE).write_text(front + body, encoding="utf-8")


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines()
            if ": warning:" not in line and not line.startswith("mirage-mailer: using")]


def english_message(project: Path) -> EmailMessage:
    raws = [path.read_bytes() for path in (project / "outbox/new").iterdir()]
    raw = next(raw for raw in raws if b"\nTo: Maria Georgiou <maria.georgiou@" in raw)
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


HINT = ("mail clients show only these three reliably, Outlook no WebP: export it as PNG or "
        "JPEG, about 1,100 pixels wide")


def test_files_that_are_not_images_are_refused_by_their_content(project: Path,
                                                                run_cli: RunCli) -> None:
    huge = bytearray(png())
    huge[16:24] = struct.pack(">II", 20_000, 20_000)  # a header that claims 400 Mpx
    write(project, "Hi ![alt](m.eml) ![x](x.html) ![e](run.exe)\n\n![f](fake.png)\n"
          "<img alt=\"w\" src=\"pic.webp\"> ![z](empty.png) ![h](huge.png)\n"
          "![t](truncated.png) ![n](photo.bmp)\n",
          {"m.eml": b"From: ceo@bank.example\nSubject: urgent\n\nwire money now",
           "x.html": b"<script>alert(1)</script>", "run.exe": b"MZ\x90\x00fake exe",
           "fake.png": b"<html><script>alert(2)</script>", "pic.webp":
           b"RIFF\x24\x00\x00\x00WEBPVP8 ", "empty.png": b"", "huge.png": bytes(huge),
           "truncated.png": b"\x89PNG\r\n\x1a\n", "photo.bmp": png(), "cover.jpg":
           b"<html>not a jpeg</html>"},
          front=FRONT.replace("---\n", "---\nimage: cover.jpg\nimage_alt: Cover\n", 1))
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    line = "image '{}' is not a PNG, JPEG or GIF image: its content is {} (" + HINT + ")"
    assert errors(result.err) == [
        f"{ARTICLE}:2: " + line.format("cover.jpg", "HTML"),
        f"{ARTICLE}:8: " + line.format("m.eml", "text"),
        f"{ARTICLE}:8: " + line.format("x.html", "HTML"),
        f"{ARTICLE}:8: " + line.format("run.exe", "a Windows program"),
        f"{ARTICLE}:10: " + line.format("fake.png", "HTML"),
        f"{ARTICLE}:11: " + line.format("pic.webp", "a WebP image"),
        f"{ARTICLE}:11: image 'empty.png' is empty (0 bytes) (copy the image again)",
        f"{ARTICLE}:11: image 'huge.png' is 20,000 x 20,000 pixels; at most 10,000 a side and "
        "50 million pixels (export it as PNG or JPEG, about 1,100 pixels wide)",
        f"{ARTICLE}:12: image 'truncated.png' is a damaged PNG image: its header gives no "
        "size (export it again)",
        f"{ARTICLE}:12: image 'photo.bmp' is a PNG image with a name that does not end in "
        ".png, .jpg, .jpeg or .gif (rename the file: some relays refuse a message whose parts "
        "have other names)"]
    send = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert send.code == 2 and errors(send.err) == errors(result.err)
    assert not (project / "outbox").exists() or not any((project / "outbox").rglob("*.*"))


def test_the_part_type_comes_from_the_content(project: Path, run_cli: RunCli) -> None:
    write(project, "A PNG named .jpg: ![Chart](chart.jpg)\n\n"
          "<img alt=\"Team\" width=\"40\" src=\"team.png\">\n",  # src not first: still a part
          {"chart.jpg": png(8, 8), "team.png": png(40, 40, rgb=b"\x00\x00\xff")})
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    message = english_message(project)
    parts = {part.get_filename(): part for part in message.walk()
             if isinstance(part, EmailMessage) and part.get_content_maintype() == "image"}
    assert {name: part.get_content_type() for name, part in parts.items()} == {
        "chart.jpg": "image/png", "team.png": "image/png", "eu-emblem.png": "image/png"}
    html = message.get_body(("html",))
    assert html is not None
    cid = str(parts["team.png"]["Content-ID"]).strip("<>")
    assert f'src="cid:{cid}"' in str(html.get_content())


def test_an_address_a_message_cannot_carry_is_refused(project: Path, run_cli: RunCli) -> None:
    write(project, "Chart: ![Chart of results](C:/Users/me/chart.png) and "
          "![Logo](data:image/png;base64,iVBORw0KGgo=)\n\n"
          "<img src=\"cid:logo@example\" alt=\"Logo\">\n<img src=\"\" alt=\"Nothing\">\n"
          "<img src=\"\\\\server\\share\\map.gif\" alt=\"Map\">\n", {})
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    what = ("is not a file name in the issue folder: a message carries only the images it "
            "holds (copy the image into the issue folder and write its name, e.g. ![...]({}))")
    assert errors(result.err) == [
        f"{ARTICLE}:6: image 'C:/Users/me/chart.png' " + what.format("chart.png"),
        f"{ARTICLE}:6: image 'data:image/png;base64,iVBORw0KGgo=' " + what.format("photo.png"),
        f"{ARTICLE}:8: image 'cid:logo@example' " + what.format("photo.png"),
        f"{ARTICLE}:9: an image has no file name (write ![what it shows](photo.png) with a "
        "file of the issue folder)",
        f"{ARTICLE}:10: image '\\\\server\\share\\map.gif' " + what.format("map.gif")]


def test_a_remote_tracking_pixel_is_warned_about(project: Path, run_cli: RunCli) -> None:
    write(project, "Text.\n\n<img src=\"https://tracker.example/px.gif?c=x\" width=\"1\" "
          "height=\"1px\" alt=\"\">\n<img src=\"https://www.mirageproject.eu/map.png\" "
          "width=\"300\" height=\"2\" alt=\"Map\">\n", {})
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    pixel = [line for line in result.err.splitlines() if "remote image" in line]
    assert pixel == [
        f"{ARTICLE}:8: warning: remote image 'https://tracker.example/px.gif?c=x' is 1x1 "
        "pixels: a tracking pixel, which tells another site who opens the mail, without your "
        "readers' consent (remove it; the project's own open tracking is tracking.opens, "
        "which needs consent: docs/guide/web.md#opens-and-clicks)"]


def test_preview_images_never_take_the_name_of_a_preview_file(project: Path,
                                                                run_cli: RunCli) -> None:
    team = png(40, 40)
    write(project, "Team: ![Our team](eu-emblem.png)\n", {"eu-emblem.png": team})
    result = run_cli("preview", SAMPLE_ISSUE, "--lang", "en", "--out", "pv")
    assert result.code == 0, result.err
    html = (project / "pv/en.html").read_text(encoding="utf-8")
    assert '<img src="en.1.eu-emblem.png" alt="Our team"' in html.replace(' width="40"', "")
    assert (project / "pv/en.1.eu-emblem.png").read_bytes() == team
    assert 'src="en.2.eu-emblem.png" alt="Flag of the European Union"' in html
    assert (project / "pv/en.2.eu-emblem.png").read_bytes() == emblem_bytes()
    message = email.message_from_bytes((project / "pv/en.eml").read_bytes(),
                                       policy=policy.default)
    images = [part.get_content() for part in message.walk()
              if isinstance(part, EmailMessage) and part.get_content_maintype() == "image"]
    assert images == [team, emblem_bytes()]


def test_sizes_at_the_limits(tmp_path: Path) -> None:
    def header(width: int, height: int) -> Path:
        data = bytearray(png())
        data[16:24] = struct.pack(">II", width, height)
        path = tmp_path / f"{width}x{height}.png"
        path.write_bytes(bytes(data))
        return path

    assert check_image(header(10_000, 5_000)).mime == "image/png"  # 50 Mpx: the limit
    for width, height in ((10_001, 10), (7_072, 7_072)):  # a side, then the pixels
        with pytest.raises(NotAnImage):
            check_image(header(width, height))
    gif = tmp_path / "a.gif"
    gif.write_bytes(b"GIF89a\x02\x00\x03\x00\x00\x00\x00;")
    assert (check_image(gif).mime, check_image(gif).width) == ("image/gif", 2)
