"""Delivery figures from the tracking store, for every reader of them: ``report`` (table,
JSON, CSV, HTML) on the command line and ``/report/<issue-id>`` on the web.

This module owns the figures (the report JSON of docs/design.md, "Reports"; the CSV rows;
which issues exist);
``htmlreport`` draws them as one page; ``commands/report.py`` prints them and
``web/report_routes.py`` serves the page behind a password. Reports never create a store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mirage_mailer.project.config import Settings
from mirage_mailer.project.issue_titles import issue_subjects
from mirage_mailer.services.bounce_rates import bounce_summary
from mirage_mailer.services.store_access import StoreAccess, access
from mirage_mailer.store import REPORT_STATUSES, ReportReader, Store
from mirage_mailer.util.csvcells import safe_row
from mirage_mailer.util.errors import InputError, Problem, display_path, shorten

STATUSES: tuple[str, ...] = REPORT_STATUSES  # the report's counts, in the table's order
CSV_COLUMNS = ("issue", "subject", "email", "status", "attempts", "message_id", "smtp_code",
               "smtp_response", "last_attempt_at")


def issue_report(store: ReportReader | None, issue: str) -> dict[str, Any]:
    """``{"issue", "counts", "recipients"}``: zero counts when nothing is recorded yet."""
    if store is None:
        return {"issue": issue, "counts": dict.fromkeys(REPORT_STATUSES, 0), "recipients": []}
    return {"issue": issue, "counts": store.counts(issue),
            "recipients": list(store.recipients(issue))}


@contextmanager
def existing(settings: Settings, stores: StoreAccess | None = None) -> Iterator[Store | None]:
    """The project's store for the length of a report, or None when there is none yet (a
    send killed mid-run left its last outcomes in its journal: settled first)."""
    with access(settings, stores).existing() as store:
        yield store


def tracking_on(settings: Settings) -> bool:
    """Whether opens or clicks are counted: only then do reports carry ``engagement``."""
    return settings.tracking.opens or settings.tracking.clicks


def check_known(settings: Settings, store: ReportReader | None, issue: str,
                folder: Path | None = None) -> None:
    """An issue with neither a folder nor a row in the store is a typo, not an issue with
    nothing sent yet: zero counts and exit 0 would read as "nobody got it" (``send`` says
    the same issue is not found). A removed folder whose rows remain is still reported."""
    folders = [settings.issues_dir / issue] + ([folder] if folder is not None else [])
    if any((f / "issue.yaml").is_file() for f in folders):
        return
    recorded = store.issues() if store is not None else []
    if issue in recorded:
        return
    known = sorted(set(recorded) | {q.parent.name
                                    for q in settings.issues_dir.glob("*/issue.yaml")})
    listed = ", ".join(shorten(name, 40) for name in known[:20]) or "none yet"
    where = folder if folder is not None and len(folder.parts) > 1 else \
        settings.issues_dir / issue
    raise InputError(Problem(display_path(where), None, "no such issue: no issue folder, and "
                             "nothing recorded for it in the tracking store",
                             f"give one of the issues: {listed}"))


def reports(settings: Settings, issue: str | None,
            folder: Path | None = None) -> list[dict[str, Any]]:
    """One report per issue (``issue``, or every issue in the store), with ``engagement``
    (opens, clicks per link) when tracking is on. An ``issue`` (its ``folder`` as given)
    that neither exists nor has rows is an ``InputError``."""
    with existing(settings) as store:
        if issue:
            check_known(settings, store, issue, folder)
        issues = [issue] if issue else (store.issues() if store is not None else [])
        found = [issue_report(store, name) for name in issues]
        if tracking_on(settings) and store is not None:  # extra field, only when enabled
            for report in found:
                report["engagement"] = store.engagement(report["issue"])
        if settings.bounces is not None:  # extra fields, only with a bounces: section
            for report in found:
                counted = store.bounce_counts(report["issue"]) if store is not None else {}
                report["bounces"] = bounce_summary(report["counts"].get("sent", 0), counted)
                kinds = store.bounce_kinds(report["issue"]) if store is not None else {}
                for row in report["recipients"]:  # hard, soft, complaint, or null
                    row["bounce"] = kinds.get(row["email"].lower())
        if store is not None:  # a PostgreSQL store's senders running now (extra field)
            for report in found:
                if live := store.senders(report["issue"]):
                    report["senders"] = [sender.as_json() for sender in live]
                if lost := store.lost_to_dead_senders(report["issue"]):  # reaped ones' rows
                    report["lost_senders"] = [{"senders": names, "unknown": count}
                                              for names, count in lost.items()]
        if settings.transport.relays:  # extra fields, only with several relays
            for report in found:
                carried = store.carriers(report["issue"]) if store is not None else {}
                report["relays"] = (store.relay_counts(report["issue"]) if store is not None
                                    else {})
                for row in report["recipients"]:  # the relay's URL (no login), or null
                    row["relay"] = carried.get(row["email"].lower())
    return found


def titles(settings: Settings, issues: list[str]) -> dict[str, str | None]:
    """Each issue's subject in the default language (None where issue.yaml cannot say).

    The JSON report keeps the contract's keys only (docs/design.md, "Reports"): the tests
    and scripts that read it compare whole objects, so the subject is in the table, the CSV
    and the HTML page, not in the JSON."""
    return issue_subjects(settings.issues_dir, issues, settings.project.language)


def csv_columns(settings: Settings) -> tuple[str, ...]:
    """``CSV_COLUMNS``, and ``bounce`` (hard, soft, complaint) with a bounces: section, and
    ``relay`` with transport.relays."""
    return (CSV_COLUMNS + (("bounce",) if settings.bounces is not None else ())
            + (("relay",) if settings.transport.relays else ()))


def csv_rows(settings: Settings, issue: str | None,
             folder: Path | None = None) -> list[list[Any]]:
    """One row per recipient and issue, in ``csv_columns`` order; text that starts like a
    spreadsheet formula (an address, a relay's answer) is quoted (``util.csvcells``)."""
    found = reports(settings, issue, folder)
    names = titles(settings, [report["issue"] for report in found])
    bounces = settings.bounces is not None
    relays = bool(settings.transport.relays)
    return [safe_row([report["issue"], names[report["issue"]],
                      *(row[c] for c in CSV_COLUMNS[2:]), *([row["bounce"]] if bounces else []),
                      *([row["relay"]] if relays else [])])
            for report in found for row in report["recipients"]]


def html_report(settings: Settings, issue: str, folder: Path | None = None) -> str:
    """The self-contained HTML page for ``issue`` (empty sections when nothing is recorded)."""
    from mirage_mailer.services.htmlreport import issue_report_html  # pygal only when asked

    with existing(settings) as store:
        check_known(settings, store, issue, folder)
        return issue_report_html(store, issue, settings)


def known_issue_report(settings: Settings, issue: str,
                       stores: StoreAccess | None = None) -> str | None:
    """The HTML page for an issue the store or the project knows, else None (the web's 404)."""
    from mirage_mailer.services.htmlreport import issue_report_html  # pygal only when asked

    with existing(settings, stores) as store:
        known = (store is not None and issue in store.issues()) or \
            (settings.issues_dir / issue / "issue.yaml").is_file()
        return issue_report_html(store, issue, settings) if known else None


def period_page(settings: Settings, period: str, stores: StoreAccess | None = None) -> str:
    """The HTML page of ``report --period`` for ``period`` (``START..END``); a bad period
    is an ``InputError``."""
    from mirage_mailer.services.period_html import period_html  # pygal only when asked
    from mirage_mailer.services.period_report import parse_period, period_report

    return period_html(period_report(settings, parse_period(period), stores))
