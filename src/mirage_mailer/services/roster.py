"""Who reads each list: the ``subscribers`` commands' view over list files and web sign-ups.

A reader's status is never worked out here: each list is planned by ``services.planning``,
exactly as ``send`` plans an issue on that list (suppressions, invalid rows, duplicates,
confirmed web sign-ups after the file's rows), as a new issue that nobody has had yet. So
``subscribers count`` is the figure the next send would use, and cannot drift from
``send --dry-run``. Web sign-ups awaiting confirmation, which planning never sees, come from
the store with their consent record.

Statuses: ``active`` (the next send reaches them), ``suppressed`` (unsubscribed or erased),
``invalid`` (a row problem), ``duplicate`` (a second row of an address in the list) and
``unconfirmed`` (a web sign-up whose confirmation link has not been used).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mirage_mailer.project.config import Settings, load_settings
from mirage_mailer.project.content import Article, Issue, load_issue
from mirage_mailer.project.list_edit import layout
from mirage_mailer.project.list_name_rule import (
    LIST_NAME,
    name_problem,
    rename_hint,
    unusable_files,
    why_not,
)
from mirage_mailer.project.lists import (
    RowProblem,
    Subscriber,
    find_list,
    list_fields,
    why_missing,
)
from mirage_mailer.project.lists import list_names as files_in
from mirage_mailer.project.new_issue import latest_issue
from mirage_mailer.services.loader import Project, locate_config, open_project
from mirage_mailer.services.planning import (
    K_DUPLICATE,
    K_INVALID,
    K_SEND,
    K_SUPPRESSED,
    Decision,
    Planner,
    PlanOptions,
)
from mirage_mailer.store import Store, email_key, open_store, store_exists
from mirage_mailer.store.guard import READS, check_kept
from mirage_mailer.util.errors import InputError, Problem, display_path, shorten
from mirage_mailer.util.langs import check_language, normalise_language

STATUSES = ("active", "suppressed", "invalid", "duplicate", "unconfirmed")
_STATUS = {K_SEND: "active", K_SUPPRESSED: "suppressed", K_INVALID: "invalid",
           K_DUPLICATE: "duplicate"}
_TRANSLATED = re.compile(r"\.([a-zA-Z]{2}(?:[-_][a-zA-Z0-9]{2,3})?)\.md$")  # x.fr.md
_NO_ISSUE = "(subscribers)"  # never an issue folder name: the store holds no rows for it


@dataclass(frozen=True)
class Consent:
    """The proof of a web sign-up (GDPR art. 7(1)): what was shown, when, from where."""

    text: str
    version: str
    source: str
    requested_at: str
    confirmed_at: str | None


@dataclass(frozen=True)
class Reader:
    list_name: str
    email: str
    name: str | None
    lang: str  # their language (the project's when the row has none)
    status: str  # one of STATUSES
    source: str  # "file" or "web"
    where: str  # lists/x.csv:4, or "web sign-up"
    detail: str  # why they are not active ("" when they are)
    fields: dict[str, str] = field(default_factory=dict)
    consent: Consent | None = None


@dataclass(frozen=True)
class Filters:
    lists: tuple[str, ...] = ()  # none: every list of the project
    lang: str | None = None
    statuses: tuple[str, ...] = ()  # none: every status
    search: str | None = None


@dataclass
class ListCount:
    """Readers the next send reaches, per language, for one list (or several together)."""

    name: str
    languages: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.languages.values())


@dataclass
class Counts:
    lists: list[ListCount]
    together: ListCount | None  # an issue on all of them (a reader on two lists counts once)
    issue: str | None = None  # the issue whose plan this is (``--issue``)


def settings_for(config: Path | None) -> Settings:
    return load_settings(locate_config(config))


def list_names(settings: Settings) -> list[str]:
    """Every list of the project: the names of the files in lists/."""
    return files_in(settings.lists_dir)


def skipped_lists(settings: Settings) -> list[Problem]:
    """A warning for each file in lists/ that no command reads, its name breaking the rule
    (``Partners 2026.csv``): the counts and listings of every list leave it out, so each
    run says so rather than let its readers go missing without a word."""
    return [Problem(display_path(path), None, f"left out: its name '{shorten(path.stem)}' "
                    f"{why_not(path.stem)}", rename_hint(path), warning=True)
            for path in unusable_files(settings.lists_dir)]


def list_path(settings: Settings, name: str) -> Path:
    """lists/<name>.csv|.yaml, or one line naming the lists there are."""
    if not LIST_NAME.match(name):  # the rule, and the file to rename when there is one
        raise InputError(Problem(display_path(settings.lists_dir) + "/", None,
                                 *name_problem(name, settings.lists_dir)))
    names = list_names(settings)
    if name not in names:
        missing = why_missing(settings.lists_dir, name)
        if missing is not None:
            raise InputError(Problem(display_path(settings.lists_dir) + "/", None, *missing))
        there = ", ".join(names) or "none yet"
        raise InputError(Problem(display_path(settings.lists_dir) + "/", None,
                                 f"no list '{shorten(name)}' (the lists are: {there})",
                                 f"create lists/{shorten(name)}.csv with an 'email' column, "
                                 "or fix the name"))
    return find_list(settings.lists_dir, name, origin=settings.path, line=None)


def _project(settings: Settings, names: tuple[str, ...],
             languages: tuple[str, ...] = ()) -> Project:
    """An issue nobody has had yet, on ``names``, in ``languages`` (the project's language
    when none): what planning needs to plan the next send."""
    default = settings.project.language
    articles: dict[str, tuple[Article, ...]] = {lang: () for lang in (*languages, default)}
    issue = Issue(id=_NO_ISSUE, dir=settings.root, path=settings.path,
                  default_language=default, subject={}, lists=names, title={}, number=None,
                  date=None, preheader={}, send_at=None, articles=articles)
    return Project(settings, issue, {n: list_path(settings, n) for n in names})


@contextmanager
def store_if_any(settings: Settings) -> Iterator[Store | None]:
    """The tracking store when there is one; reading readers never creates it, nor reads a
    lost one (``store.guard.check_kept``): every unsubscribed reader would show as active."""
    check_kept(settings.tracking.database, settings.state_dir, READS)
    if not store_exists(settings.tracking.database):
        yield None
        return
    with open_store(settings.tracking.database, state_dir=settings.state_dir) as store:
        yield store


def _language(settings: Settings, lang: str | None) -> str:
    return normalise_language(lang) if lang else settings.project.language


def _planned(project: Project, store: Store | None) -> Iterator[Decision]:
    yield from Planner(project, store, PlanOptions())


def _consent(web: dict[str, Any]) -> Consent:
    return Consent(str(web["consent_text"] or ""), str(web["consent_version"] or ""),
                   str(web["source"] or ""), str(web["requested_at"] or ""),
                   web["confirmed_at"])


@lru_cache(maxsize=64)
def _shown(path: Path) -> str:
    """A list's path as printed, once per list rather than once per row."""
    return display_path(path)


