"""What the store remembers of each issue beyond its rows: its last real plan.

``run-due`` reads it to decide "complete" without reading any list: a list whose size or
time changed since the issue's last plan may hold a fix for a row recorded ``invalid``
(``lists`` is the stamp ``services.issue_marks`` makes). The subject (default language),
number and date tell a renamed or copied folder of an issue already sent from a new issue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mirage_mailer.store.core import StoreCore

# an invalid row's detail is the row problem as printed: "path:line: message (hint)"
_WHERE = re.compile(r"^.*?:(\d+): ")


@dataclass(frozen=True)
class IssuePlan:
    issue: str
    subject: str
    number: str | None
    issue_date: str | None
    lists: str  # the lists' stamp at the plan


class IssuePlansMixin(StoreCore):
    def record_issue_plan(self, plan: IssuePlan) -> None:
        """Remember the issue's latest real plan (one row per issue, replaced each time)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO issue_plans (issue, subject, number, issue_date, lists, planned_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (issue) DO UPDATE SET"
                " subject = excluded.subject, number = excluded.number,"
                " issue_date = excluded.issue_date, lists = excluded.lists,"
                " planned_at = excluded.planned_at",
                (plan.issue, plan.subject, plan.number, plan.issue_date, plan.lists,
                 self._now()))

    def issue_plans(self) -> dict[str, IssuePlan]:
        """Every issue's last plan, by id: one read for a whole ``run-due``."""
        return {row[0]: IssuePlan(*row) for row in self._conn.execute(
            "SELECT issue, subject, number, issue_date, lists FROM issue_plans")}

    def sent_under(self, plan: IssuePlan) -> str | None:
        """Another issue with this subject, number and date that has readers ``sent``: the
        same newsletter in a renamed or copied folder. None without a number or date (a
        newsletter whose subject never changes is not a copy of the last one)."""
        if plan.number is None and plan.issue_date is None:
            return None
        for (other,) in self._conn.execute(
                "SELECT issue FROM issue_plans WHERE subject = ? AND issue <> ?"
                " AND number IS NOT DISTINCT FROM ? AND issue_date IS NOT DISTINCT FROM ?"
                " ORDER BY issue", (plan.subject, plan.issue, plan.number, plan.issue_date)):
            if self._conn.execute("SELECT EXISTS (SELECT 1 FROM recipients WHERE issue = ?"
                                  " AND status = 'sent')", (other,)).fetchone()[0]:
                return str(other)
        return None

    def invalid_lines(self, issue: str) -> dict[tuple[str, int], str]:
        """(list, line) of the issue's rows recorded ``invalid``, and the address recorded
        there: a valid row there now that reads as that address corrected is the row fixed in
        place, not a newcomer (``planning``)."""
        found: dict[tuple[str, int], str] = {}
        for list_name, email, detail in self._conn.execute(
                "SELECT list_name, email, smtp_response FROM recipients WHERE issue = ?"
                " AND status = 'invalid'", (issue,)):
            match = _WHERE.match(detail or "")
            if match:
                found[(str(list_name), int(match.group(1)))] = str(email)
        return found
