"""Once per issue and language: Markdown -> sanitised HTML -> Jinja2 -> premailer -> text part.

The output keeps per-recipient slots (see ``slots``) so that personalising a message later is
string substitution, never another template or CSS pass. With ``tracking.clicks`` the HTML's
http(s) links become click slots (their targets are kept, per language, for signing), and with
``tracking.opens`` an open pixel slot closes the body; the text part is never tracked.
"""

from __future__ import annotations

import logging
import re
import textwrap
import warnings
from dataclasses import dataclass
from datetime import date
from functools import lru_cache, partial
from html import escape, unescape
from pathlib import Path
from typing import Any

import babel
import cssutils
import jinja2
import lxml.html
import nh3
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from jinja2.exceptions import SecurityError
from lxml import etree
from markupsafe import Markup

from mirage_mailer.compose.accessibility import Part, check_rendered
from mirage_mailer.compose.css_kept import FLOATS, KeptPremailer
from mirage_mailer.compose.direction import direction_values, ensure_direction
from mirage_mailer.compose.disclaimer import (
    EMBLEM_CID,
    EMBLEM_FILE,
    EMBLEM_HEIGHT,
    EMBLEM_WIDTH,
    DisclaimerBlock,
    block_for,
    check_html,
    check_text,
    rule_hint,
    words_language,
)
from mirage_mailer.compose.fragments import LanguageFragments, bind_fragments, default_filter
from mirage_mailer.compose.image_width import outlook_widths
from mirage_mailer.compose.images import (
    InlineImage,
    embed_body_images,
    embed_template_images,
    inline_image,
)
from mirage_mailer.compose.sandbox import BoundedSandbox, template_frame, template_problem
from mirage_mailer.compose.slots import MirageUndefined, RecipientSlots, slot
from mirage_mailer.compose.strings import strings_for
from mirage_mailer.compose.template_lines import locate
from mirage_mailer.compose.unsubscribe_link import problems as unsubscribe_problems
from mirage_mailer.project.article_limits import bounded_html
from mirage_mailer.project.article_text import article_html
from mirage_mailer.project.config import Settings, Tracking
from mirage_mailer.project.content import Article, Issue
from mirage_mailer.util import kept
from mirage_mailer.util.errors import Collector, InputError, Problem, display_path, shorten
from mirage_mailer.util.langs import babel_locale

OPEN_SLOT = "open_url"
OPEN_PIXEL = (f'<img src="__MM_{OPEN_SLOT}__" alt="" width="1" height="1" border="0" '
              'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0;">')
HTML_TEMPLATE = "newsletter.html.j2"
TEXT_TEMPLATE = "newsletter.txt.j2"
TEXT_WIDTH = 76
PRE_MARK = "\ue000"  # private use: marks a code line for wrap_text (skipped if the page has it)

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "em", "h2", "h3", "h4", "hr", "i", "img",
    "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "u", "ul",
}
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"},
               "td": {"align"}, "th": {"align"}}


@dataclass(frozen=True)
class RenderedLanguage:
    """One language's finished parts, with per-recipient slots still in them."""

    lang: str
    subject: str
    html: str
    text: str
    images: tuple[InlineImage, ...]
    block: DisclaimerBlock
    emblem_src: str
    click_urls: tuple[str, ...] = ()  # targets of the slots click_1, click_2, ... in ``html``
    open_pixel: bool = False  # ``html`` ends its body with the open pixel slot
    fragments: LanguageFragments | None = None  # recipient logic run per reader, if any

    def untracked_html(self) -> str:
        """``html`` with the original link targets and no open pixel (archive, web view)."""
        return untrack(self.html, self.click_urls)


def click_slot(number: int) -> str:
    return f"click_{number}"