def _reader(settings: Settings, d: Decision, web: dict[str, dict[str, Any]]) -> Reader:
    status = _STATUS.get(d.kind, d.kind)
    detail = "" if status == "active" else d.reason
    row = d.row
    if isinstance(row, Subscriber):
        lang = _language(settings, row.lang)
        if row.line == 0:  # a confirmed web sign-up
            found = web.get(email_key(row.email))
            return Reader(d.list_name, row.email, row.name, lang, status, "web", "web sign-up",
                          detail, {}, _consent(found) if found else None)
        where = f"{_shown(row.path)}:{row.line}"
        return Reader(d.list_name, row.email, row.name, lang, status, "file", where, detail,
                      dict(row.fields))
    problem = row.problem if isinstance(row, RowProblem) else None
    where = f"{problem.path}:{problem.line}" if problem else d.where
    return Reader(d.list_name, d.email, None, settings.project.language, status, "file",
                  where, problem.message if problem else detail)


def _list_readers(settings: Settings, name: str,
                  store: Store | None) -> Iterator[Reader]:
    web = {}
    if store is not None:
        web = {email_key(w["email"]): w for w in store.web_subscribers(name)}
    for decision in _planned(_project(settings, (name,)), store):
        yield _reader(settings, decision, web)
    for entry in web.values():
        if entry["status"] != "confirmed":
            yield Reader(name, str(entry["email"]), entry["name"],
                         _language(settings, entry["lang"]), "unconfirmed", "web",
                         "web sign-up", "has not confirmed the sign-up yet", {},
                         _consent(entry))


