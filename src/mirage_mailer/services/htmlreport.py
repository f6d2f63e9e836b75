"""One self-contained HTML page per issue: charts (inline SVG from pygal) and tables.

No external asset of any kind: no <script>, no stylesheet or font links, no remote image. The
page can be mailed, archived or opened from disk and looks the same, and it is what
``report ISSUE_DIR --format html --out FILE`` writes and ``/report/<issue-id>`` serves.

The markup lives in the Jinja2 templates of ``data/report`` (autoescaped, like the web pages);
this module reads the store, computes the figures and draws the charts.

It holds personal data (failed addresses with the servers' replies): keep the file private;
the web route sits behind HTTP basic auth.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from typing import Any

import jinja2
import pygal
from pygal.style import Style

from mirage_mailer.project.config import Settings
from mirage_mailer.project.issue_titles import issue_subject
from mirage_mailer.services.bounce_rates import (
    COMPLAINT_LIMIT,
    HARD_BOUNCE_LIMIT,
    bounce_summary,
    percent,
)
from mirage_mailer.store import REPORT_STATUSES, ReportReader
from mirage_mailer.util.pagetemplates import package_environment

FAILURES_SHOWN = 500
UNSUBSCRIBES_SHOWN = 50
# For the pages served by the web routes; the web app's guard may set its own (stricter or
# equal) policy over it. Inline styles are needed by the page and by pygal's SVG.
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")

STATUS_COLOURS = {
    "sent": "#2e7d32", "failed": "#c62828", "pending": "#9e9e9e", "suppressed": "#ef6c00",
    "invalid": "#6a1b9a", "unknown": "#795548", "deferred": "#f9a825", "withdrawn": "#607d8b",
}
_BUCKETS = (1, 5, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400,
            7 * 86400, 30 * 86400)
_MAX_BARS = 48
_TIMELINE_KINDS = ("sent", "failed", "deferred", "suppressed")


@dataclass
class Timeline:
    """Delivery outcomes per second and kind, not one entry per message: what the chart
    draws (in buckets of a second or more) costs the seconds a send took, whatever the
    size of the list. ``first`` and ``last`` keep their fraction of a second."""

    seconds: Counter[tuple[int, str]] = field(default_factory=Counter)
    first: datetime | None = None
    last: datetime | None = None
    first_sent: datetime | None = None

    def add(self, when: datetime, kind: str) -> None:
        self.seconds[(when - _EPOCH) // _SECOND, kind] += 1
        self.first = when if self.first is None else min(self.first, when)
        self.last = when if self.last is None else max(self.last, when)
        if kind == "sent":
            self.first_sent = when if self.first_sent is None else min(self.first_sent, when)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


@dataclass
class ReportData:
    """What the page shows, read from the store in one go, in memory that does not grow
    with the list: the counts, at most ``FAILURES_SHOWN`` failures, a timeline per second."""

    issue: str
    counts: dict[str, int]
    failures: list[dict[str, Any]] = field(default_factory=list)
    failures_total: int = 0
    timeline: Timeline = field(default_factory=Timeline)
    unsubscriptions: list[dict[str, Any]] = field(default_factory=list)
    engagement: dict[str, Any] = field(default_factory=dict)
    bounces: dict[str, int] = field(default_factory=dict)


def collect(store: ReportReader | None, issue: str) -> ReportData:
    """Everything the page needs; zero counts and empty sections without a store."""
    if store is None:
        return ReportData(issue, dict.fromkeys(REPORT_STATUSES, 0))
    data = ReportData(issue, store.counts(issue))
    data.failures_total = data.counts["failed"]
    failed = (row for row in store.recipients(issue, unsent=True) if row["status"] == "failed")
    data.failures = list(islice(failed, FAILURES_SHOWN)) if data.failures_total else []
    for at, kind in store.timeline(issue):
        if (when := _parse_time(at)) is not None:
            data.timeline.add(when, kind)
    data.unsubscriptions = store.unsubscriptions()
    data.engagement = store.engagement(issue)
    data.bounces = store.bounce_counts(issue)
    return data


def issue_report_html(store: ReportReader | None, issue: str, settings: Settings,
                      *, now: datetime | None = None) -> str:
    """The complete page for ``issue``, named by the subject its readers got first where
    the store kept it."""
    sent = store.sent_subjects().get(issue, {}) if store is not None else {}
    return render_report(collect(store, issue), settings, now=now,
                         subject=sent.get(settings.project.language))


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _when(value: object) -> str:
    """An ISO time from the store as ``YYYY-MM-DD HH:MM:SS`` (UTC), or as it is."""
    parsed = _parse_time(value) if isinstance(value, str) else None
    return f"{parsed.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if parsed else str(value or "")


def integer_axis(largest: int) -> dict[str, Any]:
    """Whole-number ticks for small counts (pygal would draw 0.1 steps up to 1)."""
    if largest > 10:
        return {}
    return {"y_labels": list(range(largest + 1)), "range": (0, max(1, largest))}


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """The templates of ``data/report``, autoescaped as the web pages are (``web.pages``)."""
    env = package_environment("data/report", keep_trailing_newline=True)
    env.filters["when"] = _when
    env.filters["percent"] = _percent
    return env


def render(template: str, **values: Any) -> str:
    """A template of ``data/report`` (autoescaped) with ``values``."""
    return _environment().get_template(template).render(**values)


def page(title: str, body: str, *, head: str = "") -> str:
    """A minimal standalone HTML page (also used for the web routes' error pages).

    ``title`` is text (escaped); ``body`` and ``head`` are HTML, inserted as they are.
    """
    return _environment().get_template("page.html.j2").render(title=title, body=body, head=head)


def render_report(data: ReportData, settings: Settings, *, now: datetime | None = None,
                  subject: str | None = None) -> str:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    total = sum(data.counts.values())
    subject = subject or issue_subject(settings.issues_dir, data.issue, settings.project.language)
    return _environment().get_template("report.html.j2").render(
        title=f"{subject or data.issue} · delivery report",
        head="",
        issue=data.issue,
        subject=subject,
        project=settings.project.name or "mirage-mailer",
        generated=f"{now:%Y-%m-%d %H:%M}",
        statuses=REPORT_STATUSES,
        counts=data.counts,
        total=total,
        status_chart=_status_chart(data.counts) if total else "",
        timeline=_timeline(data),
        failures=data.failures,
        failures_total=data.failures_total,
        unsubscribes=_unsubscribes(data),
        engagement=_engagement(data, settings),
        bounces=_bounces(data, settings),
    )


# -- charts --------------------------------------------------------------------------------


def _style(colours: tuple[str, ...]) -> Style:
    font = "Arial, Helvetica, sans-serif"
    return Style(background="transparent", plot_background="transparent",
                 foreground="#1d2433", foreground_strong="#1d2433",
                 foreground_subtle="#8a94a6", colors=colours, font_family=font,
                 label_font_family=font, major_label_font_family=font,
                 value_font_family=font, value_label_font_family=font,
                 tooltip_font_family=font, title_font_family=font,
                 legend_font_family=font, no_data_font_family=font,
                 label_font_size=12, major_label_font_size=12, legend_font_size=13,
                 value_font_size=12, no_data_font_size=20)


_SCRIPT = re.compile(r"<script\b.*?</script>", re.S | re.I)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def svg(chart: Any) -> str:
    """pygal's SVG without its script (tooltips need JS; the page has none) or comments."""
    text: str = chart.render(is_unicode=True)
    text = _SCRIPT.sub("", text)
    text = _COMMENT.sub("", text)
    return text


def chart_config(colours: tuple[str, ...], **options: Any) -> dict[str, Any]:
    return {"style": _style(colours), "disable_xml_declaration": True, "js": [],
            "width": 900, "height": 380, "legend_at_bottom": True, "no_prefix": False,
            "print_values": False, **options}


# -- what each section shows (the markup is in data/report/report.html.j2) -----------------


def _status_chart(counts: dict[str, int]) -> str:
    present = [s for s in REPORT_STATUSES if counts[s]]
    chart = pygal.Pie(**chart_config(tuple(STATUS_COLOURS[s] for s in present),
                                      inner_radius=0.45, height=320, legend_at_bottom=False))
    for status in present:
        chart.add(f"{status} ({counts[status]})", counts[status])
    return svg(chart)


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _bucket(span: timedelta) -> int:
    seconds = span.total_seconds()
    return next((b for b in _BUCKETS if seconds / b < _MAX_BARS), _BUCKETS[-1])


def _label(when: datetime, bucket: int, multi_day: bool) -> str:
    if bucket >= 86400:
        return f"{when:%Y-%m-%d}"
    if bucket < 60:
        return f"{when:%H:%M:%S}" if not multi_day else f"{when:%m-%d %H:%M:%S}"
    return f"{when:%H:%M}" if not multi_day else f"{when:%m-%d %H:%M}"


def _timeline(data: ReportData) -> dict[str, str] | None:
    """The stacked bars of attempts over time, and the sentence under them."""
    line = data.timeline
    if line.first is None or line.last is None:
        return None
    first, last = line.first.astimezone(UTC), line.last.astimezone(UTC)
    bucket = _bucket(last - first)
    origin = int(first.timestamp()) // bucket * bucket
    start = datetime.fromtimestamp(origin, UTC)
    bars = int((last - start).total_seconds() // bucket) + 1
    series: dict[str, list[int]] = {kind: [0] * bars for kind in _TIMELINE_KINDS}
    for (second, kind), count in line.seconds.items():
        if kind in series:  # whole seconds: a bucket is whole seconds from a whole second
            series[kind][(second - origin) // bucket] += count
    kinds = [k for k in _TIMELINE_KINDS if any(series[k])]
    multi_day = first.date() != last.date()
    labels = [_label(start + timedelta(seconds=bucket * n), bucket, multi_day)
              for n in range(bars)]
    chart = pygal.StackedBar(**chart_config(
        tuple(STATUS_COLOURS[k] for k in kinds), x_label_rotation=30,
        x_labels_major_every=max(1, bars // 12), show_minor_x_labels=bars <= 12,
        y_title="attempts", x_title=f"time (UTC), per {_duration(bucket)}",
        **integer_axis(max(sum(column) for column in zip(*series.values(), strict=True)))))
    chart.x_labels = labels
    for kind in kinds:
        chart.add(kind, series[kind])
    return {"chart": svg(chart), "totals": ", ".join(f"{sum(series[k])} {k}" for k in kinds),
            "first": f"{first:%Y-%m-%d %H:%M:%S}", "last": f"{last:%Y-%m-%d %H:%M:%S}"}


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return unit if n == 1 else f"{n} {unit}s"
    return "second" if seconds == 1 else f"{seconds} seconds"


def _unsubscribes(data: ReportData) -> dict[str, Any]:
    """All unsubscribes, those since this issue was first sent, and the latest, newest first."""
    events = data.unsubscriptions
    since = data.timeline.first_sent
    after = [e for e in events if since is not None
             and (when := _parse_time(e["at"])) is not None and when >= since]
    return {"total": str(len(events)), "since": str(len(after)) if since else "–",
            "latest": list(reversed(events))[:UNSUBSCRIBES_SHOWN]}


def _engagement(data: ReportData, settings: Settings) -> dict[str, Any]:
    """What the opens-and-clicks section shows: ``opens`` and ``clicks`` are None when that
    part is left out (not tracked and nothing recorded); ``clicks`` is a list otherwise."""
    tracking = settings.tracking
    engagement = data.engagement or {"opens": 0, "unique_opens": 0, "clicks": []}
    recorded = engagement["opens"] or engagement["clicks"]
    tracked = bool(tracking.opens or tracking.clicks or recorded)
    opens = None
    if tracked and (tracking.opens or engagement["opens"]):
        opens = {"unique": engagement["unique_opens"], "total": engagement["opens"]}
    clicks: list[dict[str, Any]] | None = None
    chart = ""
    if tracked and (tracking.clicks or engagement["clicks"]):
        clicks = engagement["clicks"]
        if clicks:
            bars = pygal.HorizontalBar(**chart_config(
                ("#003399", "#7aa2e3"), height=max(200, 40 * len(clicks) + 120),
                truncate_label=60, **integer_axis(max(c["clicks"] for c in clicks))))
            bars.x_labels = [str(c["url"]) for c in clicks]
            bars.add("readers (unique)", [c["unique"] for c in clicks])
            bars.add("clicks", [c["clicks"] for c in clicks])
            chart = svg(bars)
    return {"tracked": tracked, "opens": opens, "clicks": clicks, "chart": chart}


def _bounces(data: ReportData, settings: Settings) -> dict[str, Any] | None:
    """The bounces section: None (left out) without a bounces: section and nothing recorded."""
    if settings.bounces is None and not any(data.bounces.values()):
        return None
    summary = bounce_summary(data.counts.get("sent", 0), data.bounces)
    return {**summary, "bounce_percent": percent(summary["bounce_rate"], HARD_BOUNCE_LIMIT),
            "complaint_percent": percent(summary["complaint_rate"], COMPLAINT_LIMIT)}
