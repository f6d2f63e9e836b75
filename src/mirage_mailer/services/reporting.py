"""Delivery state from the tracking store, shaped as DESIGN.md's report JSON."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mirage_mailer.store import REPORT_STATUSES, Store

CSV_COLUMNS = ("issue", "email", "status", "attempts", "message_id", "smtp_code",
               "smtp_response", "last_attempt_at")


def issue_report(store: Store | None, issue: str) -> dict[str, Any]:
    """``{"issue", "counts", "recipients"}``: zero counts when nothing is recorded yet."""
    if store is None:
        return {"issue": issue, "counts": dict.fromkeys(REPORT_STATUSES, 0), "recipients": []}
    return {"issue": issue, "counts": store.counts(issue),
            "recipients": list(store.recipients(issue))}


def open_store(database: Path) -> Store | None:
    """The store if it exists; reports never create one."""
    return Store(database) if database.exists() else None


def all_issues(store: Store | None) -> list[str]:
    return store.issues() if store is not None else []


def csv_rows(store: Store | None, issues: list[str]) -> Iterator[list[Any]]:
    for issue in issues:
        if store is None:
            continue
        for row in store.recipients(issue):
            yield [issue, *(row[c] for c in CSV_COLUMNS[1:])]
