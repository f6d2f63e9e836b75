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
from mirage_mailer.store.guard import check_read_memory
from mirage_mailer.store.ledger import Ledger
from mirage_mailer.util.csvcells import safe_row
from mirage_mailer.util.errors import InputError, Problem, display_path, shorten
from mirage_mailer.util.visible import visible

STATUSES: tuple[str, ...] = REPORT_STATUSES  # the report's counts, in the table's order
CSV_COLUMNS = ("issue", "subject", "email", "status", "attempts", "message_id", "smtp_code",
               "smtp_response", "last_attempt_at")


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
    if where.is_dir():  # a folder begun without its issue.yaml: say so, as validate does
        raise InputError(Problem(display_path(where / "issue.yaml"), None, "file not found, "
                                 "and nothing recorded for this issue in the tracking store",
                                 "create it with subject, list and articles, or give one of the "
                                 f"issues: {listed}"))
    raise InputError(Problem(display_path(where), None, "no such issue: no issue folder, and "
                             "nothing recorded for it in the tracking store",
                             f"give one of the issues: {listed}"))


def restore_warnings(settings: Settings) -> list[str]:
    """A line per issue this project sent further than its store knows (a store restored
    from an older backup: ``store/restored.py``, which the report's opening of the store
    compared): its counts are short of who got it, and send and run-due refuse it."""
    ledger = Ledger(settings.state_dir)
    return [f"warning: {display_path(ledger.path)}: issue {issue}: this project sent it to "
            "more readers than the tracking database knows (restored from an older backup?): "
            "these counts miss them, and send and run-due refuse the issue "
            "(docs/operations.md#backups)" for issue in sorted(ledger.read().behind)]


def check_memory(settings: Settings) -> None:
    """Refuse (exit 2), as ``send`` does and with its words (``store.guard``), to report
    from a store that lost its memory: zero counts would say nobody got an issue that
    everyone got."""
    check_read_memory(settings.tracking.database, settings.state_dir)


@contextmanager
def report_stream(settings: Settings, issue: str | None, folder: Path | None = None, *,
                  unsent: bool = False,
                  stores: StoreAccess | None = None) -> Iterator[list[dict[str, Any]]]:
    """One report per issue (``issue``, or every issue in the store): the JSON of
    docs/design.md "Reports", its extra fields when enabled (``engagement`` with tracking,
    ``bounces`` with a bounces: section, ``senders``, ``relays`` with several relays).

    Each ``recipients`` is an iterator, read from the store a page at a time while the
    context is open: a report of any size is written in flat memory, and the table, which
    reads no row, costs only the counts. ``unsent`` reads only the rows not sent. An
    ``issue`` (its ``folder`` as given) that neither exists nor has rows is an
    ``InputError``, raised on entry, before anything is written."""
    with existing(settings, stores) as store:
        if issue:
            check_known(settings, store, issue, folder)
        issues = [issue] if issue else (store.issues() if store is not None else [])
        yield [_issue_report(settings, store, name, unsent=unsent) for name in issues]


def _issue_report(settings: Settings, store: ReportReader | None, issue: str, *,
                  unsent: bool) -> dict[str, Any]:
    """One issue's report, its fields in the order the JSON has always had them."""
    counts = store.counts(issue) if store is not None else dict.fromkeys(REPORT_STATUSES, 0)
    report: dict[str, Any] = {"issue": issue, "counts": counts,
                              "recipients": _rows(settings, store, issue, unsent=unsent)}
    if tracking_on(settings) and store is not None:  # extra field, only when enabled
        report["engagement"] = store.engagement(issue)
    if settings.bounces is not None:  # extra fields, only with a bounces: section
        counted = store.bounce_counts(issue) if store is not None else {}
        report["bounces"] = bounce_summary(counts.get("sent", 0), counted)
    if store is not None:  # a PostgreSQL store's senders running now (extra field)
        if live := store.senders(issue):
            report["senders"] = [sender.as_json() for sender in live]
        if lost := store.lost_to_dead_senders(issue):  # reaped ones' rows
            report["lost_senders"] = [{"senders": names, "unknown": count}
                                      for names, count in lost.items()]
    if settings.transport.relays:  # extra field, only with several relays
        report["relays"] = store.relay_counts(issue) if store is not None else {}
    return report


def _rows(settings: Settings, store: ReportReader | None, issue: str, *,
          unsent: bool) -> Iterator[dict[str, Any]]:
    """The issue's recipients as the store pages them, with ``bounce`` (hard, soft,
    complaint, or null) and ``relay`` (its URL, no login, or null) when enabled. Read when
    iterated, so only one issue's bounced addresses are held at a time."""
    if store is None:
        return
    bounces, relays = settings.bounces is not None, bool(settings.transport.relays)
    kinds = store.bounce_kinds(issue) if bounces else {}
    for row in store.recipients(issue, relay=relays, unsent=unsent):
        if bounces:  # before the relay, as the keys have always come
            relay = row.pop("relay", None)
            row["bounce"] = kinds.get(row["email"].lower())
            if relays:
                row["relay"] = relay
        yield row


def titles(settings: Settings, issues: list[str]) -> dict[str, str | None]:
    """Each issue's subject in the default language (None where issue.yaml cannot say).

    The JSON report keeps the contract's keys only (docs/design.md, "Reports"): the tests
    and scripts that read it compare whole objects, so the subject is in the table, the CSV
    and the HTML page, not in the JSON. An issue the store kept as sent is named by the
    subject its readers got first, not by issue.yaml edited since."""
    names = issue_subjects(settings.issues_dir, issues, settings.project.language)
    with existing(settings) as store:
        sent = store.sent_subjects() if store is not None else {}
    for issue in issues:
        if subject := sent.get(issue, {}).get(settings.project.language):
            names[issue] = subject
    return names


def csv_columns(settings: Settings) -> tuple[str, ...]:
    """``CSV_COLUMNS``, and ``bounce`` (hard, soft, complaint) with a bounces: section, and
    ``relay`` with transport.relays."""
    return (CSV_COLUMNS + (("bounce",) if settings.bounces is not None else ())
            + (("relay",) if settings.transport.relays else ()))


def csv_rows(settings: Settings, found: list[dict[str, Any]]) -> Iterator[list[Any]]:
    """One row per recipient of the reports ``found`` (``report_stream``), in
    ``csv_columns`` order, as they are read; text that starts like a spreadsheet formula
    (an address, a relay's answer) is quoted (``util.csvcells``)."""
    names = titles(settings, [report["issue"] for report in found])
    extra = csv_columns(settings)[len(CSV_COLUMNS):]
    for report in found:
        for row in report["recipients"]:
            if row["smtp_response"]:  # a row kept before relay text was made visible
                row = {**row, "smtp_response": visible(row["smtp_response"])}
            yield safe_row([report["issue"], names[report["issue"]],
                            *(row[c] for c in CSV_COLUMNS[2:]), *(row[c] for c in extra)])


def html_report(settings: Settings, issue: str, folder: Path | None = None,
                stores: StoreAccess | None = None) -> str:
    """The self-contained HTML page for ``issue`` (empty sections when nothing is recorded)."""
    from mirage_mailer.services.htmlreport import issue_report_html  # pygal only when asked

    with existing(settings, stores) as store:
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
