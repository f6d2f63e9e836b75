"""The sample issue previewed: files per language, and a .eml that carries the whole contract."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.compose.disclaimer import AMIF_TEXT, EMBLEM_ALT, FUNDED, normalise_space

PREVIEW = Path("preview/2021-10-partners-meeting")


def parse(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


@pytest.fixture
def previewed(project: Path, run_cli: RunCli) -> Path:
    result = run_cli("preview", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    listed = result.out.split()
    assert listed == [str(PREVIEW / f"{lang}.{ext}") for lang in ("en", "fr")
                      for ext in ("html", "txt", "eml")]
    return project / PREVIEW


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_eml_has_every_contract_header(previewed: Path, lang: str) -> None:
    message = parse(previewed / f"{lang}.eml")
    assert message.get_content_type() == "multipart/alternative"
    for header in ("From", "To", "Subject", "Date", "Message-ID", "List-Id",
                   "List-Unsubscribe", "MIME-Version"):
        assert message[header], header
    assert message["To"] == "Sample Reader <reader@example.org>"
    assert message["From"] == "MIraGE project <news@mirageproject.eu>"
    assert re.fullmatch(r"<[0-9a-f]{32}\.2021-10-partners-meeting@mirageproject\.eu>",
                        message["Message-ID"])
    assert message["List-Id"] == "MIraGE subscribers <subscribers.mirageproject.eu>"
    unsubscribe = str(message["List-Unsubscribe"])
    assert re.fullmatch(r"<mailto:info@mirageproject\.eu\?subject=unsubscribe%20[\w.-]+>",
                        unsubscribe)
    assert "reader@example.org" not in unsubscribe  # the token hides the address
    assert message["List-Unsubscribe-Post"] is None  # no https URL without base_url
    assert message["Content-Language"] == lang
    subject = {"en": "MIraGE news: final partners' meeting and lessons learned",
               "fr": "Nouvelles de MIraGE : dernière réunion des partenaires et leçons apprises"}
    assert message["Subject"] == subject[lang]
    kinds = [p.get_content_type() for p in message.walk()]
    assert kinds == ["multipart/alternative", "text/plain", "multipart/related", "text/html",
                     "image/png"]
    related = next(p for p in message.walk() if p.get_content_type() == "multipart/related")
    assert related.get_param("type") == "text/html"  # RFC 2387 3.1: the root part's type
    for part in message.walk():
        if part.get_content_maintype() == "text":
            assert part.get_content_charset() == "utf-8"


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_disclaimer_in_both_parts(previewed: Path, lang: str) -> None:
    message = parse(previewed / f"{lang}.eml")
    text, html = parts(message)
    assert FUNDED in text and normalise_space(AMIF_TEXT) in normalise_space(text)
    assert FUNDED in html and AMIF_TEXT in html
    assert f'alt="{EMBLEM_ALT}"' in html
    image = next(p for p in message.walk() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<eu-emblem@mirage-mailer>"
    assert 'src="cid:eu-emblem@mirage-mailer"' in html
    assert image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_inlined_table_layout_without_script(previewed: Path) -> None:
    _, html = parts(parse(previewed / "en.eml"))
    assert "<script" not in html.lower()
    assert 'width="600"' in html and 'role="presentation"' in html
    assert 'class="article-title" style="' in html  # premailer moved the CSS inline
    styles = re.findall(r"<style[^>]*>(.*?)</style>", html, re.S)
    assert len(styles) == 1 and "@media" in styles[0]
    assert re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", styles[0]).strip() == ""


def test_unsubscribe_link_visible_and_personal(previewed: Path) -> None:
    text, html = parts(parse(previewed / "en.eml"))
    assert re.search(r'<a href="mailto:info@mirageproject\.eu\?subject=unsubscribe%20[\w.-]+"'
                     r'[^>]*>Unsubscribe</a>', html)
    assert re.search(r"Unsubscribe: mailto:info@mirageproject\.eu\?subject=unsubscribe", text)
    assert "Dear Sample Reader," in text and "Dear Sample Reader," in html


def test_html_file_opens_with_the_emblem_beside_it(previewed: Path) -> None:
    html = (previewed / "en.html").read_text(encoding="utf-8")
    assert 'src="en.1.eu-emblem.png"' in html and "cid:" not in html
    assert (previewed / "en.1.eu-emblem.png").read_bytes()[:4] == b"\x89PNG"
    assert "__MM_" not in html
    assert "__MM_" not in (previewed / "en.txt").read_text(encoding="utf-8")


def test_french_reader_gets_french(previewed: Path) -> None:
    text, html = parts(parse(previewed / "fr.eml"))
    assert "Réunion des partenaires de MIraGE, octobre 2021" in text
    assert "15 octobre 2021" in text
    assert "Se désabonner" in html and 'lang="fr"' in html


def test_text_part_keeps_links_as_footnotes(previewed: Path) -> None:
    text = (previewed / "en.txt").read_text(encoding="utf-8")
    assert "Center of Social Innovation [1]" in text
    assert "[1] https://csicy.com" in text
    assert max(len(line) for line in text.splitlines() if "mailto:" not in line) <= 76


def test_preview_for_a_listed_recipient(project: Path, run_cli: RunCli) -> None:
    result = run_cli("preview", SAMPLE_ISSUE, "--recipient", "JEAN.DUPONT@example.org",
                     "--lang", "fr", "--out", "out")
    assert result.code == 0, result.err
    assert sorted(p.name for p in (project / "out").glob("*.*")) == [
        "fr.1.eu-emblem.png", "fr.eml", "fr.html", "fr.txt"]
    message = parse(project / "out/fr.eml")
    assert message["To"] == "Jean Dupont <jean.dupont@example.org>"
    assert "Bonjour Jean Dupont," in parts(message)[0]


def test_base_url_adds_one_click_unsubscribe_and_keeps_the_emblem_in_the_message(
        project: Path, run_cli: RunCli) -> None:
    """The emblem stays an inline part with a public base URL: a remote image is blocked by
    Outlook and Thunderbird until the reader allows it, and the funding rules want it seen."""
    edit(project / "mirage.yaml", "  # base_url: https://news.mirageproject.eu",
         "  base_url: https://news.mirageproject.eu")
    assert run_cli("preview", SAMPLE_ISSUE, "--lang", "en").code == 0
    message = parse(project / PREVIEW / "en.eml")
    https, mailto = (u.strip() for u in str(message["List-Unsubscribe"]).split(","))
    assert re.fullmatch(r"<https://news\.mirageproject\.eu/u/[\w.-]+>", https)
    assert mailto.startswith("<mailto:info@mirageproject.eu?subject=unsubscribe%20")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    _, html = parts(message)
    assert "https://news.mirageproject.eu/static/eu-emblem.png" not in html
    assert 'src="cid:eu-emblem@mirage-mailer"' in html
    assert "View this issue in your browser" in html
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"]


def test_preview_records_nothing(previewed: Path, project: Path) -> None:
    assert not (project / ".mirage/tracking.sqlite").exists()
    assert not (project / "outbox").exists()


@pytest.mark.parametrize(("typed", "says"), [
    ("a@b.org\r\nBcc: evil@x.org", "contains a line break (CR/LF)"),
    ("a b@@x", "'a b@@x' is not a valid e-mail address"),
    ("nobody", "'nobody' is not a valid e-mail address: An email address must have an @-sign"),
])
def test_a_bad_recipient_is_one_line_and_exit_2_as_for_send_to(
        project: Path, run_cli: RunCli, typed: str, says: str) -> None:
    result = run_cli("preview", SAMPLE_ISSUE, "--recipient", typed)
    assert result.code == 2, result.err
    (line,) = result.err.splitlines()
    assert line.startswith(f"--recipient: {says}") and line.endswith(
        "(give a complete address)"), line
    assert "evil" not in line  # the injected header is not echoed
    assert not (project / "preview").exists()
    sent = run_cli("send", SAMPLE_ISSUE, "--to", typed)  # the same words as send --to
    assert sent.code == 2 and sent.err == result.err.replace("--recipient", "--to")


def test_a_removed_image_leaves_no_stale_file(project: Path, run_cli: RunCli) -> None:
    """A photo dropped from the issue must not stay beside the .html as if it were sent;
    another language's files and the officer's own files are left alone."""
    out = project / PREVIEW
    out.mkdir(parents=True)
    stale, other, own = out / "en.2.old-photo.png", out / "de.1.photo.png", out / "notes.txt"
    for path in (stale, other, own):
        path.write_bytes(b"x")
    result = run_cli("preview", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert not stale.exists()
    assert other.exists() and own.exists() and (out / "en.1.eu-emblem.png").exists()
