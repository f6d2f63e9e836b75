"""Images whose file names have accents, spaces or quotes: found by the name the writer gave
(Markdown and the HTML cleaner percent-encode it), named as written in messages, and carried in
valid MIME headers (RFC 2231 for the file name, an ASCII Content-ID)."""

from __future__ import annotations

import email
import hashlib
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.compose.images import content_id
from mirage_mailer.compose.render import emblem_bytes
from support.images import png

ARTICLE = f"{SAMPLE_ISSUE}/partners-meeting.md"
NAMES = ("été.png", "team photo.png", 'a"b;c.png')
BODY = ("---\ntitle: Images\n---\n![Summer in Nicosia](été.png)\n\n"
        "![The team](team%20photo.png)\n\n![The team again](<team photo.png>)\n\n"
        "<img src='a\"b;c.png' alt=\"A quote\">\n")


def images_in(project: Path, body: str, names: tuple[str, ...] = NAMES) -> None:
    for name in names:
        (project / SAMPLE_ISSUE / name).write_bytes(emblem_bytes())
    (project / ARTICLE).write_text(body, encoding="utf-8")


def english_mail(project: Path) -> bytes:
    """The raw message to an English reader (the French ones carry the French article)."""
    found = [path.read_bytes() for path in (project / "outbox/new").iterdir()]
    return next(raw for raw in found if b"\nTo: Maria Georgiou <maria.georgiou@" in raw)


def image_parts(project: Path) -> list[EmailMessage]:
    message = email.message_from_bytes(english_mail(project), policy=policy.default)
    return [part for part in message.walk()  # type: ignore[misc]
            if isinstance(part, EmailMessage) and part.get_content_maintype() == "image"]


def test_body_images_are_found_by_the_name_as_written(project: Path, run_cli: RunCli) -> None:
    images_in(project, BODY)
    result = run_cli("preview", SAMPLE_ISSUE, "--lang", "en")
    assert result.code == 0, result.err
    out = project / "preview/2021-10-partners-meeting"
    html = (out / "en.html").read_text(encoding="utf-8")
    for number, name in enumerate(NAMES, 1):  # the file beside the page, named as a URL
        assert (out / f"en.{number}.{name}").read_bytes() == emblem_bytes()
        assert f'src="{quote(f"en.{number}.{name}")}"' in html


def test_a_missing_image_is_named_as_written(project: Path, run_cli: RunCli) -> None:
    images_in(project, "---\ntitle: Images\n---\nIntro.\n\n![Summer](ça.png)\n\n"
                       "![Team](our%20team.png)\n", names=())
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    errors = [line for line in result.err.splitlines() if ": warning:" not in line]
    assert errors[:2] == [
        f"{ARTICLE}:6: image 'ça.png' not found (put it in the issue folder)",
        f"{ARTICLE}:8: image 'our team.png' not found (put it in the issue folder)"]


def test_image_parts_have_valid_headers(project: Path, run_cli: RunCli) -> None:
    images_in(project, "---\ntitle: Images\nimage: été.png\nimage_alt: Summer in Nicosia\n"
                       "---\nBody.\n\n![The team](team%20photo.png)\n")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    parts = image_parts(project)
    names = [part.get_filename() for part in parts]
    assert names == ["team photo.png", "été.png", "eu-emblem.png"]  # body, front matter
    for part in parts:
        assert not part["Content-Disposition"].defects
        cid = part["Content-ID"]
        assert cid.isascii() and re.fullmatch(r"<[A-Za-z0-9.-]+@mirage-mailer>", cid), cid
    assert re.fullmatch(r"<img2\.[0-9a-f]{16}\.ete\.png@mirage-mailer>", parts[1]["Content-ID"])
    raw = english_mail(project)
    assert b"filename*=utf-8''%C3%A9t%C3%A9.png" in raw
    assert raw.isascii()


def test_content_ids_are_ascii_dot_atoms() -> None:
    digest = hashlib.sha256(b"x").hexdigest()[:16]
    assert content_id(1, "été.png", b"x") == f"img1.{digest}.ete.png@mirage-mailer"
    assert content_id(2, "team photo.png", b"x") == f"img2.{digest}.team-photo.png@mirage-mailer"
    assert content_id(3, 'a"b;c.png', b"x") == f"img3.{digest}.a-b-c.png@mirage-mailer"
    assert content_id(4, "صورة.png", b"x") == f"img4.{digest}.png@mirage-mailer"
    assert content_id(5, "..x..png", b"x") == f"img5.{digest}.x.png@mirage-mailer"


def test_content_ids_differ_for_different_pictures_of_one_name(
        project: Path, run_cli: RunCli) -> None:
    """RFC 2045 7: a Content-ID is world-unique. Apple Mail on iOS caches inline images by
    it across messages, so next issue's ``été.png`` under this issue's id showed the old
    picture; the same bytes may share an id (a cached copy is then the right picture)."""
    images_in(project, "---\ntitle: Images\nimage: été.png\nimage_alt: Summer in Nicosia\n"
                       "---\nBody.\n")
    out = project / "out"
    assert run_cli("preview", SAMPLE_ISSUE, "--out", str(out / "a")).code == 0
    photo = project / SAMPLE_ISSUE / "été.png"
    photo.write_bytes(png(rgb=b"\x00\xc8\x00"))
    assert run_cli("preview", SAMPLE_ISSUE, "--out", str(out / "b")).code == 0
    again = run_cli("preview", SAMPLE_ISSUE, "--out", str(out / "c"))
    assert again.code == 0

    def photo_cid(folder: str) -> str:
        mail = message_from_bytes((out / folder / "en.eml").read_bytes(), policy=policy.default)
        return next(str(p["Content-ID"]) for p in mail.walk()
                    if p.get_filename() == "été.png")

    assert photo_cid("a") != photo_cid("b")
    assert photo_cid("b") == photo_cid("c")


def test_a_long_file_name_keeps_a_matching_content_id(project: Path, run_cli: RunCli) -> None:
    """A Content-ID longer than a header line was folded by the stdlib into RFC 2047 words
    (``Content-ID: =?utf-8?q?=3Cimg1...``), which no ``cid:`` link matches: the picture
    showed as broken in every client."""
    long_name = "partners-meeting-nicosia-2021-group-photo-of-everyone-who-came.png"
    images_in(project, f"---\ntitle: Images\nimage: {long_name}\nimage_alt: Everyone\n"
                       "---\nBody.\n", names=(long_name,))
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    raw = english_mail(project)
    head_lines = [line for line in raw.split(b"\n") if line.startswith(b"Content-ID:")]
    assert head_lines and all(b"=?" not in line and len(line) <= 78 for line in head_lines)
    message = email.message_from_bytes(raw, policy=policy.default)
    html = message.get_body(("html",))
    assert html is not None
    photo = next(part for part in image_parts(project) if part.get_filename() == long_name)
    assert f'src="cid:{str(photo["Content-ID"])[1:-1]}"' in html.get_content()
