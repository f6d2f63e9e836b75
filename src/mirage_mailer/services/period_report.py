"""``report --period START..END``: the dissemination figures an EU periodic report asks for.

Per issue sent in the period, and in total: readers reached (accepted by their server), by
the language of the message they got and by list, bounces (permanent failures, and hard
bounces that came back later through ``process-bounces``), the unsubscribes that followed,
and opens and clicks where tracking was on (estimates: see
docs/guide/reporting.md). An issue belongs to the period of its send date, the moment the
server first accepted one of its messages, in UTC; all of that issue's figures count there,
even for messages a resumed run delivered a few days later.

``period_html`` draws the same figures as one HTML page; ``commands/report.py`` prints them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from mirage_mailer.project.config import Settings
from mirage_mailer.project.content import Issue, load_issue
from mirage_mailer.project.issue_titles import issue_subject
from mirage_mailer.services.reporting import existing
from mirage_mailer.services.store_access import StoreAccess
from mirage_mailer.store import ReportReader
from mirage_mailer.util.csvcells import safe_row
from mirage_mailer.util.errors import InputError, MirageError, Problem, shorten
from mirage_mailer.util.langs import check_language, normalise_language

PERIOD_HINT = "write it as START..END with ISO dates, e.g. --period 2021-01-01..2021-12-31"
_PERIOD = re.compile(r"^\s*(?P<start>[^.\s]*)\s*\.\.\s*(?P<end>[^.\s]*)\s*$")
FIXED_COLUMNS = ("issue", "subject", "sent_on", "reached", "bounces", "unsubscribes",
                 "opens_estimate", "clicks_estimate")


@dataclass(frozen=True)
class Period:
    """Whole UTC days, both ends included."""

    start: date
    end: date

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    def __contains__(self, moment: datetime) -> bool:
        first = datetime.combine(self.start, time(0), UTC)
        after = datetime.combine(self.end + timedelta(days=1), time(0), UTC)
        return first <= moment.astimezone(UTC) < after


def parse_period(text: str) -> Period:
    """``2021-01-01..2021-12-31``; anything else is an ``InputError`` naming the fix."""
    match = _PERIOD.match(text)
    if not match:
        raise InputError(Problem("--period", None, f"'{shorten(text)}' is not a period",
                                 PERIOD_HINT))
    ends: list[date] = []
    for part in ("start", "end"):
        value = match[part]
        try:
            ends.append(date.fromisoformat(value))
        except ValueError:
            raise InputError(Problem("--period", None, f"the {part} '{shorten(value)}' is not a "
                                     "date (YYYY-MM-DD)", PERIOD_HINT)) from None
    start, end = ends
    if start > end:
        raise InputError(Problem("--period", None, f"the period ends ({end}) before it starts "
                                 f"({start})", "put the earlier date first"))
    return Period(start, end)


@dataclass
class Figures:
    """One issue's figures, or the period's total (``issue`` is None)."""

    issue: str | None
    subject: str | None
    sent_at: datetime | None
    reached: int = 0
    bounces: int = 0
    unsubscribes: int = 0
    opens: int | None = None  # readers who opened (unique): an estimate; None = not tracked
    clicks: int | None = None  # readers who clicked a link (unique): an estimate
    by_language: Counter[str] = field(default_factory=Counter)
    by_list: Counter[str] = field(default_factory=Counter)

    def add(self, other: Figures) -> None:
        self.reached += other.reached
        self.bounces += other.bounces
        self.unsubscribes += other.unsubscribes
        if other.opens is not None:
            self.opens = (self.opens or 0) + other.opens
        if other.clicks is not None:
            self.clicks = (self.clicks or 0) + other.clicks
        self.by_language.update(other.by_language)
        self.by_list.update(other.by_list)


@dataclass
class PeriodReport:
    period: Period
    project: str
    issues: list[Figures]
    total: Figures
    people: int  # distinct addresses reached over the period (a reader of 3 issues is 1)
    tracked_opens: bool
    tracked_clicks: bool

    @property
    def languages(self) -> list[str]:
        return sorted(self.total.by_language)

    @property
    def lists(self) -> list[str]:
        return sorted(self.total.by_list)


def period_report(settings: Settings, period: Period,
                  stores: StoreAccess | None = None) -> PeriodReport:
    """Every issue first sent within ``period``, oldest first, with the total."""
    opens_on, clicks_on = settings.tracking.opens, settings.tracking.clicks
    found: list[Figures] = []
    people = 0
    with existing(settings, stores) as store:
        if store is not None:
            starts = {issue: moment for issue, at in store.first_sends().items()
                      if (moment := _moment(at)) is not None and moment in period}
            unsubscribes = store.unsubscribes_by_issue()
            for issue in sorted(starts, key=lambda i: (starts[i], i)):
                figures = _issue_figures(store, settings, issue, starts[issue], opens_on,
                                         clicks_on)
                figures.unsubscribes = unsubscribes.get(issue, 0)
                found.append(figures)
            people = store.distinct_reached([f.issue for f in found if f.issue])
    total = Figures(None, None, None)
    if opens_on:
        total.opens = 0
    if clicks_on:
        total.clicks = 0
    for figures in found:
        total.add(figures)
    return PeriodReport(period, settings.project.name, found, total, people,
                        tracked_opens=total.opens is not None,
                        tracked_clicks=total.clicks is not None)


def _moment(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _issue_figures(store: ReportReader, settings: Settings, issue: str, sent_at: datetime,
                   opens_on: bool, clicks_on: bool) -> Figures:
    default = settings.project.language
    sent = store.sent_subjects().get(issue, {}).get(default)  # the subject readers got
    figures = Figures(issue, sent or issue_subject(settings.issues_dir, issue, default), sent_at)
    loaded = _issue(settings, issue)
    for status, lang, list_name, n in store.breakdown(issue):
        if status == "failed":
            figures.bounces += n
        if status != "sent":
            continue
        figures.reached += n
        figures.by_language[_message_language(loaded, lang, default)] += n
        figures.by_list[list_name] += n
    figures.bounces += store.bounce_counts(issue)["hard"]  # accepted, then bounced back
    engaged = store.readers_engaged(issue)
    if opens_on or engaged["opens"]:
        figures.opens = engaged["openers"]
    if clicks_on or engaged["clicks"]:
        figures.clicks = engaged["clickers"]
    return figures


def _issue(settings: Settings, issue: str) -> Issue | None:
    """The issue folder as it is now, for its languages; None when it no longer loads."""
    folder = settings.issues_dir / issue
    if not (folder / "issue.yaml").is_file():
        return None
    try:
        return load_issue(folder, settings.project.language)[0]
    except MirageError:
        return None


def _message_language(issue: Issue | None, lang: str | None, default: str) -> str:
    """The language the reader's message was in: theirs where the issue had it (the rule of
    ``Issue.pick_language``); without the issue folder, their listed language."""
    if issue is not None:
        return issue.pick_language(lang)
    if lang and check_language(lang) is None:
        return normalise_language(lang)
    return default


# -- CSV -----------------------------------------------------------------------------------


def csv_header(report: PeriodReport) -> list[str]:
    return [*FIXED_COLUMNS, *(f"lang_{code}" for code in report.languages),
            *(f"list_{name}" for name in report.lists)]


def csv_rows(report: PeriodReport) -> list[list[Any]]:
    """One row per issue, then ``total`` (its ``subject`` says the period and the number of
    distinct readers); opens and clicks are empty where they were not tracked. A subject
    that starts like a spreadsheet formula is quoted (``util.csvcells``)."""
    rows = [safe_row(_row(report, f, f.issue or "", f.subject or "",
                          f.sent_at.date().isoformat() if f.sent_at else ""))
            for f in report.issues]
    summary = (f"{len(report.issues)} issue(s) sent {report.period.label}; "
               f"{report.people} distinct address(es) reached")
    rows.append(_row(report, report.total, "total", summary, ""))
    return rows


def _row(report: PeriodReport, f: Figures, issue: str, subject: str,
         sent_on: str) -> list[Any]:
    return [issue, subject, sent_on, f.reached, f.bounces, f.unsubscribes,
            "" if f.opens is None else f.opens, "" if f.clicks is None else f.clicks,
            *(f.by_language.get(code, 0) for code in report.languages),
            *(f.by_list.get(name, 0) for name in report.lists)]


def as_json(report: PeriodReport) -> dict[str, Any]:
    """The period as one JSON object (its own shape: the per-issue report JSON is unchanged)."""

    def one(f: Figures) -> dict[str, Any]:
        data: dict[str, Any] = {
            "reached": f.reached, "bounces": f.bounces, "unsubscribes": f.unsubscribes,
            "by_language": dict(sorted(f.by_language.items())),
            "by_list": dict(sorted(f.by_list.items())),
            "opens_estimate": f.opens, "clicks_estimate": f.clicks}
        if f.issue is not None:
            data = {"issue": f.issue, "subject": f.subject,
                    "sent_at": f.sent_at.isoformat() if f.sent_at else None, **data}
        return data

    return {"period": {"start": report.period.start.isoformat(),
                       "end": report.period.end.isoformat()},
            "issues": [one(f) for f in report.issues],
            "total": {**one(report.total), "distinct_reached": report.people}}
