"""The period report as one self-contained HTML page (``report --period ... --format html``):
cards, a chart of readers reached per issue and language (pygal's SVG, script removed), and
the tables, to attach to an EU periodic report or paste from.

The markup is ``data/report/period.html.j2`` (autoescaped; subjects come from issue.yaml and
list names and languages from list files, so every one of them is escaped there). Like the
delivery report, nothing external: no script, no stylesheet, no font, no remote image.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pygal

from mirage_mailer.services.htmlreport import chart_config, integer_axis, render, svg
from mirage_mailer.services.period_report import PeriodReport

# Colour-blind-safe and distinct on white (Okabe-Ito), EU blue first.
_PALETTE = ("#003399", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#0072b2",
            "#999999")
_LABEL = 40  # characters of a subject under a bar


def period_html(report: PeriodReport, *, now: datetime | None = None) -> str:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return render(
        "period.html.j2",
        title=f"{report.project or 'mirage-mailer'} · dissemination {report.period.label}",
        head="",
        report=report,
        project=report.project or "mirage-mailer",
        generated=f"{now:%Y-%m-%d %H:%M}",
        chart=_chart(report) if report.total.reached else "",
    )


def _short(text: str) -> str:
    return text if len(text) <= _LABEL else text[: _LABEL - 1] + "…"


def _chart(report: PeriodReport) -> str:
    """Readers reached per issue, stacked by the language of their message."""
    languages = report.languages
    colours = tuple(_PALETTE[n % len(_PALETTE)] for n in range(len(languages)))
    chart = pygal.StackedBar(**chart_config(
        colours, x_label_rotation=20 if len(report.issues) > 3 else 0,
        y_title="readers reached", truncate_label=_LABEL,
        height=max(380, 300 + 12 * len(report.issues)),
        **integer_axis(max((f.reached for f in report.issues), default=0))))
    chart.x_labels = [_short(f.subject or f.issue or "") for f in report.issues]
    for lang in languages:
        chart.add(lang, [f.by_language.get(lang, 0) for f in report.issues])
    return svg(chart)
