"""One self-contained HTML page per issue: charts (inline SVG from pygal) and tables.

No external asset of any kind: no <script>, no stylesheet or font links, no remote image. The
page can be mailed, archived or opened from disk and looks the same, and it is what
``report ISSUE_DIR --format html --out FILE`` writes and ``/report/<issue-id>`` serves.

It holds personal data (failed addresses with the servers' replies): keep the file private;
the web route sits behind HTTP basic auth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

import pygal
from pygal.style import Style

from mirage_mailer.project.config import Settings
from mirage_mailer.store import REPORT_STATUSES, Store

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
_CSS = """
body{margin:0;background:#f4f6fa;color:#1d2433;font:15px/1.5 Arial,Helvetica,sans-serif}
main{max-width:980px;margin:0 auto;padding:16px}
header{background:#003399;color:#fff;padding:20px 16px}
header h1{margin:0;font-size:24px} header p{margin:4px 0 0;color:#dfe6f5}
section{background:#fff;border-radius:6px;padding:16px;margin:16px 0;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{margin:0 0 12px;font-size:19px;color:#003399}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e3e7ef;vertical-align:top}
th{background:#f0f3f9} td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.words{font-family:Consolas,Menlo,monospace;font-size:13px;word-break:break-word;min-width:14em}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 12px}
.card{flex:1 1 120px;border:1px solid #e3e7ef;border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:24px} .card span{color:#4a5568;font-size:13px}
svg.pygal-chart{width:100%;height:auto;max-height:420px}
.scroll{overflow-x:auto} .note{color:#4a5568;font-size:13px} .empty{color:#4a5568;font-style:italic}
"""


@dataclass
class ReportData:
    """What the page shows, read from the store in one go."""

    issue: str
    counts: dict[str, int]
    failures: list[dict[str, Any]] = field(default_factory=list)
    failures_total: int = 0
    timeline: list[tuple[datetime, str]] = field(default_factory=list)
    unsubscriptions: list[dict[str, Any]] = field(default_factory=list)
    engagement: dict[str, Any] = field(default_factory=dict)


def collect(store: Store | None, issue: str) -> ReportData:
    """Everything the page needs; zero counts and empty sections without a store."""
    if store is None:
        return ReportData(issue, dict.fromkeys(REPORT_STATUSES, 0))
    data = ReportData(issue, store.counts(issue))
    for row in store.recipients(issue):
        if row["status"] == "failed":
            data.failures_total += 1
            if len(data.failures) < FAILURES_SHOWN:
                data.failures.append(row)
    data.timeline = [(when, kind) for at, kind in store.timeline(issue)
                     if (when := _parse_time(at)) is not None]
    data.unsubscriptions = store.unsubscriptions()
    data.engagement = store.engagement(issue)
    return data


def issue_report_html(store: Store | None, issue: str, settings: Settings,
                      *, now: datetime | None = None) -> str:
    """The complete page for ``issue``."""
    return render_report(collect(store, issue), settings, now=now)


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


def _integer_axis(largest: int) -> dict[str, Any]:
    """Whole-number ticks for small counts (pygal would draw 0.1 steps up to 1)."""
    if largest > 10:
        return {}
    return {"y_labels": list(range(largest + 1)), "range": (0, max(1, largest))}


def page(title: str, body: str, *, head: str = "") -> str:
    """A minimal standalone HTML page (also used for the web routes' error pages)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"robots\" content=\"noindex, nofollow\">\n"
            f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n{head}</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


def render_report(data: ReportData, settings: Settings, *, now: datetime | None = None) -> str:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    project = settings.project.name or "mirage-mailer"
    title = f"{data.issue} · delivery report"
    header = (f"<header><h1>{escape(data.issue)}</h1><p>{escape(project)} · delivery report · "
              f"generated {now:%Y-%m-%d %H:%M} UTC</p></header>")
    sections = [
        _status_section(data),
        _timeline_section(data),
        _failures_section(data),
        _unsubscribes_section(data),
        _engagement_section(data, settings),
    ]
    return page(title, header + "<main>\n" + "\n".join(sections) + "\n</main>")


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


def _chart_config(colours: tuple[str, ...], **options: Any) -> dict[str, Any]:
    return {"style": _style(colours), "disable_xml_declaration": True, "js": [],
            "width": 900, "height": 380, "legend_at_bottom": True, "no_prefix": False,
            "print_values": False, **options}


# -- sections ------------------------------------------------------------------------------


def _section(title: str, body: str, ident: str) -> str:
    return f'<section id="{ident}">\n<h2>{escape(title)}</h2>\n{body}\n</section>'


def _table(cls: str, head: str, rows: str) -> str:
    """A table that scrolls sideways on a narrow screen instead of widening the page."""
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


def _cards(items: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>'
        for label, value in items) + "</div>"


def _status_section(data: ReportData) -> str:
    total = sum(data.counts.values())
    rows = "".join(
        f'<tr><td>{status}</td><td class="num">{data.counts[status]}</td>'
        f'<td class="num">{_percent(data.counts[status], total)}</td></tr>'
        for status in REPORT_STATUSES)
    table = _table("counts", '<th>status</th><th class="num">recipients</th>'
                   '<th class="num">share</th>',
                   f'{rows}<tr><th>total</th><th class="num">{total}</th><th></th></tr>')
    if not total:
        return _section("Status", '<p class="empty">Nothing recorded for this issue yet.</p>'
                        + table, "status")
    present = [s for s in REPORT_STATUSES if data.counts[s]]
    chart = pygal.Pie(**_chart_config(tuple(STATUS_COLOURS[s] for s in present),
                                      inner_radius=0.45, height=320, legend_at_bottom=False))
    for status in present:
        chart.add(f"{status} ({data.counts[status]})", data.counts[status])
    cards = _cards([("recipients", str(total)), ("sent", str(data.counts["sent"])),
                    ("failed", str(data.counts["failed"])),
                    ("still to send", str(data.counts["pending"] + data.counts["unknown"]))])
    return _section("Status", cards + svg(chart) + table, "status")


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


def _timeline_section(data: ReportData) -> str:
    if not data.timeline:
        return _section("Deliveries over time",
                        '<p class="empty">No delivery attempt recorded yet.</p>', "timeline")
    times = [when.astimezone(UTC) for when, _ in data.timeline]
    first, last = min(times), max(times)
    bucket = _bucket(last - first)
    start = datetime.fromtimestamp(int(first.timestamp()) // bucket * bucket, UTC)
    bars = int((last - start).total_seconds() // bucket) + 1
    series: dict[str, list[int]] = {kind: [0] * bars for kind in _TIMELINE_KINDS}
    for when, (_, kind) in zip(times, data.timeline, strict=True):
        index = int((when - start).total_seconds() // bucket)
        if kind in series:
            series[kind][index] += 1
    kinds = [k for k in _TIMELINE_KINDS if any(series[k])]
    multi_day = first.date() != last.date()
    labels = [_label(start + timedelta(seconds=bucket * n), bucket, multi_day)
              for n in range(bars)]
    chart = pygal.StackedBar(**_chart_config(
        tuple(STATUS_COLOURS[k] for k in kinds), x_label_rotation=30,
        x_labels_major_every=max(1, bars // 12), show_minor_x_labels=bars <= 12,
        y_title="attempts", x_title=f"time (UTC), per {_duration(bucket)}",
        **_integer_axis(max(sum(column) for column in zip(*series.values(), strict=True)))))
    chart.x_labels = labels
    for kind in kinds:
        chart.add(kind, series[kind])
    totals = ", ".join(f"{sum(series[k])} {k}" for k in kinds)
    note = (f'<p class="note">{escape(totals)} between {first:%Y-%m-%d %H:%M:%S} and '
            f'{last:%Y-%m-%d %H:%M:%S} UTC (deferred attempts were retried).</p>')
    return _section("Deliveries over time", svg(chart) + note, "timeline")


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return unit if n == 1 else f"{n} {unit}s"
    return "second" if seconds == 1 else f"{seconds} seconds"


def _failures_section(data: ReportData) -> str:
    if not data.failures_total:
        return _section("Failures", '<p class="empty">No permanent failure.</p>', "failures")
    rows = "".join(
        f"<tr><td>{escape(r['email'])}</td>"
        f"<td class=\"num\">{escape(str(r['smtp_code'] or ''))}</td>"
        f"<td class=\"words\">{escape(r['smtp_response'] or '')}</td>"
        f"<td class=\"num\">{r['attempts']}</td><td>{escape(_when(r['last_attempt_at']))}</td></tr>"
        for r in data.failures)
    more = ""
    if data.failures_total > len(data.failures):
        more = (f'<p class="note">The first {len(data.failures)} of {data.failures_total} are '
                "shown; <code>mirage-mailer report ISSUE_DIR --format csv</code> lists all.</p>")
    table = _table("failures", '<th>address</th><th class="num">code</th><th>the server said'
                   '</th><th class="num">attempts</th><th>last attempt (UTC)</th>', rows)
    intro = (f"<p>{data.failures_total} recipient(s) were refused permanently (5xx) and will "
             "not be retried. Check the addresses; a full mailbox or an unknown user "
             "usually needs the list to be corrected.</p>")
    return _section("Failures", intro + table + more, "failures")


def _unsubscribes_section(data: ReportData) -> str:
    events = data.unsubscriptions
    sent_times = [when for when, kind in data.timeline if kind == "sent"]
    since = min(sent_times) if sent_times else None
    after = [e for e in events if since is not None
             and (when := _parse_time(e["at"])) is not None and when >= since]
    cards = _cards([("unsubscribed in total (all lists)", str(len(events))),
                    ("since this issue was sent", str(len(after)) if since else "–")])
    if not events:
        return _section("Unsubscribes", cards + '<p class="empty">Nobody has unsubscribed.</p>',
                        "unsubscribes")
    latest = list(reversed(events))[:UNSUBSCRIBES_SHOWN]
    rows = "".join(f"<tr><td>{escape(_when(e['at']))}</td><td>{escape(str(e['source'] or ''))}"
                   "</td></tr>" for e in latest)
    table = _table("unsubscribes", "<th>when (UTC)</th><th>how</th>", rows)
    note = (f'<p class="note">The latest {len(latest)}, newest first; addresses are left out. '
            "Unsubscribing applies to every list, so these are not per issue.</p>")
    return _section("Unsubscribes", cards + table + note, "unsubscribes")


def _engagement_section(data: ReportData, settings: Settings) -> str:
    tracking = settings.tracking
    engagement = data.engagement or {"opens": 0, "unique_opens": 0, "clicks": []}
    recorded = engagement["opens"] or engagement["clicks"]
    if not (tracking.opens or tracking.clicks or recorded):
        return _section("Opens and clicks", '<p class="empty">Not tracked: '
                        "<code>tracking.opens</code> and <code>tracking.clicks</code> are off "
                        "(the default; see the README on GDPR).</p>", "engagement")
    sent = data.counts["sent"]
    parts: list[str] = []
    if tracking.opens or engagement["opens"]:
        parts.append(_cards([
            ("readers who opened (unique)", str(engagement["unique_opens"])),
            ("open rate (unique / sent)", _percent(engagement["unique_opens"], sent)),
            ("opens in total", str(engagement["opens"])),
        ]))
        parts.append('<p class="note">Opens are counted when a mail client loads the pixel: '
                     "clients that block images are missed, and some privacy features "
                     "(e.g. Apple Mail) load every image and count as opens.</p>")
    clicks = engagement["clicks"]
    if tracking.clicks or clicks:
        if clicks:
            chart = pygal.HorizontalBar(**_chart_config(
                ("#003399", "#7aa2e3"), height=max(200, 40 * len(clicks) + 120),
                truncate_label=60, **_integer_axis(max(c["clicks"] for c in clicks))))
            chart.x_labels = [str(c["url"]) for c in clicks]
            chart.add("readers (unique)", [c["unique"] for c in clicks])
            chart.add("clicks", [c["clicks"] for c in clicks])
            rows = "".join(
                f"<tr><td class=\"words\">{escape(str(c['url']))}</td>"
                f"<td class=\"num\">{c['unique']}</td><td class=\"num\">{c['clicks']}</td>"
                f"<td class=\"num\">{_percent(c['unique'], sent)}</td></tr>" for c in clicks)
            parts.append(svg(chart))
            parts.append(_table("clicks", '<th>link</th><th class="num">readers</th>'
                                '<th class="num">clicks</th><th class="num">of sent</th>', rows))
        else:
            parts.append('<p class="empty">No click recorded yet.</p>')
    return _section("Opens and clicks", "\n".join(parts), "engagement")
