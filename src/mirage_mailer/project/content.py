"""issue.yaml + article Markdown files (+ translations ``name.<lang>.md``) -> an ``Issue``.

Every problem names the file and line; all are collected before anything is raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from mirage_mailer.project.article_limits import (
    check_article_size,
    check_issue_size,
    check_open_tags,
)
from mirage_mailer.project.article_text import article_tokens, check_body, check_front_matter_alt
from mirage_mailer.project.image_refs import check_body_images
from mirage_mailer.project.issue_values import (
    article_image,
    inside,
    is_file,
    issue_number,
    list_names,
    localised,
    parse_date,
    parse_send_at,
)
from mirage_mailer.project.surrogates import check_surrogates
from mirage_mailer.project.yamlsrc import (
    ARTICLE_MAX_BYTES,
    FRONT_MATTER_MAX_CHARS,
    LineDict,
    LineList,
    check_control_characters,
    check_keys,
    parse_yaml,
    read_text,
)
from mirage_mailer.util.errors import Collector, InputError, Problem, display_path, shorten
from mirage_mailer.util.langs import check_language, normalise_language
from mirage_mailer.util.pathfaults import LOCALE_FIX, fits_locale, locale_name_said

_ISSUE_KEYS = {"subject", "list", "articles", "title", "number", "date", "preheader", "send_at"}
# white space and the characters that print as nothing (zero-width space, joiners, word
# joiner, BOM, soft hyphen): a title of only these shows an invisible heading
_INVISIBLE = re.compile(r"[\s\u200b-\u200d\u2060\ufeff\u00ad]*")
_ARTICLE_KEYS = {"title", "date", "author", "summary", "image", "image_alt"}
_TRANSLATION = re.compile(r"^(?P<stem>.+)\.(?P<lang>[a-zA-Z]{2}(?:[-_][a-zA-Z0-9]{2,3})?)\.md$")
_ISSUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_ARTICLES = 100
_FIELD_NAMES = {"title": "article's title", "author": "author's name",
                "summary": "one-line summary", "image": "image's file name",
                "image_alt": "image's description"}
__all__ = ["Article", "Issue", "load_issue", "parse_date", "parse_send_at", "read_issue",
           "split_front_matter"]


@dataclass(frozen=True)
class Article:
    path: Path
    lang: str
    title: str
    date: date | None
    author: str | None
    summary: str | None
    image: Path | None
    image_alt: str | None
    body: str
    body_line: int  # line of the body's first line in the file, for error messages
    images: tuple[Path, ...] = ()  # files the body shows, checked (project.image_refs)


@dataclass(frozen=True)
class Issue:
    id: str
    dir: Path
    path: Path  # issue.yaml
    default_language: str
    subject: dict[str, str]
    lists: tuple[str, ...]
    title: dict[str, str]
    number: str | None
    date: date | None
    preheader: dict[str, str]
    send_at: datetime | None
    articles: dict[str, tuple[Article, ...]]  # language -> articles, default-language fallback
    untranslated: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.articles)

    def pick_language(self, wanted: str | None) -> str:
        """The language a subscriber gets: theirs if the issue has it, else the default."""
        if wanted:
            code = normalise_language(wanted)
            if code in self.articles:
                return code
            base = code.split("-")[0]
            if base in self.articles:
                return base
        return self.default_language

    def language_option(self, wanted: str) -> str:
        """``--lang``: one of this issue's languages, else an error naming them (a code the
        issue lacks would quietly give the default language's copy)."""
        code = normalise_language(wanted.strip()) if not check_language(wanted.strip()) else ""
        if code in self.articles:
            return code
        known = ", ".join(self.languages)
        raise InputError(Problem(display_path(self.path), None,
                                 f"--lang {shorten(repr(wanted))} is not a language of issue "
                                 f"{self.id}", f"give one of its languages: {known}"))

    def subject_for(self, lang: str) -> str:
        return self.subject.get(lang) or self.subject[self.default_language]


