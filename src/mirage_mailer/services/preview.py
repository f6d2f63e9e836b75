"""Preview files: ``<lang>.html``, ``<lang>.txt`` and ``<lang>.eml`` for every issue language.

The ``.html`` opens in a browser exactly as a reader sees it: inline images (the emblem
included) are written beside it, as ``<lang>.<n>.<name>``, and the ``cid:`` references point
at those files. Every file is owner-only (0600), as the other files that hold a reader's data:
the sample reader's costs nothing, and one rule is simpler than knowing which are personal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from mirage_mailer.compose.message import Personal, fill
from mirage_mailer.project.lists import Subscriber
from mirage_mailer.services.loader import Project, iter_rows
from mirage_mailer.services.preparation import prepare_issue
from mirage_mailer.util.errors import Problem
from mirage_mailer.util.writes import check_folder_path, write_private, writing

SAMPLE_EMAIL = "reader@example.org"
SAMPLE_NAME = "Sample Reader"


def preview_person(
    project: Project, email: str | None, fields: set[str]
) -> tuple[Personal, str | None]:
    """The list entry for ``email`` when there is one, else a sample reader."""
    if email:
        for row in iter_rows(project):
            if isinstance(row, Subscriber) and row.email.lower() == email.lower():
                return Personal(row.email, row.name, row.list_name, row.fields), row.lang
    list_name = next(iter(project.lists), "preview")
    sample = {name: f"[{name}]" for name in fields}
    return Personal(email or SAMPLE_EMAIL, None if email else SAMPLE_NAME, list_name, sample), None


def image_file_name(lang: str, number: int, name: str) -> str:
    """``en.1.photo.png``: an article's image named ``en.html`` or ``eu-emblem.png`` was
    overwritten by the preview's own file of that name. A language code has no dot and the
    number is unique in its language, so no two files can share a name."""
    return f"{lang}.{number}.{name}"


def write_preview(project: Project, out_dir: Path, *, recipient: str | None,
                  lang: str | None,
                  on_warning: Callable[[Problem], None] | None = None) -> list[Path]:
    """The files for every issue language (or ``lang``), personalised for ``recipient``;
    ``on_warning`` hears what only the rendered issue shows (its image ratio), before any
    file is written."""
    check_folder_path(out_dir, "the preview")
    languages = (project.issue.language_option(lang),) if lang is not None else None
    prep = prepare_issue(project, languages=languages)
    if on_warning is not None:
        for problem in prep.warnings:
            on_warning(problem)
    rendered, factory = prep.rendered, prep.factory
    person, _ = preview_person(project, recipient, prep.fields)
    files: dict[Path, bytes] = {}  # built first: only the writing can fail on the folder
    listed: list[Path] = []
    for code, part in rendered.items():
        values = factory.values_for(person, code)
        html = fill(part.untracked_html(), values, html=True)  # opening a preview tracks nobody
        for number, image in enumerate(part.images, 1):
            name = image_file_name(code, number, image.filename)
            files[out_dir / name] = image.data
            html = html.replace(f"cid:{image.cid}", quote(name))  # a space, a quote
        files[out_dir / f"{code}.html"] = html.encode("utf-8")
        files[out_dir / f"{code}.txt"] = fill(part.text, values, html=False).encode("utf-8")
        files[out_dir / f"{code}.eml"] = factory.build(person, code)
        listed.extend(out_dir / f"{code}.{ext}" for ext in ("html", "txt", "eml"))
    with writing(out_dir, "the preview"):
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in _stale_images(out_dir, set(rendered), set(files)):
            path.unlink(missing_ok=True)
        for path, data in files.items():  # a reader's name, address and token: owner-only
            write_private(path, data)
    return listed


def _stale_images(out_dir: Path, languages: set[str], kept: set[Path]) -> list[Path]:
    """Image files an earlier preview of these languages wrote and this one does not: a
    removed or renamed photo would otherwise still sit beside the ``.html``, as if sent.
    Only names in ``image_file_name``'s shape are touched; other languages' are left."""
    if not out_dir.is_dir():
        return []
    stale = []
    for path in out_dir.iterdir():
        lang, _, rest = path.name.partition(".")
        number, _, name = rest.partition(".")
        if (lang in languages and number.isdecimal() and name and path not in kept
                and path.is_file() and not path.is_symlink()):
            stale.append(path)
    return stale
