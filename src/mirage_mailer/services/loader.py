"""One issue of one project, loaded and checked: what validate, preview and send share.

Load order follows the pipeline: config, issue and articles, lists, then rendering with the
disclaimer check. Each stage is checked even when one before it failed (as far as it can be),
so that one run names every problem: ``open_project`` raises them all in one ``InputError``,
``gather_project`` returns them (``validate``). Row problems and warnings are returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from mirage_mailer.compose.disclaimer import (
    block_for,
    missing_parts,
    union_name_warnings,
    words_language,
)
from mirage_mailer.compose.message import Personal, person_values
from mirage_mailer.compose.message_size import image_size_problems
from mirage_mailer.compose.render import RenderedLanguage, render_issue
from mirage_mailer.compose.spam_checks import source_problems
from mirage_mailer.compose.strings import strings_for
from mirage_mailer.project.config import CONFIG_NAME, Settings, find_config, read_settings
from mirage_mailer.project.content import Issue, read_issue
from mirage_mailer.project.eu_names import base_language
from mirage_mailer.project.lists import (
    RowProblem,
    SubjectOf,
    Subscriber,
    find_list,
    iter_list,
    list_fields,
)
from mirage_mailer.project.new_issue import LATEST_RULE, latest_issue
from mirage_mailer.services.verp import bounce_warnings
from mirage_mailer.util.errors import Collector, InputError, Problem, capped, display_path, shorten

ISSUES = "issues"


@dataclass(frozen=True)
class Project:
    settings: Settings
    issue: Issue
    lists: dict[str, Path]
    warnings: list[Problem] = field(default_factory=list)


def locate_config(explicit: Path | None, issue_dir: Path | None = None) -> Path:
    """``--config``, else mirage.yaml here, else the project that holds ISSUE_DIR."""
    if explicit is not None or issue_dir is None or (Path.cwd() / CONFIG_NAME).is_file():
        return find_config(explicit)
    for parent in issue_dir.resolve().parents:
        if (parent / CONFIG_NAME).is_file():
            return parent / CONFIG_NAME
    return find_config(None)


def find_issue(config: Path | None, given: str | None) -> tuple[Path, str | None]:
    """The issue folder for ISSUE as typed: a folder, an issue id under issues/, or nothing
    (the only issue, else the latest). The note, when there is one, says which was picked."""
    if given is not None and (Path(given).is_dir() or len(Path(given).parts) > 1):
        return Path(given), None  # a folder (or a path the loader will say is missing)
    folder = _config_here_or_above(config).parent / ISSUES
    names = sorted(p.name for p in folder.iterdir()
                   if (p / "issue.yaml").is_file()) if folder.is_dir() else []
    shown = display_path(folder) + "/"
    if given is not None:
        if given in names:
            return folder / given, None
        listed = ", ".join(names) if names else "none yet"
        raise InputError(f"no issue '{shorten(given)}' under {shown}: the issues are {listed}")
    if not names:
        raise InputError(f"no issue under {shown}: name the issue folder, or create one "
                         "(an issue.yaml in issues/<id>/)")
    if len(names) == 1:
        picked = folder / names[0]
        return picked, f"mirage-mailer: using {display_path(picked)} (the only issue)"
    picked = latest_issue(folder) or folder / names[-1]  # new-issue's rule, for every command
    return picked, (f"mirage-mailer: using {display_path(picked)} (the latest of {len(names)} "
                    f"issues {LATEST_RULE}; name another to choose it)")


def _config_here_or_above(config: Path | None) -> Path:
    """``--config``, else mirage.yaml here or in a folder above (run from issues/ or lists/)."""
    if config is None:
        for folder in (Path.cwd(), *Path.cwd().parents):
            if (folder / CONFIG_NAME).is_file():
                return folder / CONFIG_NAME
    return find_config(config)


@dataclass(frozen=True)
class Gathered:
    """A project loaded as far as it goes, with every problem of every stage on the way.

    ``project`` is None when mirage.yaml or issue.yaml gives nothing to go on; otherwise its
    settings may hold defaults in place of values that failed, and its issue may lack
    articles that failed: enough to check the other stages, never to send with."""

    issue_id: str
    project: Project | None
    errors: list[Problem]
    broken: frozenset[str]  # config sections with errors; "config"/"issue": unread, or wrong
    issue_errors: tuple[Problem, ...] = ()  # those of the issue and its articles
    said: tuple[Problem, ...] = ()  # the content checks' warnings, said with a refusal


def open_project(config: Path | None, issue_dir: Path) -> Project:
    """The project of one issue, ready to render and send; ``InputError`` lists every problem
    of the config, the issue, its articles and the list files at once."""
    gathered = gather_project(config, issue_dir)
    problems = Collector()
    problems.problems.extend(gathered.errors)
    if problems.errors:  # said with the content's warnings: all there is to fix at once
        unreadable = [] if gathered.project is None else list_file_problems(gathered.project)
        raise InputError([*capped([*problems.errors, *unreadable]), *gathered.said])
    assert gathered.project is not None  # only a stage with errors leaves none
    return gathered.project


def list_file_problems(project: Project, *, rows: bool = False) -> list[Problem]:
    """Each list file read on its own to its end or its fatal problem (not UTF-8, a quote
    left open), which is one problem more beside the rest, not the only one said; with
    ``rows``, the row problems met before it too. Read only where the run is refused
    anyway, or the plan's own pass met such a problem: a run that goes on never pays it."""
    found: list[Problem] = []
    for name, path in project.lists.items():
        try:
            for row in iter_list(path, name):
                if rows and isinstance(row, RowProblem):
                    found.append(row.problem)
        except InputError as exc:
            found.extend(exc.problems)
    return found