def load_issue(issue_dir: Path, default_language: str) -> tuple[Issue, list[Problem]]:
    """Load an issue folder; returns the issue and its warnings, raises on errors."""
    issue, found = read_issue(issue_dir, default_language)
    problems = Collector()
    problems.problems.extend(found)
    problems.raise_if_errors()
    return issue, problems.warnings


def read_issue(issue_dir: Path, default_language: str, *,
               lists_dir: Path | None = None) -> tuple[Issue, list[Problem]]:
    """The issue as far as it loads (an article that fails to load is left out), and every
    problem met, errors and warnings: ``validate`` goes on to the lists with them. Raises
    ``InputError`` only when there is no issue to read (no folder, no mapping)."""
    if issue_dir.is_symlink() and not inside(issue_dir, issue_dir.absolute().parent):
        # the id is the folder's name: a link's target would give it another (two links to
        # folders named alike were one issue, the second never sent), and it lies elsewhere
        raise InputError(Problem(display_path(issue_dir), None, "the issue folder is a link "
                                 f"to {shorten(str(issue_dir.resolve()), 120)}, outside "
                                 f"{display_path(issue_dir.absolute().parent)}/",
                                 "move the issue folder itself there: a link that points "
                                 "elsewhere is refused"))
    issue_dir = issue_dir.resolve()
    path = issue_dir / "issue.yaml"
    if not issue_dir.is_dir():
        raise InputError(Problem(display_path(issue_dir), None, "issue folder not found",
                                 "pass a folder under issues/ that holds issue.yaml"))
    if path.exists() and not inside(path, issue_dir):
        raise InputError(Problem(display_path(path), None, "issue.yaml is a link to a file "
                                 "outside the issue folder", "put the file itself here"))
    data = parse_yaml(read_text(path), path)
    problems = Collector()
    if not isinstance(data, LineDict):
        raise InputError(Problem(display_path(path), 1, "issue.yaml must be a mapping",
                                 "give subject:, list: and articles:"))
    if not _ISSUE_ID.match(issue_dir.name):
        problems.add(issue_dir, None, f"issue folder name '{issue_dir.name}' is not a usable "
                     "issue id", "rename the folder: letters, digits, '.', '_' and '-' only, "
                     "starting with a letter or digit, at most 100 characters")
    check_keys(data, path, allowed=_ISSUE_KEYS, required={"subject", "list", "articles"},
               problems=problems)
    if check_surrogates(data, path, problems, skip=frozenset({"subject", "preheader"})):
        problems.raise_if_errors()  # a value no charset encodes: the checks below misread it
    before = len(problems.problems)
    subject = localised(data.get("subject"), "subject", data, path, problems, default_language)
    if "subject" in data and default_language not in subject and len(problems.problems) == before:
        problems.add(path, data.key_line("subject"), f"'subject' has no text in the default "
                     f"language '{default_language}'", "write the subject after 'subject:'")
    title = localised(data.get("title"), "title", data, path, problems, default_language)
    preheader = localised(data.get("preheader"), "preheader", data, path, problems,
                           default_language)
    lists = list_names(data, path, problems, lists_dir)
    number = issue_number(data, path, problems)
    issue_date = _date_value(data, path, problems) if "date" in data else None
    send_at = None
    if data.get("send_at") is not None:
        send_at = parse_send_at(data["send_at"])
        if send_at is None:
            problems.add(path, data.key_line("send_at"),
                         f"'send_at' {shorten(repr(data['send_at']))} is not an ISO 8601 time "
                         "with a time zone",
                         "write it like 2026-12-01T09:00:00+01:00")
    files = data.get("articles")
    originals: list[Article] = []
    translations: dict[str, dict[Path, Article]] = {}
    if "articles" in data and (not isinstance(files, LineList) or not files):
        problems.add(path, data.key_line("articles"), "'articles' must be a list of files",
                     "list the article .md files of this folder, one per line starting '- '")
    elif isinstance(files, LineList) and len(files) > MAX_ARTICLES:
        problems.add(path, data.key_line("articles"), f"{len(files):,} articles; an issue "
                     f"holds at most {MAX_ARTICLES}", "split it into several issues")
    elif isinstance(files, LineList):
        listed: dict[Path, int] = {}  # article -> its line: one listed twice shows twice
        for index, name in enumerate(files):
            line = files.item_line(index)
            if not isinstance(name, str) or not name.endswith(".md"):
                problems.add(path, line,
                             f"article {shorten(repr(name))} is not a .md file name")
                continue
            if not fits_locale(name):
                problems.add(path, line, f"article '{shorten(name)}' {locale_name_said()}",
                             LOCALE_FIX)
                continue
            if not inside(issue_dir / name, issue_dir):
                problems.add(path, line, f"article '{shorten(name)}' is outside the issue "
                             "folder", "keep the article files in the issue folder itself")
                continue
            article_path = (issue_dir / name).resolve()
            if not is_file(article_path):
                problems.add(path, line, f"article file '{shorten(name)}' not found",
                             f"create {shorten(display_path(article_path), 200)} or fix the "
                             "name")
                continue
            if article_path in listed:
                problems.add(path, line, f"article '{shorten(name)}' is listed twice, also at "
                             f"line {listed[article_path]}", "delete one of the two lines")
                continue
            listed[article_path] = line
            article = _load_article(article_path, default_language, problems)
            if article is None:
                continue
            originals.append(article)
            for lang, translated in _load_translations(article_path, default_language,
                                                       problems):
                translations.setdefault(lang, {})[article_path] = translated
    languages = [
        default_language,
        *sorted((set(translations) | set(subject) | set(title)) - {default_language}),
    ]
    articles: dict[str, tuple[Article, ...]] = {}
    untranslated: dict[str, tuple[Path, ...]] = {}
    for lang in languages:
        chosen = translations.get(lang, {})
        articles[lang] = tuple(chosen.get(a.path, a) for a in originals)
        missing = tuple(a.path for a in originals if a.path not in chosen)
        if lang != default_language and missing:
            untranslated[lang] = missing
        if lang != default_language and lang not in subject and subject:  # none: an error
            problems.add(path, data.key_line("subject"),
                         f"no subject in '{lang}'; {lang} readers get the "
                         f"{default_language} subject", f"add '{lang}: ...' under 'subject:'",
                         warning=True)
    if not problems.errors:  # an article too long would be said again in the total
        check_issue_size(path, data.key_line("articles"),
                         (article.body for shown in articles.values() for article in shown),
                         len(articles), problems)  # an error: validate renders nothing
    for lang, paths in untranslated.items():
        for missing_path in paths:
            problems.add(missing_path, None,
                         f"no '{lang}' translation; {lang} readers get this version",
                         f"add {missing_path.stem}.{lang}.md beside it", warning=True)
    issue = Issue(
        id=issue_dir.name,
        dir=issue_dir,
        path=path,
        default_language=default_language,
        subject=subject,
        lists=lists,
        title=title,
        number=None if number is None else str(number),
        date=issue_date,
        preheader=preheader,
        send_at=send_at,
        articles=articles,
        untranslated=untranslated,
        lines={k: data.key_line(k) for k in data},
    )
    return issue, problems.problems


