"""What a real send records of an issue beside its rows (``store.issue_plans``), and what
``run-due`` and ``send`` read back: has a list changed since the last plan, and is this
folder an issue already sent under another name?"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from mirage_mailer.project.content import Issue
from mirage_mailer.store import IssuePlan, PlanReader
from mirage_mailer.util.errors import Problem, display_path, shorten


def list_stamp(paths: Iterable[Path]) -> str:
    """The lists' size and modification time (no read of their rows: a cron run over many
    old issues stays fast); any edit of a list changes it."""
    marks: list[tuple[str, int | None, int | None]] = []
    for path in sorted(paths, key=str):
        try:
            info = path.stat()
        except OSError:
            marks.append((path.name, None, None))
            continue
        marks.append((path.name, info.st_size, info.st_mtime_ns))
    return json.dumps(marks, separators=(",", ":"))


def issue_plan(issue: Issue, stamp: str) -> IssuePlan:
    subject = issue.subject.get(issue.default_language) or next(iter(issue.subject.values()),
                                                                "")
    return IssuePlan(issue.id, subject, issue.number,
                     issue.date.isoformat() if issue.date is not None else None, stamp)


def sent_twin(issue: Issue, store: PlanReader | None) -> Problem | None:
    """The issue's folder was renamed or copied from an issue already sent (same subject in
    the default language, number and date; the store holds nothing under this id): sending
    it would mail every reader the same newsletter again."""
    if store is None or store.has_rows(issue.id):  # EXISTS, not a count of a big issue
        return None  # an issue with rows of its own was sent on purpose: resume it
    other = store.sent_under(issue_plan(issue, ""))
    if other is None:
        return None
    return Problem(display_path(issue.path), issue.lines.get("subject"),
                   f"this issue has the subject, number and date of issue '{shorten(other)}', "
                   "already sent (a renamed or copied folder?)",
                   f"give it its own subject, number or date; or, if it is '{shorten(other)}' "
                   "renamed, remove its send_at")