def gather_project(config: Path | None, issue_dir: Path) -> Gathered:
    """Config, issue and articles, then the list files, each checked even when one before
    failed, as far as it can be (no mirage.yaml at all: that is raised)."""
    config_path = locate_config(config, issue_dir)
    issue_id = issue_dir.absolute().name
    try:
        read = read_settings(config_path)
    except InputError as exc:  # no settings to read the issue with
        return Gathered(issue_id, None, list(exc.problems), frozenset({"config"}))
    settings, errors, broken = read.settings, list(read.errors), set(read.broken)
    try:
        issue, found = read_issue(issue_dir, settings.project.language,
                                  lists_dir=settings.lists_dir)
    except InputError as exc:
        return Gathered(issue_id, None, errors + exc.problems, frozenset(broken | {"issue"}))
    warnings = [p for p in found if p.warning]
    issue_errors = tuple(capped([p for p in found if not p.warning]))
    if issue_errors:
        errors += issue_errors
        broken.add("issue")
    # shouting (warnings), an issue of images only, images over the size (errors), before
    # any message is built
    content = [*source_problems(issue), *image_size_problems(issue)]
    errors += [p for p in content if not p.warning]
    said = tuple(p for p in content if p.warning)
    warnings += said
    paths: dict[str, Path] = {}
    for name in issue.lists:
        try:
            paths[name] = find_list(settings.lists_dir, name, origin=issue.path,
                                    line=issue.lines.get("list"))
        except InputError as exc:
            errors.extend(exc.problems)
    warnings += config_warnings(settings, issue, frozenset(broken))
    return Gathered(issue.id, Project(settings, issue, paths, warnings), errors,
                    frozenset(broken), issue_errors, said)


def without_broken_articles(project: Project, errors: tuple[Problem, ...]) -> Project | None:
    """The project without the articles that have errors, so that the templates can still be
    checked beside them; None when an error lies elsewhere (issue.yaml: the subject, say), or
    no article is left to render."""
    issue = project.issue
    folder = display_path(issue.dir) + "/"
    bad = {p.path for p in errors}
    if any(not (path.startswith(folder) and path.endswith(".md")
                and "/" not in path.removeprefix(folder)) for path in bad):
        return None  # an article (or translation) that did not load is left out already
    shown = [[display_path(a.path) for a in articles] for articles in issue.articles.values()]
    if not shown or not set(shown[0]) - bad:  # the default language's articles come first
        return None
    dropped = {n for paths in shown for n, path in enumerate(paths) if path in bad}
    if not dropped:
        return project
    articles = {lang: tuple(a for n, a in enumerate(chosen) if n not in dropped)
                for lang, chosen in issue.articles.items()}
    return replace(project, issue=replace(issue, articles=articles))