def _wanted(settings: Settings, filters: Filters) -> tuple[str, ...]:
    bad = [s for s in filters.statuses if s not in STATUSES]
    if bad:
        raise InputError(f"unknown status '{shorten(bad[0])}': use {', '.join(STATUSES)}")
    names = filters.lists or tuple(list_names(settings))
    for name in names:
        list_path(settings, name)  # an unknown name is refused before any output
    return names


def _matches(reader: Reader, filters: Filters) -> bool:
    if filters.statuses and reader.status not in filters.statuses:
        return False
    if filters.lang:
        wanted = normalise_language(filters.lang)
        if reader.lang != wanted and reader.lang.split("-")[0] != wanted:
            return False
    if filters.search:
        term = filters.search.casefold()
        texts = (reader.email, reader.name or "", *reader.fields.values())
        return any(term in text.casefold() for text in texts)
    return True


def readers(settings: Settings, filters: Filters) -> Iterator[Reader]:
    """Every reader of the lists asked for, list by list, in list order, then web sign-ups.
    A lost store is refused here, before the caller prints a header or an opening bracket."""
    names = _wanted(settings, filters)
    check_kept(settings.tracking.database, settings.state_dir, READS)
    return _readers(settings, names, filters)


def _readers(settings: Settings, names: tuple[str, ...], filters: Filters) -> Iterator[Reader]:
    with store_if_any(settings) as store:
        for name in names:
            for reader in _list_readers(settings, name, store):
                if _matches(reader, filters):
                    yield reader


def count(settings: Settings, names: tuple[str, ...]) -> Counts:
    """Per list, what an issue on that list alone would be sent to now; and, for several
    lists, what one issue on all of them would (a reader on two lists counts once)."""
    names = _wanted(settings, Filters(lists=names))
    out = Counts([], None)
    languages = _next_languages(settings)
    with store_if_any(settings) as store:
        for name in names:
            out.lists.append(_tally(settings, (name,), name, store, languages))
        if len(names) > 1:
            out.together = _tally(settings, names, "all", store, languages)
    return out


def _next_languages(settings: Settings) -> tuple[str, ...] | None:
    """The languages of the next issue: those of the latest one, which ``new-issue``
    continues (a draft that does not load yet, e.g. its subject still to write: the
    languages of its translated article files); None without any issue."""
    source = latest_issue(settings.issues_dir)
    if source is None:
        return None
    try:
        issue, _ = load_issue(source, settings.project.language)
    except InputError:
        found = (_TRANSLATED.search(p.name) for p in source.glob("*.md"))
        codes = {m[1] for m in found if m and check_language(m[1]) is None}
        return tuple(sorted({normalise_language(c) for c in codes}))
    return tuple(issue.articles)


def _tally(settings: Settings, names: tuple[str, ...], label: str,
           store: Store | None, languages: tuple[str, ...] | None) -> ListCount:
    """Each reader under the language the planner sends them: with the next issue's
    languages known, a language it lacks counts as the default, as ``send`` does."""
    result = ListCount(label)
    for d in _planned(_project(settings, names, languages or ()), store):
        if d.kind == K_SEND and isinstance(d.row, Subscriber):
            lang = d.lang if languages is not None and d.lang else _language(settings,
                                                                             d.row.lang)
            result.languages[lang] += 1
    return result


def count_issue(config: Path | None, issue_dir: Path) -> Counts:
    """The plan of a real issue, as ``send --dry-run`` makes it: per list (a reader on two of
    its lists counts under the first), per language of the issue, and in total."""
    project = open_project(config, issue_dir)
    per_list = {name: ListCount(name) for name in project.lists}
    together = ListCount("all")
    with store_if_any(project.settings) as store:
        for d in _planned(project, store):
            if d.kind == K_SEND and d.lang is not None:
                per_list[d.list_name].languages[d.lang] += 1
                together.languages[d.lang] += 1
    return Counts(list(per_list.values()), together, project.issue.id)


@dataclass(frozen=True)
class Export:
    fields: list[str]  # the list's other columns (a CSV's in header order)
    readers: Iterator[Reader]


def export(settings: Settings, name: str, statuses: tuple[str, ...] = ()) -> Export:
    """Every reader of one list (or those with ``statuses``), and the columns they have."""
    path = list_path(settings, name)
    extra = list_fields(path)
    columns = layout(path).columns
    ordered = [c for c in columns if c in extra] + sorted(extra - set(columns))
    return Export(ordered, readers(settings, Filters((name,), None, statuses, None)))
