"""Content that filters score as spam: shouting, and too little text for the images
(DESIGN, "Every delivered message": "a sane text-to-image ratio, no shouting").

The audit's issue (a subject in capitals with '!!!', two articles of eight 1600 x 400 images
and no words) is refused; the same images beside one sentence are a warning; the sample
project and the sample issue of every preset and language ``init`` offers say nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.compose.images import InlineImage
from mirage_mailer.compose.spam_checks import LOW_RATIO, measure, shouting, source_problems
from mirage_mailer.project.content import load_issue
from mirage_mailer.project.init_answers import INIT_PRESETS, ProjectAnswers
from mirage_mailer.services.projects import init, validate
from support.images import png

ARTICLES = ("partners-meeting.md", "online-trainings.md")


def photo_issue(project: Path, *, words: str = "", subject: str | None = None) -> Path:
    """The sample issue in English only, each article ``words`` then eight wide photos."""
    issue = project / SAMPLE_ISSUE
    (issue / "wide.png").write_bytes(png(1600, 400))
    for name in ARTICLES:
        path = issue / name
        front, _body = path.read_text(encoding="utf-8").split("\n---\n", 1)
        photos = "\n".join(f"![Photo {n}](wide.png)\n" for n in range(8))
        path.write_text(f"{front}\n---\n{words}\n\n{photos}", encoding="utf-8")
    for translated in issue.glob("*.fr.md"):
        translated.unlink()
    yaml = issue / "issue.yaml"
    kept = [line for line in yaml.read_text(encoding="utf-8").splitlines()
            if not line.startswith("  fr: ")]
    yaml.write_text("\n".join(kept) + "\n", encoding="utf-8")
    if subject is not None:
        edit(yaml, "  en: \"MIraGE news: final partners' meeting and lessons learned\"",
             f"  en: '{subject}'")
    return issue


def sent_files(project: Path) -> list[Path]:
    return [p for p in (project / "outbox").rglob("*") if p.is_file()]


def test_the_audits_issue_is_refused_with_the_lines_to_fix(project: Path,
                                                           run_cli: RunCli) -> None:
    photo_issue(project, subject="URGENT!!! FREE NEWS - READ NOW!!!")
    checked = run_cli("validate", SAMPLE_ISSUE)
    assert checked.code == 2
    lines = checked.err.splitlines()
    assert (f"{SAMPLE_ISSUE}/issue.yaml:2: warning: the en subject is in capitals and has "
            "'!!!', which content filters score as shouting: 'URGENT!!! FREE NEWS - READ "
            "NOW!!!' (write it in sentence case, with one '!' or '?' at most; acronyms such "
            "as EU are fine)") in lines
    refusal = [line for line in lines if "images only" in line]
    assert refusal == [
        f"{SAMPLE_ISSUE}/partners-meeting.md:9: the en issue is images only (16 image(s), no "
        "text in its articles): content filters score it as spam (SpamAssassin "
        "HTML_IMAGE_ONLY) and readers who block images see nothing (write what the images "
        "show as text in the article; keep images beside words)"]
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 2
    assert refusal[0] in sent.err.splitlines()
    assert sent_files(project) == []


RATIO_WARNING = (f"{SAMPLE_ISSUE}/partners-meeting.md:9: warning: the en message has 17 "
                 "image(s) covering 1,224,216 pixels and only ")


def test_many_images_and_a_sentence_are_a_warning(project: Path, run_cli: RunCli) -> None:
    photo_issue(project, words="A few photos from the day.")
    checked = run_cli("validate", SAMPLE_ISSUE)
    assert checked.code == 0
    said = [line for line in checked.err.splitlines() if line.startswith(RATIO_WARNING)]
    assert len(said) == 1 and re.search(
        r" and only [\d,]+ characters of text: content filters score that ratio "
        r"\(SpamAssassin HTML_IMAGE_RATIO_02\) \(write about 1,[67]\d\d more characters of "
        r"text, or use fewer or smaller images\)$", said[0]), checked.err
    assert "0 error(s), 1 warning(s)" in checked.out
    shown = run_cli("preview", SAMPLE_ISSUE)
    assert shown.code == 0 and said[0] in shown.err.splitlines()


def test_send_says_the_ratio_warning_too(project: Path, run_cli: RunCli) -> None:
    photo_issue(project, words="A few photos from the day.")
    dry = run_cli("send", SAMPLE_ISSUE, "--dry-run")
    assert dry.code == 0 and RATIO_WARNING in dry.err


def test_shouting_titles_and_headings_name_their_lines(project: Path,
                                                       run_cli: RunCli) -> None:
    article = project / SAMPLE_ISSUE / "partners-meeting.md"
    edit(article, "title: MIraGE partners' meeting, October 2021",
         "title: THE FINAL PARTNERS MEETING")
    edit(article, "## Lessons learned", "## LESSONS WE LEARNED")
    edit(article, "the others online.", "the others online.\n\n```\n# NOT A HEADING AT ALL\n```")
    checked = run_cli("validate", SAMPLE_ISSUE)
    assert checked.code == 0
    ours = [line for line in checked.err.splitlines() if "shouting" in line]
    assert ours == [
        f"{SAMPLE_ISSUE}/partners-meeting.md:2: warning: the article's title is in capitals, "
        "which content filters score as shouting: 'THE FINAL PARTNERS MEETING' (write it in "
        "sentence case, with one '!' or '?' at most; acronyms such as EU are fine)",
        f"{SAMPLE_ISSUE}/partners-meeting.md:19: warning: a heading is in capitals, which "
        "content filters score as shouting: 'LESSONS WE LEARNED' (write it in sentence case, "
        "with one '!' or '?' at most; acronyms such as EU are fine)"]


@pytest.mark.parametrize("preset", INIT_PRESETS)
@pytest.mark.parametrize("lang", ["en", "fr", "de", "el"])
def test_no_preset_or_language_sample_says_anything(tmp_path: Path, preset: str,
                                                    lang: str) -> None:
    root = tmp_path / "p"
    init(root, ProjectAnswers("MIraGE", "https://example.org", "news@example.org", lang,
                              preset, "European Research Executive Agency"))
    found = validate(root / "mirage.yaml", root / SAMPLE_ISSUE)
    said = [str(p) for p in [*found.errors, *found.warnings]
            if "shouting" in p.message or "image" in p.message]
    assert said == [] and found.errors == []


@pytest.mark.parametrize("text", [
    "MIraGE news: final partners' meeting and lessons learned",
    "AMIF: EU call for NGO projects",
    "MIraGE: EU AMIF NGO UNHCR forum",
    "EU AMIF NGO",  # a row of acronyms is names
    "Neue Förderung der EU für NGOs und Vereine",  # capitalised German nouns
    "Νέα του έργου MIraGE: η τελική συνάντηση των εταίρων",
    "Новости проекта MIraGE",
    "项目新闻：最后一次合作伙伴会议",  # no case at all
    "Final Partners' Meeting And Lessons Learned",  # Title Case
    "COVID-19 and the EU: AMIF support",
    "Who pays? We do!",
    "BIG NEWS",  # short: SUBJ_ALL_CAPS skips fewer than 10 characters
    "ANNOUNCEMENT",  # one word: so does it
    "IMPORTANT ANNOUNCEMENT about the call",  # 64 % capitals: under UPPERCASE_75_100
])
def test_what_is_not_shouting(text: str) -> None:
    assert shouting(text) is None


@pytest.mark.parametrize(("text", "how"), [
    ("URGENT!!! FREE NEWS - READ NOW!!!", "is in capitals and has '!!!'"),
    ("FREE NEWS READ NOW", "is in capitals"),
    ("ΝΕΑ ΤΟΥ ΕΡΓΟΥ: Η ΤΕΛΙΚΗ ΣΥΝΑΝΤΗΣΗ", "is in capitals"),
    ("НОВОСТИ ПРОЕКТА СЕГОДНЯ", "is in capitals"),
    ("IMPORTANT ANNOUNCEMENTS from the EU", "is mostly in capitals"),
    ("Really?!", "has '?!'"),
    ("Big news!!", "has '!!'"),
])
def test_what_is_shouting(text: str, how: str) -> None:
    assert shouting(text) == how


def test_image_area_follows_the_attributes_then_the_file() -> None:
    wide = InlineImage("img1@x", "wide.png", "image/png", png(1600, 400))
    html = ('<html><head><style>p{color:red}</style></head><body><p>Ten chars!</p>'
            '<img src="cid:img1@x" width="552">'  # the height from the file: 138
            '<img src="cid:img1@x">'  # the file's own size
            '<img src="https://example.org/a.png" width="50%" height="10">'  # 400 x 10
            '<img src="https://example.org/b.png"></body></html>')  # 200 x 200, a guess
    ratio = measure(html, (wide,))
    assert (ratio.characters, ratio.images) == (9, 4)
    assert ratio.area == 552 * 138 + 1600 * 400 + 400 * 10 + 200 * 200
    assert ratio.low
    assert not measure("<p>" + "x" * 81 + '</p><img width="200" height="200">').low
    assert measure("<p>" + "x" * int(40_000 * LOW_RATIO) + '</p><img width="200" '
                   'height="200">').low


def test_a_language_of_images_only_is_named_alone(project: Path) -> None:
    """French articles of pictures (a front matter image, body images) and no words: the
    French file is named, at its first image's line; English, with text, is fine."""
    issue = project / SAMPLE_ISSUE
    (issue / "wide.png").write_bytes(png(1600, 400))
    (issue / "partners-meeting.fr.md").write_text(
        "---\ntitle: Réunion\nimage: wide.png\nimage_alt: La réunion\n---\n\n"
        "![La salle](wide.png)\n",
        encoding="utf-8")
    (issue / "online-trainings.fr.md").write_text(
        "---\ntitle: Formations\n---\n\n<!-- rien -->\n![Formation](wide.png)\n",
        encoding="utf-8")
    loaded, _warnings = load_issue(issue, "en")
    found = source_problems(loaded)
    assert [(p.path.endswith("partners-meeting.fr.md"), p.line, p.warning) for p in found] == [
        (True, 3, False)]
    assert "the fr issue is images only (3 image(s), no text in its articles)" in \
        found[0].message
