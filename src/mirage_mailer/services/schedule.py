"""``run-due``: which issues are due, under one lock so cron runs never overlap."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from mirage_mailer.project.config import Settings
from mirage_mailer.project.content import parse_send_at
from mirage_mailer.project.lists import find_list
from mirage_mailer.project.yamlsrc import LineDict, load_yaml_file
from mirage_mailer.services.issue_marks import list_stamp
from mirage_mailer.services.signing import check_signing_secret
from mirage_mailer.store import IssuePlan, finished, open_store, store_exists
from mirage_mailer.store.guard import check_memory, remember_sent
from mirage_mailer.util.errors import InputError, MirageError, Problem, display_path
from mirage_mailer.util.statedir import SENT_MARKER

if TYPE_CHECKING:
    from mirage_mailer.services.bounces import BounceRun


# How late the first run-due of a project that never sent from this machine may still send an
# issue: enough for cron's first run after send_at (the host off for a night), not for an
# issue that went out long ago from the machine the project was cloned from.
FIRST_RUN_GRACE = timedelta(hours=24)
MOVING_DOC = "docs/operations.md#moving-a-project-to-another-machine"


@dataclass(frozen=True)
class Due:
    issue_dir: Path
    send_at: datetime
    fixes_only: bool = False  # finished, but a list changed: send its corrected rows only


def bounces_first(settings: Settings) -> tuple[BounceRun | None, list[Problem]]:
    """Before sending, read the bounce mailbox when ``bounces.mailbox`` is set (and
    ``bounces.before_run_due`` is not false), so a due issue skips addresses that bounced
    since the last run. A mailbox that cannot be read is a problem to report, never a reason
    not to send: the next run reads it again."""
    config = settings.bounces
    if config is None or not config.mailbox_set or not config.before_run_due:
        return None, []
    from mirage_mailer.services.bounces import process_bounces  # flufl.bounce only then

    try:
        return process_bounces(settings), []
    except MirageError as exc:
        return None, [Problem(p.path, p.line, f"bounces not processed: {p.message}", p.hint,
                              warning=True) for p in exc.problems]


def check_store(settings: Settings) -> None:
    """Refuse (exit 2) when a project that has sent before lost its store (``store.guard``):
    run-due would otherwise send every due issue to everyone again; or its signing secret
    (``services.signing``): every unsubscribe link already sent would stop working. Both
    before anything is due, so cron hears of it at the next run, not the next issue."""
    check_memory(settings.tracking.database, settings.state_dir)
    check_signing_secret(settings)


def find_due(settings: Settings, now: datetime) -> tuple[list[Due], list[Problem]]:
    """Issues whose ``send_at`` has passed and that are not complete, oldest first: none
    recorded yet, some pending, or rows recorded ``invalid`` while a list of the issue has
    changed since its last plan (the change may correct them: such an issue is sent with
    ``fixes_only``, so only corrected rows get it), when no later issue that has passed
    its ``send_at`` goes to any of its lists: a reader whose row was invalid through a
    year of issues gets the latest one, not twelve at once. ``unknown`` rows do not keep an
    issue due, nor do newcomers to a finished issue's lists: were they to, every run would
    mail old issues to each newcomer, while this way newcomers get the next issue.

    An issue with nothing recorded that was due more than ``FIRST_RUN_GRACE`` before this
    copy of the project first sent (``first_sent_here``; now, if it never did) is a problem
    (exit 2), not due: ``_held_back``.

    Only ``send_at`` is read here; a due issue is fully validated when it is sent. An
    issue.yaml that cannot be read is a problem to report, not a reason to skip the others.
    """
    due: list[Due] = []
    problems: list[Problem] = []
    if not settings.issues_dir.is_dir():
        return due, problems
    first_sent = first_sent_here(settings)
    since = now if first_sent is None else min(now, first_sent)
    database = settings.tracking.database
    store = open_store(database) if store_exists(database) else None
    passed: list[tuple[Path, LineDict, datetime]] = []
    try:
        plans = store.issue_plans() if store is not None else {}
        for path in sorted(settings.issues_dir.glob("*/issue.yaml")):
            try:
                data = load_yaml_file(path)
            except InputError as exc:
                problems.extend(exc.problems)
                continue
            if not isinstance(data, LineDict) or data.get("send_at") is None:
                continue
            send_at = parse_send_at(data["send_at"])
            if send_at is None:
                problems.append(Problem(str(path), data.key_line("send_at"),
                                        f"'send_at' {data['send_at']!r} is not an ISO 8601 "
                                        "time with a time zone",
                                        "write it like 2026-12-01T09:00:00+01:00"))
                continue
            if send_at <= now:
                passed.append((path, data, send_at))
        latest: dict[str, datetime] = {}  # list name -> send_at of its latest issue so far
        for _path, data, send_at in passed:
            for name in _list_names(data):
                latest[name] = max(send_at, latest.get(name, send_at))
        for path, data, send_at in passed:
            counts = store.counts(path.parent.name) if store is not None else None
            if since - send_at > FIRST_RUN_GRACE and not (counts and any(counts.values())):
                problems.append(_held_back(settings, path, data, send_at, first_sent))
                continue
            fixes_only = False
            if counts is not None and finished(counts):
                if not counts["invalid"] \
                        or any(latest[n] > send_at for n in _list_names(data)) \
                        or not _lists_changed(settings, path, data, plans):
                    continue
                fixes_only = True
            due.append(Due(path.parent, send_at, fixes_only))
    finally:
        if store is not None:
            store.close()
    due.sort(key=lambda d: d.send_at)
    return due, problems


def first_sent_here(settings: Settings) -> datetime | None:
    """When this copy of the project first recorded a real send: the time of
    ``.mirage/sent`` (``store.guard``; a store with recipients writes it first, for a
    project that sent with an older version), or None when it never did. A project cloned
    with git to a new host has no ``.mirage/`` (it is git-ignored) and looks brand new, so
    this is what tells an issue it is due from one it sent long ago from elsewhere, on the
    first run there and after it, whatever is sent from the new host in between. A secret
    alone says nothing: ``preview``, ``send --dry-run`` and ``serve`` make one too. A marker
    copied without its time reads as later than it was: more old issues held back, never
    fewer."""
    remember_sent(settings.tracking.database, settings.state_dir)
    try:
        stamp = (settings.state_dir / SENT_MARKER).stat().st_mtime
    except FileNotFoundError:
        return None
    return datetime.fromtimestamp(stamp, UTC)


def _held_back(settings: Settings, path: Path, data: LineDict, send_at: datetime,
               first_sent: datetime | None) -> Problem:
    """Why an issue due long before this copy of the project sent anything is not sent by
    run-due: it may well have gone out from the machine the project came from, whose
    ``.mirage/`` did not come along, and cron has nobody to ask. A person can still send it
    by hand."""
    marker = display_path(settings.state_dir / SENT_MARKER)
    if first_sent is None:
        when = (f"more than 24 hours ago, and this project has never sent from here (no "
                f"{marker}, no recipient in its tracking database)")
        fix = "copy that project's .mirage/ folder here"
    else:  # this host's own store is in .mirage/ now: copying another over it would lose it
        when = (f"more than 24 hours before this project first sent from here ({marker}, "
                f"{first_sent.isoformat(timespec='seconds')}), and nothing of it is recorded")
        fix = "remove send_at from its issue.yaml"
    command = shlex.join(["mirage-mailer", "send", display_path(path.parent)])
    return Problem(
        display_path(path), data.key_line("send_at"),
        f"due at {send_at.isoformat()}, {when}: not sent, as it may have gone out from "
        "another machine",
        f"if it was sent from another machine, {fix}, see {MOVING_DOC}; to send it now, "
        f"run '{command}' by hand")


def _lists_changed(settings: Settings, path: Path, data: LineDict,
                   plans: dict[str, IssuePlan]) -> bool:
    """A list of the issue was edited since its last plan (or none was recorded, by an
    older version): the edit may correct a row recorded ``invalid``. Sizes and times only:
    no list is read. A list that cannot be found counts as changed (the send says why)."""
    plan = plans.get(path.parent.name)
    if plan is None:
        return True
    names = _list_names(data)
    if not names:
        return True
    try:
        paths = [find_list(settings.lists_dir, name, origin=path, line=None) for name in names]
    except InputError:
        return True
    return list_stamp(paths) != plan.lists


def _list_names(data: LineDict) -> list[str]:
    """issue.yaml's ``list`` as names (none when it is not one or a sequence of them: the
    send reports that)."""
    names = data.get("list")
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return []
    return names
