"""Project-wide operations: scaffold a project (``init``), start the next issue
(``new-issue``), check one issue (``validate``), and rotate the signing key
(``rotate-secret``). Preview and send have their own modules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mirage_mailer.compose.spam_checks import ratio_problems
from mirage_mailer.project.config import load_settings
from mirage_mailer.project.init_answers import ProjectAnswers
from mirage_mailer.project.new_issue import StartedIssue, latest_issue, start_issue
from mirage_mailer.project.scaffold import check_target, init_project
from mirage_mailer.project.signup_lists import closed_warning
from mirage_mailer.services.list_scan import scan_lists
from mirage_mailer.services.loader import (
    Project,
    find_issue,
    gather_project,
    list_file_problems,
    locate_config,
    reader_problems,
    render,
    without_broken_articles,
)
from mirage_mailer.services.outbound import insecure_tls_warning
from mirage_mailer.services.planning import ListScan, Plan
from mirage_mailer.services.sending import SendOptions, existing_store, plan_options
from mirage_mailer.services.signing import check_signing_secret, rotate
from mirage_mailer.store import StoreError
from mirage_mailer.store.guard import READS, check_kept
from mirage_mailer.util.errors import InputError, Problem, display_path
from mirage_mailer.util.tokens import Rotation


def init(directory: Path, answers: ProjectAnswers | None = None) -> list[Path]:
    """Write a working project (config, templates, a list, an issue); the files written.
    Without ``answers``, the MIraGE sample's own settings."""
    return init_project(directory, answers)


def check_init_target(directory: Path) -> None:
    """Refuse a folder where init would overwrite a file, before anything is asked."""
    check_target(directory)


def new_issue(config: Path | None, issue_id: str | None,
              start_from: str | None) -> tuple[StartedIssue, str | None]:
    """Start the next issue from ``start_from`` (default: the latest issue), and the note
    saying which issue that was when it was chosen here."""
    settings = load_settings(locate_config(config))
    issues = settings.issues_dir
    note = None
    if start_from is not None:
        source, _ = find_issue(config, start_from)
        if not (source / "issue.yaml").is_file():
            raise InputError(Problem(display_path(source), None, "is not an issue folder",
                                     "name a folder under issues/ that holds issue.yaml"))
    else:
        latest = latest_issue(issues)
        if latest is None:
            raise InputError(Problem(display_path(issues) + "/", None, "no issue to start "
                                     "from", "write issues/<id>/issue.yaml by hand, or see "
                                     "the sample that 'mirage-mailer init NEW_FOLDER' writes"))
        source = latest
    started = start_issue(issues, source, issue_id)
    if start_from is None:
        note = (f"mirage-mailer: continuing from {display_path(started.source)}, the latest "
                "issue (by number, then date; --from ISSUE to choose another)")
    return started, note


@dataclass
class Validation:
    """Everything ``validate`` reports about one issue, and the figures of its summary."""

    issue: str
    languages: tuple[str, ...]
    plan: Plan | None  # None: the issue could not be read
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    store_problems: list[Problem] = field(default_factory=list)  # figures ignore the store
    unchecked: tuple[str, ...] = ()  # what an error before left unchecked


# what the templates are rendered with: an error in one leaves them unchecked
_RENDER_NEEDS = frozenset({"project", "disclaimer", "tracking", "templates"})
_TEMPLATES = "templates and disclaimer"