_A_TAG = re.compile(r"""<a\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.I)
_HREF = re.compile(r"""(\shref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.I)
_TRACKABLE = re.compile(r"^https?://", re.I)


def track_links(html: str) -> tuple[str, tuple[str, ...]]:
    """Every ``<a href="http(s)://...">`` becomes ``href="__MM_click_<n>__"``.

    Returns the HTML and the original targets (``n`` = position + 1; one slot per distinct
    target). mailto links, and hrefs that are or contain a slot (unsubscribe, view online, a
    per-recipient field), are left alone: those are not the same URL for every reader.
    """
    urls: dict[str, int] = {}

    def rewrite_href(match: re.Match[str]) -> str:
        raw = match.group(2) if match.group(2) is not None else match.group(3)
        url = unescape(raw).strip()
        if not _TRACKABLE.match(url) or "__MM_" in url or "\x00" in url:
            return match.group(0)
        number = urls.setdefault(url, len(urls) + 1)
        return f'{match.group(1)}"__MM_{click_slot(number)}__"'

    def rewrite_tag(match: re.Match[str]) -> str:
        return _HREF.sub(rewrite_href, match.group(0), count=1)

    tracked = _A_TAG.sub(rewrite_tag, html)
    return tracked, tuple(urls)


def add_open_pixel(html: str) -> str:
    """The 1x1 open pixel slot, last in the body (or at the very end without a </body>)."""
    at = html.lower().rfind("</body>")
    if at < 0:
        return html + OPEN_PIXEL
    return html[:at] + OPEN_PIXEL + html[at:]


def untrack(html: str, click_urls: tuple[str, ...]) -> str:
    """Undo ``track_links`` and ``add_open_pixel``."""
    html = html.replace(OPEN_PIXEL, "")
    for number, url in enumerate(click_urls, 1):
        html = html.replace(f"__MM_{click_slot(number)}__", escape(url, quote=True))
    return html


def apply_tracking(html: str, tracking: Tracking) -> tuple[str, tuple[str, ...], bool]:
    """Click slots and the open pixel, as ``tracking`` asks (both need ``base_url``)."""
    urls: tuple[str, ...] = ()
    if not tracking.base_url:
        return html, urls, False
    if tracking.clicks:
        html, urls = track_links(html)
    if tracking.opens:
        html = add_open_pixel(html)
    return html, urls, tracking.opens


def emblem_bytes() -> bytes:
    """The package's emblem: a plain file in every installed or checked-out package, read as
    one; through ``importlib.resources`` only for a package that is not a folder (a zip),
    whose reader (zipfile, tempfile, shutil) costs a few ms before the first message."""
    try:
        return (Path(__file__).parent.parent / "data" / EMBLEM_FILE).read_bytes()
    except OSError:
        from importlib import resources
        return resources.files("mirage_mailer").joinpath("data", EMBLEM_FILE).read_bytes()


# The emblem is always a part of the message (1.2 KB), even with a public base URL: Outlook
# and Thunderbird block remote images until the reader allows them, and the EU emblem is the
# one image the funding rules require readers to see. The web archive shows the hosted copy
# instead (``web/issue_pages.py``).
EMBLEM_SRC = f"cid:{EMBLEM_CID}"


def template_env(settings: Settings) -> BoundedSandbox:
    """User templates run sandboxed and bounded (see ``sandbox``): they come from files."""
    env = BoundedSandbox(
        settings.templates,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=MirageUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["default"] = env.filters["d"] = default_filter  # an empty cell is missing
    return env


def markdown_to_html(article: Article, problems: Collector) -> str:
    """Markdown -> HTML with only mail-safe tags and http(s)/mailto links (nh3)."""
    raw = article_html(article.body)
    clean = bounded_html(article.path, article.body_line, nh3.clean(
        raw, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
        link_rel=None), problems)
    for match in re.finditer(r'<a href="([^"]*)"', clean):
        href = match.group(1)
        if not re.match(r"^(https?:|mailto:)", href):
            problems.add(article.path, _line_of(article, href),
                         f"link '{href}' is not a full URL; a mail has no base address",
                         "write it as https://...")
    return clean


def _line_of(article: Article, needle: str) -> int:
    index = article.body.find(needle)
    return article.body_line + (article.body[:index].count("\n") if index >= 0 else 0)


@lru_cache(maxsize=64)  # an article shown in several languages is the same HTML in each
def html_to_text(html: str) -> str:
    """Readable plain text; links become numbered footnotes so the prose stays clean."""
    doc = lxml.html.fragment_fromstring(html, create_parent="div")
    notes: list[str] = []
    for link in doc.iter("a"):
        href = link.get("href") or ""
        label = " ".join(link.text_content().split())
        if href and href not in (label, f"mailto:{label}"):
            notes.append(href)
            link.tail = f" [{len(notes)}]" + (link.tail or "")
    for img in doc.iter("img"):
        img.tail = f"[{img.get('alt') or ''}]" + (img.tail or "")
    for code in doc.xpath(".//pre//code"):
        code.drop_tag()  # inscriptis collapses a <code>'s blanks even inside a <pre>
    marked = PRE_MARK not in html
    if marked:  # a code line keeps its shape: the part is quoted-printable, so length is safe
        for pre in doc.iter("pre"):
            _mark_lines(pre)
    text = get_text(lxml.html.tostring(doc, encoding="unicode"), ParserConfig())
    text = wrap_text(textwrap.dedent(text).strip("\n"))
    if marked:
        text = text.replace(PRE_MARK, "")
    if notes:
        text += "\n\n" + "\n".join(f"[{n}] {url}" for n, url in enumerate(notes, 1))
    return text


def _mark_lines(pre: lxml.html.HtmlElement) -> None:
    """Put PRE_MARK after every line break inside ``pre`` so wrap_text can tell code from prose."""
    for node in pre.iter():
        if node.text:
            node.text = node.text.replace("\n", "\n" + PRE_MARK)
        if node is not pre and node.tail:
            node.tail = node.tail.replace("\n", "\n" + PRE_MARK)
    pre.text = PRE_MARK + (pre.text or "")


def wrap_text(text: str, width: int = TEXT_WIDTH) -> str:
    lines = []
    for line in text.splitlines():
        if len(line) <= width or PRE_MARK in line:
            lines.append(line.rstrip())
            continue
        indent = re.match(r"^\s*(?:[*\-+]\s|\d+\.\s)?", line)
        lead = " " * (indent.end() if indent else 0)
        lines.append(textwrap.fill(line, width, subsequent_indent=lead, break_long_words=False,
                                   break_on_hyphens=False))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _format_date(value: date | None, lang: str) -> str | None:
    """The long date in ``lang`` (babel), kept by date and language: the first one in a
    process made babel load CLDR's root, English and French data, some 20 ms of a send."""
    if value is None:
        return None

    def compute() -> str:
        from babel.dates import format_date  # with zoneinfo: only when no date is kept

        locale = babel_locale(lang) or babel_locale("en")
        return str(format_date(value, format="long", locale=locale))

    return str(LONG_DATES.get(("date", value.isoformat(), lang), compute))


# long dates from babel's locale data (``util.kept``)
LONG_DATES = kept.kind("locale-dates", kept.library_stamp(babel),
                         lambda value: isinstance(value, str))


def _template_error(exc: Exception, settings: Settings) -> Problem:
    return template_problem(exc, settings.templates, HTML_TEMPLATE)


def inline_css(html: str) -> str:
    """premailer: styles into style attributes; media queries stay in one <style> block.

    premailer's last step, ``align_floating_images``, reads each image's style with
    cssutils' validation on (whatever ``disable_validation`` says), and the first validation
    in a process compiles some 400 regular expressions: about 0.1 s before a send's first
    message. So premailer gets the parsed page and skips that step, ``_align_floats`` does it
    without validation, and the page is serialised as premailer would: the same bytes.
    premailer's parse of the CSS is kept from one run to the next (``css_kept``)."""
    logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
    stripped = html.strip()
    tree = etree.fromstring(stripped, etree.HTMLParser()).getroottree()
    page = tree.getroot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inliner = KeptPremailer(allow_network=False, keep_style_tags=False,
                                remove_classes=False, strip_important=False,
                                cssutils_logging_level=logging.CRITICAL,
                                disable_validation=True, align_floating_images=False)
        inliner.transform(page)
        _align_floats(page)
    root = tree if stripped.startswith(tree.docinfo.doctype) else page
    result: str = etree.tostring(root, method="html", encoding="utf-8").decode("utf-8")
    return result


def _align_floats(page: etree._Element) -> None:
    """An image floated left or right also gets ``align``, which Outlook understands and
    ``float`` it does not (premailer's ``align_floating_images``, minus validation)."""
    for image in page.xpath("//img[@style]"):
        side = FLOATS.get(image.attrib["style"], partial(_float_side, image.attrib["style"]))
        if side in ("left", "right"):
            image.attrib["align"] = side


def _float_side(style: str) -> str:
    """The ``float`` of a ``style`` attribute as cssutils reads it, kept by its text."""
    return str(cssutils.parseStyle(style, validate=False).float)


def render_issue(settings: Settings, issue: Issue, *, fields: set[str],
                 languages: tuple[str, ...] | None = None,
                 subject_prefix: str = "") -> dict[str, RenderedLanguage]:
    """Render every language (or the given ones); raises ``InputError`` on any problem."""
    env = template_env(settings)
    problems = Collector()
    out: dict[str, RenderedLanguage] = {}
    for lang in languages or issue.languages:
        try:
            out[lang] = _render_language(settings, issue, lang, env, fields, Collector(),
                                         subject_prefix)
        except InputError as exc:
            problems.problems.extend(exc.problems)
        except jinja2.TemplateError as exc:
            problems.problems.append(_template_error(exc, settings))
            if isinstance(exc, SecurityError):
                break  # the same template in the next language costs the same again
        except Exception as exc:  # filters and methods a template calls raise anything
            if template_frame(exc) is None:  # not the template's doing: a bug of ours
                raise
            problems.problems.append(_template_error(exc, settings))
            if isinstance(exc, RecursionError | MemoryError):
                break
    problems.problems = list(dict.fromkeys(problems.problems))  # an article shared by languages
    problems.raise_if_errors()
    return out


def _render_language(settings: Settings, issue: Issue, lang: str, env: BoundedSandbox,
                     fields: set[str], problems: Collector,
                     subject_prefix: str) -> RenderedLanguage:
    images: dict[Path, InlineImage] = {}
    block = block_for(settings.disclaimer, lang, issue.default_language)
    block_lang = words_language(settings.disclaimer, block, issue.default_language)
    emblem_src = EMBLEM_SRC
    articles: list[dict[str, Any]] = []
    for article in issue.articles[lang]:
        html = embed_body_images(markdown_to_html(article, problems), article, images,
                                 problems)
        articles.append({
            "title": article.title,
            "date": _format_date(article.date, lang),
            "author": article.author,
            "summary": article.summary,
            "html": Markup(html),
            "text": html_to_text(html),
            "image_src": inline_image(article.image, images) if article.image else None,
            "image_alt": article.image_alt,
            "lang": article.lang,
            **_direction(article.lang),
        })
    if problems.errors:
        raise InputError(problems.errors)
    subject = subject_prefix + issue.subject_for(lang)
    strings = strings_for(lang, settings.project.name)
    title, title_lang = _title(issue, lang)
    context: dict[str, Any] = {
        "lang": lang,
        **_direction(lang),
        "t": strings,
        "project": settings.project,
        "issue": {
            "id": issue.id,
            "subject": subject,
            "title": title,
            "title_lang": title_lang,
            "title_dir": _direction(title_lang)["dir"],
            "number": issue.number,
            "date": _format_date(issue.date, lang),
            "preheader": issue.preheader.get(lang)
            or issue.preheader.get(issue.default_language) or "",
        },
        "articles": articles,
        "disclaimer": {
            "statement": block.statement,
            "text": block.text,
            "emblem_src": emblem_src,
            "emblem_alt": block.emblem_alt,
            "emblem_alt_lang": block.emblem_alt_lang,
            "emblem_width": EMBLEM_WIDTH,
            "emblem_height": EMBLEM_HEIGHT,
            "lang": block_lang,
            **_direction(block_lang),
        },
        "recipient": RecipientSlots(fields),
        "unsubscribe_url": slot("unsubscribe_url"),
        "view_online_url": slot("view_online_url") if settings.tracking.base_url else None,
    }
    html = env.render_template(HTML_TEMPLATE, context)
    html = ensure_direction(html, context["dir"])  # a template from before ``dir`` existed
    if "<" not in html:
        raise InputError(Problem(display_path(settings.templates / HTML_TEMPLATE), None,
                                 "the HTML template renders no HTML",
                                 "restore it from 'mirage-mailer init'"))
    html, missing = embed_template_images(html, settings.templates, images)
    if missing:
        raise InputError(missing)
    try:
        html = inline_css(html)
    except Exception as exc:  # cssutils raises TypeError and others on malformed CSS
        raise InputError(Problem(
            display_path(settings.templates / HTML_TEMPLATE), None,
            f"the CSS in the template cannot be inlined: {type(exc).__name__}: "
            f"{shorten(str(exc), 120)}", "check the <style> block and style attributes")) from None
    html = outlook_widths(html, images.values())
    html, click_urls, open_pixel = apply_tracking(html, settings.tracking)
    text = env.render_template(TEXT_TEMPLATE, context)
    template_path = display_path(settings.templates / HTML_TEMPLATE)
    text_path = display_path(settings.templates / TEXT_TEMPLATE)
    rules = [Problem(display_path(where), line, f"EU disclaimer rule broken ({lang} HTML): {rule}",
                     rule_hint(settings.templates, "html"))
             for rule in check_html(html, block, emblem_src)
             for where, line in [locate(settings.templates, rule)]]
    rules += [Problem(text_path, None, f"EU disclaimer rule broken ({lang} text): {rule}",
                      rule_hint(settings.templates, "txt"))
              for rule in check_text(text, block)]
    rules += unsubscribe_problems(html, text, lang=lang, templates=settings.templates)
    rules += check_rendered(html, lang=lang, templates=settings.templates,
                            parts=_other_language_parts(issue, lang, block, block_lang,
                                                        strings, (title, title_lang)))
    if re.search(r"<script\b", html, re.I):
        rules.append(Problem(template_path, None, "the template contains <script>",
                             "mail clients block scripts and spam filters punish them"))
    if rules:
        raise InputError(rules)
    fragments = bind_fragments(env, context, fields, {
        display_path(settings.templates / HTML_TEMPLATE): html,
        display_path(settings.templates / TEXT_TEMPLATE): text,
    }, (OPEN_SLOT, *(click_slot(n) for n in range(1, len(click_urls) + 1))))
    images[Path(EMBLEM_FILE)] = InlineImage(EMBLEM_CID, EMBLEM_FILE, "image/png",
                                            emblem_bytes())
    return RenderedLanguage(lang, subject, html, text, tuple(images.values()), block,
                            emblem_src, click_urls, open_pixel, fragments)


def _direction(lang: str) -> dict[str, str]:
    """``dir`` (``ltr``/``rtl``) and ``align`` (the side lines start on) for a template."""
    direction, align = direction_values(lang)
    return {"dir": direction, "align": align}


def _shown(name: str) -> re.Pattern[str]:
    """The template expression that prints ``name`` (``{{ name }}``, ``{{name|e}}``...)."""
    return re.compile(r"\{\{-?\s*" + re.escape(name) + r"\b")


def _title(issue: Issue, lang: str) -> tuple[str, str]:
    """The masthead title for ``lang`` and the language it is written in: its own, else the
    default language's title, else the subject."""
    for code in (lang, issue.default_language):
        if issue.title.get(code):
            return issue.title[code], code
    return issue.subject_for(lang), lang if lang in issue.subject else issue.default_language


def _other_language_parts(issue: Issue, lang: str, block: DisclaimerBlock, block_lang: str,
                          strings: dict[str, str], title: tuple[str, str]) -> list[Part]:
    """What the ``lang`` newsletter shows in another language, which must say so (WCAG 3.1.2):
    untranslated articles and title, a disclaimer without a confirmed translation, and the
    interface strings where mirage-mailer has none in ``lang`` (English stands in)."""
    article_hint = ('keep lang="{{ article.lang }}" on the element around each article, as '
                    "'mirage-mailer init' writes it")
    parts = [Part(article.title, article.lang, f"untranslated article '{shorten(article.title)}'",
                  _shown("article.title"), article_hint)
             for article in issue.articles[lang] if article.lang != lang and article.title]
    if title[1] != lang:
        parts.append(Part(title[0], title[1], "issue title (no translation)",
                          _shown("issue.title"), 'keep lang="{{ issue.title_lang }}" on it when '
                          "issue.title_lang != lang, as 'mirage-mailer init' writes it, or "
                          f"add '{lang}: ...' under 'title:' in issue.yaml"))
    if block_lang != lang:
        hint = ('keep lang="{{ disclaimer.lang }}" on the disclaimer table of '
                "partials/disclaimer.html.j2, as 'mirage-mailer init' writes it")
        parts.append(Part(block.statement, block_lang, "EU funding statement",
                          _shown("disclaimer.statement"), hint))
        if block.text:
            parts.append(Part(block.text, block_lang, "EU disclaimer text",
                              _shown("disclaimer.text"), hint))
    if strings["lang"].split("-")[0] != lang.split("-")[0]:
        parts.append(Part(strings["unsubscribe"], strings["lang"],
                          f"interface text (no '{lang}' strings, English stands in)",
                          _shown("t.unsubscribe"), 'keep lang="{{ t.lang }}" on the footer '
                          "when t.lang != lang, as 'mirage-mailer init' writes it"))
    return parts
