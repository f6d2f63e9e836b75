"""An article's Markdown read for what a screen-reader user meets (WCAG 2.1 AA): every image
described (1.1.1), every link saying where it leads (2.4.4), headings in order (1.3.1).

Checked when the article is loaded, so ``validate`` names the file and line. An image with
no description is an error; a decorative image says so with an explicit empty ``alt``
(``<img src="x.png" alt="">`` in the body, ``image_alt: ""`` in the front matter). Vague link
texts and skipped heading levels are warnings: the sentence around a link may be enough.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from mirage_mailer.util.errors import Collector, shorten

# The one Markdown dialect of articles: render.py turns bodies into HTML with this parser.
MARKDOWN = MarkdownIt("commonmark", {"html": True, "typographer": True}).enable(
    ["table", "strikethrough", "replacements", "smartquotes"]
)
@lru_cache(maxsize=64)
def article_tokens(body: str) -> tuple[Token, ...]:
    """An article body parsed once: these checks and every language's rendering share it
    (an untranslated article is rendered in each language of the issue)."""
    return tuple(MARKDOWN.parse(body))


@lru_cache(maxsize=64)
def article_html(body: str) -> str:
    """The body as HTML, from the shared parse (what ``MARKDOWN.render`` gives); once for
    all the languages that show the article."""
    return str(MARKDOWN.renderer.render(list(article_tokens(body)), MARKDOWN.options, {}))


TITLE_LEVEL = 1  # the newsletter shows an article's title as its top heading
_IMG_TAG = re.compile(r"<img\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.I)
_ALT = re.compile(r"\salt\s*=", re.I)
_SRC = re.compile(r"\ssrc\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))", re.I)
# Link texts that say nothing once read out of their sentence (screen readers list links).
VAGUE_LINK_TEXTS = frozenset({
    "here", "click here", "read more", "more", "learn more", "more info", "link", "this link",
    "this", "details", "continue reading", "click", "go",
    "ici", "cliquez ici", "lire la suite", "en savoir plus", "plus", "lien", "ce lien", "suite",
    "hier", "klicken sie hier", "mehr", "weiterlesen", "mehr erfahren",
    "aquí", "aqui", "haga clic aquí", "leer más", "más",
    "qui", "clicca qui", "leggi di più", "di più", "εδώ", "περισσότερα",
})


def check_front_matter_alt(path: Path, alt: object, line: int, problems: Collector) -> None:
    """``image_alt`` given but blank: neither a description nor the explicit empty one."""
    if isinstance(alt, str) and alt and not alt.strip():
        problems.add(path, line, "'image_alt' is only spaces",
                     "describe the picture, or write image_alt: \"\" if it is only decoration")


def check_body(path: Path, body: str, body_line: int, problems: Collector) -> None:
    """Images, links and headings of one article body; problems carry the file's line."""
    level = TITLE_LEVEL
    for block in article_tokens(body):
        line = body_line + (block.map[0] if block.map else 0)
        if block.type == "heading_open":
            level = _heading(path, line, int(block.tag[1]), level, problems)
        elif block.type == "html_block":
            _raw_images(path, line, block.content, problems)
        elif block.type == "inline" and block.children:
            _inline(path, line, block.children, problems)


def _heading(path: Path, line: int, found: int, previous: int, problems: Collector) -> int:
    marks = "#" * found
    if found <= TITLE_LEVEL:
        problems.add(path, line, f"a '{marks}' heading in the body: the article's title is "
                     "its only top heading", "start the body's headings at '##'", warning=True)
        return previous
    if found > previous + 1:
        want = "#" * (previous + 1)
        after = "the article's title" if previous == TITLE_LEVEL else f"'{'#' * previous}'"
        problems.add(path, line, f"heading '{marks}' skips a level after {after}",
                     f"use '{want}' here; screen readers list headings by level", warning=True)
    return found


def _inline(path: Path, line: int, children: list[Token], problems: Collector) -> None:
    link: tuple[str, int, list[str]] | None = None  # href, line, text so far
    for child in children:
        if child.type in ("softbreak", "hardbreak"):
            line += 1
        elif child.type == "image":
            src = str(child.attrs.get("src", ""))
            if not child.content.strip():
                problems.add(path, line, f"image '{shorten(src, 80)}' has no description",
                             f"write ![what it shows]({shorten(src, 80)}); for a purely "
                             f"decorative image write <img src=\"{shorten(src, 80)}\" alt=\"\">")
            if link is not None:
                link[2].append(child.content)
        elif child.type == "html_inline":
            _raw_images(path, line, child.content, problems)
        elif child.type == "link_open":
            link = (str(child.attrs.get("href", "")), line, [])
        elif child.type == "link_close" and link is not None:
            _link_text(path, link, problems)
            link = None
        elif link is not None and child.type in ("text", "code_inline"):
            link[2].append(child.content)


def _link_text(path: Path, link: tuple[str, int, list[str]], problems: Collector) -> None:
    href, line, words = link
    text = " ".join("".join(words).split())
    if not text:
        problems.add(path, line, f"link to {shorten(href, 80)} has no text",
                     "write [words that say where it leads](...)")
        return
    bare = text.lower().strip(" .,:;!?…»«\"'()[]→←>")
    if bare in VAGUE_LINK_TEXTS:
        problems.add(path, line, f"link text '{shorten(text)}' says nothing on its own",
                     f"name where it leads, e.g. [the training modules]({shorten(href, 60)}); "
                     "screen readers list links out of their sentence", warning=True)


def _raw_images(path: Path, line: int, html: str, problems: Collector) -> None:
    for match in _IMG_TAG.finditer(html):
        if _ALT.search(match.group(0)):
            continue
        src = _SRC.search(match.group(0))
        name = next((g for g in src.groups() if g is not None), "") if src else ""
        problems.add(path, line + html[: match.start()].count("\n"),
                     f"image '{shorten(name, 80)}' has no alt attribute",
                     "describe it with alt=\"...\", or write alt=\"\" if it is only decoration")