def _date_value(data: LineDict, path: Path, problems: Collector) -> date | None:
    """``date`` of an issue or an article, or None with the problem at its line."""
    value = parse_date(data["date"])
    if value is None:
        problems.add(path, data.key_line("date"),
                     f"'date' {shorten(repr(data['date']))} is not a date",
                     "write it as YYYY-MM-DD")
    return value


def split_front_matter(text: str, path: Path) -> tuple[str, str, int]:
    """(front matter YAML, body, line of the body's first line)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise InputError(Problem(display_path(path), 1, "article has no front matter",
                                 "start the file with '---', 'title: ...', '---'"))
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    raise InputError(Problem(display_path(path), 1, "front matter is not closed",
                             "add a line '---' after the front matter"))


def _load_article(path: Path, default_language: str, problems: Collector,
                  lang: str | None = None) -> Article | None:
    try:
        text = read_text(path, ARTICLE_MAX_BYTES)
        check_control_characters(text, path)
        yaml_text, body, body_line = split_front_matter(text, path)
        if len(yaml_text) > FRONT_MATTER_MAX_CHARS:
            raise InputError(Problem(display_path(path), 2, f"front matter is {len(yaml_text):,} "
                                     f"characters long; at most {FRONT_MATTER_MAX_CHARS:,}",
                                     "keep the article's text below the second '---'"))
        meta = parse_yaml(yaml_text, path, first_line=2)
    except InputError as exc:
        problems.problems.extend(exc.problems)
        return None
    if not isinstance(meta, LineDict):
        problems.add(path, 2, "front matter must be a mapping", "give at least 'title: ...'")
        return None
    check_keys(meta, path, allowed=_ARTICLE_KEYS, required={"title"}, problems=problems)
    if check_surrogates(meta, path, problems):
        return None  # the checks below would misread the value
    for key in ("title", "author", "summary", "image", "image_alt"):
        if isinstance(meta.get(key), int | float | bool):  # 'title: 1984' is text as written
            meta[key] = meta.text(key)
        if key in meta and not isinstance(meta[key], str):
            problems.add(path, meta.key_line(key), f"'{key}' must be text",
                         f"write the {_FIELD_NAMES[key]} after '{key}:'"
                         if meta[key] is None else
                         f"put the {_FIELD_NAMES[key]} in quotes after '{key}:'")
    if isinstance(meta.get("title"), str) and _INVISIBLE.fullmatch(meta["title"]):
        # the newsletter shows the title as the article's heading and in the text part
        problems.add(path, meta.key_line("title"), "'title' is empty",
                     "write the article's title after 'title:'")
    article_date = _date_value(meta, path, problems) if meta.get("date") is not None else None
    image = None
    if isinstance(meta.get("image"), str):
        image = article_image(path, meta, problems)
        if image is not None and not isinstance(meta.get("image_alt"), str):
            problems.add(path, meta.key_line("image"), "image has no 'image_alt'",
                         "describe the picture for screen readers and blocked images, or "
                         "write image_alt: \"\" if it is only decoration")
    if "image_alt" in meta:
        check_front_matter_alt(path, meta.get("image_alt"), meta.key_line("image_alt"), problems)
    body_images: tuple[Path, ...] = ()
    if not body.strip():
        problems.add(path, body_line - 1, "article body is empty", "write the article below '---'")
    elif check_article_size(path, body, body_line, problems):  # before parsing: bounded work
        check_body(path, body, body_line, problems)
        check_open_tags(path, article_tokens(body), body_line, problems)
        body_images = check_body_images(path, body, body_line, problems)
    title = meta.get("title")
    return Article(
        path=path,
        lang=lang or default_language,
        title=title.strip() if isinstance(title, str) else "",
        date=article_date,
        author=meta.get("author") if isinstance(meta.get("author"), str) else None,
        summary=meta.get("summary") if isinstance(meta.get("summary"), str) else None,
        image=image,
        image_alt=meta.get("image_alt") if isinstance(meta.get("image_alt"), str) else None,
        body=body,
        body_line=body_line,
        images=body_images,
    )


def _load_translations(
    original: Path, default_language: str, problems: Collector
) -> list[tuple[str, Article]]:
    found = []
    for candidate in sorted(original.parent.glob(f"{original.stem}.*.md")):
        match = _TRANSLATION.match(candidate.name)
        if not match or match["stem"] != original.stem:
            continue
        if not inside(candidate, original.parent):
            problems.add(candidate, None, "translation is a link to a file outside the issue "
                         "folder", "put the file itself here")
            continue
        bad = check_language(match["lang"])
        if bad:
            problems.add(candidate, None, f"translation file name: {bad}",
                         "name translations like meeting.fr.md (ISO 639-1 code)")
            continue
        lang = normalise_language(match["lang"])
        if lang == default_language:
            problems.add(candidate, None, f"translation into the default language '{lang}'",
                         f"put that text in {original.name} instead", warning=True)
            continue
        article = _load_article(candidate, default_language, problems, lang=lang)
        if article is not None:
            found.append((lang, article))
    return found
