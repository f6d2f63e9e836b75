"""Single values of issue.yaml and front matter, each checked for type, size and place.

Split from ``content`` (which walks the issue folder): what a subject, a number, a list name
or an image path may be, and the rule that every file an issue names lies inside its folder,
symlinks resolved, so no file from elsewhere ends up in a message.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from mirage_mailer.project.image_files import NotAnImage, check_image
from mirage_mailer.project.list_name_rule import LIST_NAME as LIST_NAME  # its home before
from mirage_mailer.project.list_name_rule import name_problem
from mirage_mailer.project.yamlsrc import LineDict
from mirage_mailer.util.errors import Collector, shorten
from mirage_mailer.util.headersafe import header_problem
from mirage_mailer.util.langs import check_language, normalise_language
from mirage_mailer.util.pathfaults import LOCALE_FIX, fits_locale, locale_name_said

MAX_LINE_TEXT = 1000  # subject, title, preheader: characters
_WHAT = {"subject": "subject line", "preheader": "preview text shown after the subject",
         "title": "issue's title"}


def localised(
    value: Any, key: str, data: LineDict, path: Path, problems: Collector, default_lang: str
) -> dict[str, str]:
    """A string, or a mapping language -> string (for subject, title, preheader); a value
    YAML would read as a number or yes/no is the text as written (``title: 1984``)."""
    line = data.key_line(key)
    lines: dict[str, int] = {}  # each language's own line, where the mapping gives one
    if value is None:
        return {}
    if isinstance(value, str | int | float | bool):
        result = {default_lang: (data.text(key) or "").strip()}
    elif isinstance(value, LineDict):
        result = {}
        for lang, item in value.items():
            text = value.text(lang) if isinstance(item, str | int | float | bool) else item
            bad = check_language(str(lang))
            if bad:
                problems.add(path, value.key_line(lang), f"'{key}': {shorten(bad, 120)}",
                             "use an ISO 639-1 code such as en, fr or pt-BR")
                continue
            if not isinstance(text, str):
                problems.add(path, value.key_line(lang), f"'{key}.{lang}' must be text")
                continue
            result[normalise_language(str(lang))] = text.strip()
            lines[normalise_language(str(lang))] = value.key_line(lang)
        if result and default_lang not in result:
            problems.add(path, line, f"'{key}' has no text in the default language "
                         f"'{default_lang}'", f"add '{default_lang}: ...' under '{key}:'")
    else:
        problems.add(path, line, f"'{key}' must be text or a mapping language -> text")
        return {}
    for lang, text in result.items():
        at = lines.get(lang, line)
        bad = header_problem(text) if key in ("subject", "preheader") else None
        if bad:
            problems.add(path, at, f"'{key}' ({lang}) {bad}", "keep it on one line")
        elif not text:
            where = f"'{lang}:' under '{key}:'" if lang in lines else f"'{key}:'"
            problems.add(path, at, f"'{key}' ({lang}) is empty",
                         f"write the {_WHAT.get(key, key)} after {where}")
        elif len(text) > MAX_LINE_TEXT:
            problems.add(path, at, f"'{key}' ({lang}) is {len(text):,} characters long; at "
                         f"most {MAX_LINE_TEXT:,}", "shorten it")
        elif syntax := _TEMPLATE_SYNTAX.search(text):
            # the value is text, never a template: "Hello {{ recipient.name }}" would reach
            # every reader as written
            problems.add(path, at, f"'{key}' ({lang}) holds template syntax "
                         f"({shorten(syntax.group(0), 40)}), which the "
                         f"{_WHAT.get(key, key)} does not run: every reader would get it as "
                         "written", "write the text itself; personal words belong in the "
                         "templates (templates/newsletter.html.j2 and .txt.j2)")
    return result


_TEMPLATE_SYNTAX = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{\{|\{%")


def parse_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        return None


def parse_send_at(value: Any) -> datetime | None:
    """ISO 8601 with a time zone; None when it is not one. A final ``z`` is UTC in any case
    (RFC 3339 5.6 allows ``t`` and ``z``; Python 3.11 reads neither letter as a zone)."""
    text = str(value).strip()
    if text[-1:] in ("Z", "z") and text[-2:-1].isdigit():  # "00zz" stays wrong
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def is_file(path: Path) -> bool:
    """``Path.is_file`` that says no, instead of raising, for a name the OS refuses."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def inside(candidate: Path, folder: Path) -> bool:
    """``candidate`` (symlinks resolved) lies inside ``folder``: no file from elsewhere."""
    try:
        return candidate.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):
        return False


def issue_number(data: LineDict, path: Path, problems: Collector) -> str | None:
    """The issue number as printed in the masthead: a short line, never a structure."""
    value = data.get("number")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.add(path, data.key_line("number"), "'number' must be a whole number or a "
                     "short text", "e.g. 'number: 4'")
        return None
    text = (data.text("number") or "").strip()  # as written: 010 stays 010
    bad = header_problem(text)
    if bad or len(text) > 20:
        problems.add(path, data.key_line("number"),
                     f"'number' {bad or 'is longer than 20 characters'}",
                     "e.g. 'number: 4', on one line")
        return None
    return text


def list_names(data: LineDict, path: Path, problems: Collector,
               lists_dir: Path | None = None) -> tuple[str, ...]:
    """The list names of issue.yaml; one that breaks the rule is a problem that states the
    rule, and names the file to rename when ``lists_dir`` holds one of that name."""
    value = data.get("list")
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.add(path, data.key_line("list"), "'list' must be a list name or a sequence "
                     "of names", "e.g. 'list: subscribers' for lists/subscribers.csv")
        return ()
    good = []
    for name in dict.fromkeys(n.strip() for n in names):
        if LIST_NAME.match(name):
            good.append(name)
        else:
            problems.add(path, data.key_line("list"), *name_problem(name, lists_dir))
    return tuple(good)


def article_image(path: Path, meta: LineDict, problems: Collector) -> Path | None:
    """The front-matter image, confined like body images to the article's folder and held
    to the same rule (``image_files``: a PNG, JPEG or GIF by its content)."""
    name: str = meta["image"]
    line = meta.key_line("image")
    candidate = path.parent / name
    if not fits_locale(name):
        problems.add(path, line, f"image '{shorten(name, 200)}' {locale_name_said()}",
                     LOCALE_FIX)
        return None
    if not inside(candidate, path.parent):
        problems.add(path, line, f"image '{shorten(name, 200)}' is outside the issue folder",
                     "copy the image into the issue folder and give its file name")
        return None
    image = candidate.resolve()
    if not is_file(image):
        problems.add(path, line, f"image '{shorten(name, 200)}' not found",
                     "put the image in the issue folder and give its file name")
        return None
    try:
        check_image(image)
    except NotAnImage as exc:
        problems.add(path, line, f"image '{shorten(name, 200)}' {exc.reason}", exc.hint)
        return None
    return image