def config_warnings(settings: Settings, issue: Issue, broken: frozenset[str]) -> list[Problem]:
    """The warnings about settings, from the sections that loaded."""
    warnings = [] if "disclaimer" in broken else disclaimer_warnings(settings, issue)
    if settings.dkim is not None and not broken & {"dkim", "sender"}:
        # a weak key, a signing domain that does not align
        from mirage_mailer.services.dkim_keys import dkim_warnings

        warnings += dkim_warnings(settings)
    if not broken & {"bounces", "sender"}:
        warnings += bounce_warnings(settings.bounces, settings.sender.from_email,
                                    display_path(settings.path),
                                    settings.line_of.get("bounces"))
    return warnings


def disclaimer_warnings(settings: Settings, issue: Issue) -> list[Problem]:
    out = []
    for lang in issue.languages:
        block = block_for(settings.disclaimer, lang, issue.default_language)
        # a preset's own words are English: English readers get them as they should
        words = words_language(settings.disclaimer, block, issue.default_language)
        if not block.confirmed and base_language(words) != base_language(lang) and (
                partial := missing_parts(settings.disclaimer, lang)):
            code, missing = partial[0], " and ".join(partial[1:])
            key = f"disclaimer.translations.{code}"
            out.append(Problem(
                display_path(settings.path),
                settings.line_of.get(key) or settings.line_of.get("disclaimer"),
                f"{key} has no {missing}, which preset {settings.disclaimer.preset} needs; "
                f"{lang} readers get the {words} text",
                f"add {missing}: under {key} from your grant agreement; never "
                "machine-translate", warning=True))
        elif not block.confirmed and base_language(words) != base_language(lang):
            out.append(Problem(
                display_path(settings.path), settings.line_of.get("disclaimer"),
                f"no confirmed '{lang}' translation of the EU disclaimer; {lang} "
                f"readers get the {words} text",
                f"add disclaimer.translations.{lang} with statement and text from your grant "
                "agreement; never machine-translate", warning=True))
    for key, message, hint in union_name_warnings(settings.disclaimer,
                                                  settings.project.language):
        out.append(Problem(display_path(settings.path),
                           settings.line_of.get(key) or settings.line_of.get("disclaimer"),
                           message, hint, warning=True))
    return out


def iter_rows(project: Project, *,
              subject: SubjectOf | None = None) -> Iterator[Subscriber | RowProblem]:
    """Every row of every list of the issue, in order (first occurrence first); ``subject``:
    see ``iter_list``."""
    for name, path in project.lists.items():
        yield from iter_list(path, name, subject=subject)


def template_fields(project: Project) -> set[str]:
    """Columns templates may use, from list headers: no pass over 100,000 rows for this."""
    return set().union(*(list_fields(path) for path in project.lists.values()))


def render(project: Project, fields: set[str], *, languages: tuple[str, ...] | None = None,
           subject_prefix: str = "") -> dict[str, RenderedLanguage]:
    return render_issue(project.settings, project.issue, fields=fields, languages=languages,
                        subject_prefix=subject_prefix)


MAX_READER_PROBLEMS = 10  # a line that fails for many readers needs naming only so often


def reader_problems(project: Project,
                    rendered: dict[str, RenderedLanguage]) -> list[Problem]:
    """Recipient logic in the templates (``compose.fragments``) run on every list row, as
    ``send`` will: the readers it fails for, by template line (at most
    ``MAX_READER_PROBLEMS``). Nothing to do, and no pass over the lists, without any."""
    logic = {lang: r.fragments for lang, r in rendered.items() if r.fragments is not None}
    if not logic:
        return []
    strings = {lang: strings_for(lang, project.settings.project.name) for lang in logic}
    problems: list[Problem] = []
    for row in iter_rows(project):
        if not isinstance(row, Subscriber):
            continue
        lang = project.issue.pick_language(row.lang)
        if lang not in logic:
            continue
        values = person_values(Personal(row.email, row.name, row.list_name, row.fields),
                               strings[lang])
        try:
            logic[lang].fill(values)
        except InputError as exc:
            problems.extend(exc.problems)
            if len(problems) >= MAX_READER_PROBLEMS:
                break
    return problems