def validate(config: Path | None, issue_dir: Path) -> Validation:
    """Check config, issue, articles, lists, templates, disclaimer and signing secret, and
    plan the send as ``send --dry-run`` would (one set of figures). Every stage is checked
    even when one before it failed, as far as what failed allows: one run, every problem."""
    gathered = gather_project(config, issue_dir)
    project, broken, errors = gathered.project, gathered.broken, list(gathered.errors)
    if project is None:
        later = ("issue", "articles") if "config" in broken else ("articles",)
        return Validation(gathered.issue_id, (), None, errors,
                          unchecked=(*later, "lists", _TEMPLATES))
    store_problems: list[Problem] = []
    unchecked: list[str] = []
    secret_unread: Problem | None = None
    try:  # one pass over the lists gives the plan's figures and the rows' problems
        plan, scan = _lists_stage(project, broken, store_problems)
    except InputError as exc:  # a list file that cannot be read: one problem more, not the last
        plan, scan = None, ListScan()
        found = list_file_problems(project, rows=True)  # every list's, not the first's
        errors.extend([*found, *(p for p in exc.problems if p not in found)])
        unchecked.append("recipients")  # figures and duplicates need every row
    errors.extend(scan.row_problems)
    ratio: list[Problem] = []
    # rendered with stand-ins for what failed, the templates would be blamed for it (and
    # their recipient logic runs on every list row)
    shown = (None if broken & _RENDER_NEEDS or plan is None
             else without_broken_articles(project, gathered.issue_errors))
    if shown is None:
        unchecked.append(_TEMPLATES)
    else:
        try:
            rendered = render(shown, scan.fields)
            if shown is project:  # without an article, the ratio would not be the issue's
                ratio = ratio_problems(project.issue, rendered)  # little text, many images
            errors.extend(reader_problems(shown, rendered))
        except InputError as exc:
            errors.extend(exc.problems)
    if "tracking" in broken:
        unchecked.append("signing secret")
    else:
        try:  # the same refusal as preview and send, but a project without a secret gets none
            check_signing_secret(project.settings)
        except InputError as exc:
            errors.extend(exc.problems)
        except PermissionError as exc:
            secret_unread = _unreadable(exc, project.settings.state_dir, warning=True,
                                        said="; the signing secret was not checked")
    if project.settings.dkim is not None:  # its warnings came with gather_project
        if broken & {"dkim", "sender"}:
            unchecked.append("DKIM key")
        else:
            from mirage_mailer.services.dkim_keys import check_dkim

            errors += check_dkim(project.settings).errors
    # validate is where a setting is read; several lists, none said open to the public
    insecure = None if "transport" in broken else insecure_tls_warning(project.settings)
    closed = None if "web" in broken else closed_warning(project.settings)
    return Validation(project.issue.id, tuple(project.issue.languages), plan, errors,
                      project.warnings + ratio + scan.duplicates
                      + [found for found in (insecure, closed, secret_unread)
                         if found is not None],
                      store_problems, tuple(unchecked))


def _lists_stage(project: Project, broken: frozenset[str],
                 store_problems: list[Problem]) -> tuple[Plan, ListScan]:
    """The plan and the lists' rows; a store that cannot be read is put in
    ``store_problems`` and left out (validate checks the inputs: the store is send's)."""
    try:
        return _plan_and_scan(project, use_store="tracking" not in broken)
    except StoreError as exc:
        store_problems.extend(exc.problems)
    except PermissionError as exc:  # .mirage/ kept owner-only, checked by another user
        store_problems.append(_unreadable(exc, project.settings.state_dir))
    return _plan_and_scan(project, use_store=False)


def _unreadable(exc: PermissionError, state_dir: Path, *, warning: bool = False,
                said: str = "") -> Problem:
    """A state file this user may not read: validate reads it only to check, so it says so
    and checks the rest, where a send or a report must stop."""
    name = exc.filename
    where = display_path(os.fsdecode(name) if isinstance(name, str | bytes) else state_dir)
    return Problem(where, None, f"cannot read it: {exc.strerror or exc}{said}",
                   "run validate as the user who sends, or let this user read "
                   f"{display_path(state_dir)}/", warning=warning)


def _plan_and_scan(project: Project, *, use_store: bool) -> tuple[Plan, ListScan]:
    options = plan_options(SendOptions())
    if not use_store:
        return scan_lists(project, None, options)
    settings = project.settings  # a lost store: named (a StoreError), not filled with a schema
    check_kept(settings.tracking.database, settings.state_dir, READS)
    with existing_store(project) as store:
        return scan_lists(project, store, options)


def rotate_signing_key(config: Path | None, *, replace_lost: bool = False) -> Rotation:
    """A new signing key first in ``.mirage/secret``; earlier keys kept for checking links.
    ``replace_lost``: a new key in place of a lost one, on purpose."""
    settings = load_settings(locate_config(config))
    return rotate(settings, replace_lost=replace_lost)
