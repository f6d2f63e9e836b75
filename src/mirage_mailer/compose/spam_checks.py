"""What content filters score in a newsletter's own words and pictures: shouting, and too
little text for its images (DESIGN: "does not look like spam ...: a sane text-to-image
ratio, no shouting").

The thresholds are SpamAssassin's (``/usr/share/spamassassin/*.cf``), made to work in every
language and to leave acronyms alone:

- ``SUBJ_ALL_CAPS`` scores a subject whose letters are all capitals, when it has a space
  and at least 10 characters. ``UPPERCASE_75_100`` scores a body whose letters are more than
  75 % capitals. Here a subject, preheader, title or heading of at least 10 characters with a
  space is *shouting* when every cased letter is a capital, or when more than 75 % are once
  acronyms (a word of 2 to 5 capitals: EU, AMIF, NGO, UNHCR, ΕΕ) are set aside. Letters of
  every cased script count (Greek, Cyrillic); scripts without case never shout. A German noun
  or a title in Title Case is far below 75 %. A few acronyms alone ("EU AMIF NGO") are not
  shouting.
- ``PLING_QUERY`` scores '!' with '?' in a subject. Here a run of two or more marks
  ('!!', '?!', '!!!') is shouting, wherever it is; one '!' and one '?' apart are not.
- ``HTML_IMAGE_ONLY_*`` scores HTML that shows images with next to no words, and
  ``HTML_IMAGE_RATIO_02`` visible text of at most 0.002 non-space characters per pixel of
  image area (the lowest of its bands). A language whose articles show images and have no
  words at all is an error (the contract wants a real text part); a message below
  ``HTML_IMAGE_RATIO_02`` is a warning. The area is each image's ``width`` x ``height`` in
  the rendered HTML, the missing side from the image's own proportions, else 200 pixels
  (SpamAssassin's guess).

Warnings are one line each; the image-only error stops every command (exit 2). The CLI
prints them; this module only finds them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mirage_mailer.compose.image_width import natural_sizes
from mirage_mailer.project.content import Article, Issue
from mirage_mailer.util.errors import Problem, display_path, shorten

if TYPE_CHECKING:
    from mirage_mailer.compose.images import InlineImage
    from mirage_mailer.compose.render import RenderedLanguage

SHORT_TEXT = 10  # SUBJ_ALL_CAPS: shorter subjects, and one-word ones, are never scored
MOSTLY_CAPITALS = 0.75  # UPPERCASE_75_100: more than 75 % of the letters are capitals
ACRONYM_LETTERS = 5  # EU, AMIF, NGO, UNHCR: a capital word this short is an acronym
ACRONYM_ROW = 3  # "EU AMIF NGO": this many acronyms alone are names, not shouting
LOW_RATIO = 0.002  # HTML_IMAGE_RATIO_02: non-space characters per pixel of image area
GUESSED_SIDE = 200  # SpamAssassin's guess for an image side it cannot read

_WORD = re.compile(r"[^\W\d_]+")
_MARK_RUN = re.compile(r"[!?\uff01\uff1f\u203c\u2047\u2048\u2049]{2,}")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\s*(?:\([^)]*\)|\[[^\]]*\])|<img\b[^>]*>", re.I)
_MD_NOT_WORDS = re.compile(r"<!--.*?-->|<[^>]+>|^\s*\[[^\]]+\]:\s*\S+.*$|\]\([^)]*\)",
                           re.M | re.S)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*(?:px)?\s*$", re.I)
_CID = re.compile(r"^cid:(.+)$", re.I)


def shouting(text: str) -> str | None:
    """How ``text`` shouts ('is in capitals', 'is mostly in capitals', "has '!!'", or one
    of the first two and the last), or None."""
    capitals = _capitals(text)
    run = _MARK_RUN.search(text)
    marks = f"has '{run.group(0)}'" if run else None
    return " and ".join(how for how in (capitals, marks) if how) or None


def _capitals(text: str) -> str | None:
    stripped = " ".join(text.split())
    if len(stripped) < SHORT_TEXT or " " not in stripped:
        return None
    upper = lower = 0
    acronyms = words = 0
    for word in _WORD.findall(stripped):
        caps = sum(1 for c in word if c.isupper())
        small = sum(1 for c in word if c.islower())
        if caps + small == 0:
            continue  # a script without case
        words += 1
        if small == 0 and 2 <= caps <= ACRONYM_LETTERS:
            acronyms += 1
            continue
        upper += caps
        lower += small
    if words == 0:
        return None
    if lower == 0 and upper + acronyms > 0 and not (upper == 0 and words <= ACRONYM_ROW):
        return "is in capitals"
    if upper + lower and upper / (upper + lower) > MOSTLY_CAPITALS and upper >= SHORT_TEXT:
        return "is mostly in capitals"
    return None


def source_problems(issue: Issue) -> list[Problem]:
    """What the issue's own files show before rendering: shouting (warnings) and languages
    that are images only (errors)."""
    return [*_shouting_problems(issue), *_image_only_problems(issue)]


def _shouting_problems(issue: Issue) -> list[Problem]:
    hint = ("write it in sentence case, with one '!' or '?' at most; acronyms such as EU "
            "are fine")
    found: list[Problem] = []
    for key, label in (("subject", "subject"), ("preheader", "preheader"),
                       ("title", "title")):
        values: dict[str, str] = getattr(issue, key)
        for lang, value in values.items():
            how = shouting(value)
            if how:
                found.append(Problem(display_path(issue.path), _value_line(issue, key, lang),
                                     f"the {lang} {label} {how}, which content filters score as "
                                     f"shouting: '{shorten(value)}'", hint,
                                     warning=True))
    seen: set[Path] = set()
    for article in (a for articles in issue.articles.values() for a in articles):
        if article.path in seen:
            continue  # an untranslated article stands in for several languages
        seen.add(article.path)
        how = shouting(article.title)
        if how:
            found.append(Problem(display_path(article.path), _title_line(article.path),
                                 f"the article's title {how}, which content filters "
                                 f"score as shouting: '{shorten(article.title)}'",
                                 hint, warning=True))
        for line, heading in _headings(article):
            how = shouting(heading)
            if how:
                found.append(Problem(display_path(article.path), line,
                                     f"a heading {how}, which content filters score as "
                                     f"shouting: '{shorten(heading)}'", hint,
                                     warning=True))
    return found


def _headings(article: Article) -> Iterator[tuple[int, str]]:
    """(line, text) of each Markdown heading of the body (``#`` and underlined ones)."""
    lines = article.body.splitlines()
    fenced = False
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        match = _HEADING.match(line)
        if match:
            yield article.body_line + index, match.group(2)
        elif (index and _SETEXT.match(line) and lines[index - 1].strip()
              and not _FENCE.match(lines[index - 1])):
            yield article.body_line + index - 1, lines[index - 1].strip()


def _image_only_problems(issue: Issue) -> list[Problem]:
    """A language whose articles show images and hold no word: an error, once per file."""
    found: dict[Path, Problem] = {}
    for lang, articles in issue.articles.items():
        pictured = [a for a in articles if _image_count(a)]
        if not pictured or any(_has_words(a) for a in articles):
            continue
        count = sum(_image_count(a) for a in articles)
        first = pictured[0]
        found.setdefault(first.path, Problem(
            display_path(first.path), _first_image_line(first),
            f"the {lang} issue is images only ({count} image(s), no text in its articles): "
            "content filters score it as spam (SpamAssassin HTML_IMAGE_ONLY) and readers "
            "who block images see nothing",
            "write what the images show as text in the article; keep images beside words"))
    return list(found.values())


def _image_count(article: Article) -> int:
    """The article's images: the front matter's ``image`` and the body's."""
    return (article.image is not None) + len(_MD_IMAGE.findall(article.body))


def _first_image_line(article: Article) -> int:
    """The line of the article's first image (read only when a problem needs it)."""
    if article.image is not None:
        return _key_line(article.path, "image")
    match = _MD_IMAGE.search(article.body)
    offset = article.body.count("\n", 0, match.start()) if match else 0
    return article.body_line + offset


def _has_words(article: Article) -> bool:
    text = _MD_NOT_WORDS.sub(" ", _MD_IMAGE.sub(" ", article.body))
    return any(c.isalnum() for c in text)


@dataclass(frozen=True)
class Ratio:
    """What a filter measures in one language's HTML part."""

    characters: int  # visible non-space characters
    images: int
    area: int  # pixels

    @property
    def low(self) -> bool:
        return self.area > 0 and self.characters / self.area <= LOW_RATIO


def measure(html: str, images: tuple[InlineImage, ...] = ()) -> Ratio:
    """Visible text and image area of ``html`` as SpamAssassin's HTML parser sees them."""
    import lxml.html

    doc = lxml.html.document_fromstring(html)
    for hidden in doc.xpath("//style|//script|//head"):
        hidden.getparent().remove(hidden)
    characters = sum(len(piece) for piece in doc.text_content().split())
    sides = [(img, _side(img.get("width"), 8), _side(img.get("height"), 6))  # a percentage
             for img in doc.iter("img")]                        # of an 800 x 600 screen, as SA
    unsized = {_cid(img.get("src") or "") for img, width, height in sides
               if width is None or height is None}  # the emblem has both: never read
    sizes = natural_sizes(tuple(image for image in images if image.cid in unsized))
    count = area = 0
    for img, width, height in sides:
        count += 1
        natural = sizes.get(_cid(img.get("src") or ""))
        if natural is not None:
            if width is None and height is None:
                width, height = natural
            elif height is None and width is not None:
                height = round(width * natural[1] / natural[0])
            elif width is None and height is not None:
                width = round(height * natural[0] / natural[1])
        area += (width or GUESSED_SIDE) * (height or GUESSED_SIDE)
    return Ratio(characters, count, area)


def _side(value: str | None, per_percent: int) -> int | None:
    match = _SIZE.match(value or "")
    if not match:
        return None
    number = float(match.group(1)) * (per_percent if match.group(2) else 1)
    return round(number) if number > 0 else None


def _cid(src: str) -> str:
    match = _CID.match(src.strip())
    return match.group(1) if match else ""


def ratio_problems(issue: Issue, rendered: Mapping[str, RenderedLanguage]) -> list[Problem]:
    """Warnings for languages whose HTML part has too little text for its images, each
    pointing at the article with the most images."""
    found: list[Problem] = []
    for lang, part in rendered.items():
        ratio = measure(part.html, part.images)
        if not ratio.low:
            continue
        articles = issue.articles.get(lang, ())
        most = max(articles, key=_image_count, default=None)
        where = ((display_path(most.path), _first_image_line(most))
                 if most is not None and _image_count(most)
                 else (display_path(issue.path), issue.lines.get("articles")))
        more = int(ratio.area * LOW_RATIO) + 1 - ratio.characters
        found.append(Problem(
            *where,
            f"the {lang} message has {ratio.images} image(s) covering {ratio.area:,} pixels "
            f"and only {ratio.characters:,} characters of text: content filters score that "
            "ratio (SpamAssassin HTML_IMAGE_RATIO_02)",
            f"write about {more:,} more characters of text, or use fewer or smaller images",
            warning=True))
    return found


def _value_line(issue: Issue, key: str, lang: str) -> int | None:
    """The line of ``key``'s ``lang`` value in issue.yaml (the key's own line for a plain
    string). Read only when there is a problem to place."""
    start = issue.lines.get(key)
    if start is None:
        return None
    try:
        lines = issue.path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeError):
        return start
    if re.match(rf"^{re.escape(key)}\s*:\s*\S", lines[start - 1] if start <= len(lines) else ""):
        return start  # subject: "..." on one line
    pattern = re.compile(rf"^\s+['\"]?{re.escape(lang)}['\"]?\s*:")
    for number in range(start + 1, len(lines) + 1):
        line = lines[number - 1]
        if line.strip() and not line[0].isspace():
            break  # the next top-level key
        if pattern.match(line):
            return number
    return start


def _key_line(path: Path, key: str) -> int:
    """The front matter line of ``key`` in an article (2, the first key, if not found)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeError):
        return 2
    pattern = re.compile(rf"^{re.escape(key)}\s*:")
    for number, line in enumerate(lines[1:], 2):
        if line.strip() in ("---", "..."):
            break
        if pattern.match(line):
            return number
    return 2


def _title_line(path: Path) -> int:
    return _key_line(path, "title")
