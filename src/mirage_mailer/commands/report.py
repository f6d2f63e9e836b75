"""``report``: print the delivery figures of ``services.reporting`` as a table, JSON, CSV, or
write its HTML page (the same page ``web/report_routes.py`` serves behind a password)."""

from __future__ import annotations

import csv
import json
import sys
from itertools import islice
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mirage_mailer.commands.common import Context, err
from mirage_mailer.commands.streams import machine_output
from mirage_mailer.project.config import Settings, load_settings
from mirage_mailer.services.bounce_rates import COMPLAINT_LIMIT, HARD_BOUNCE_LIMIT, percent
from mirage_mailer.services.loader import locate_config
from mirage_mailer.services.period_html import period_html
from mirage_mailer.services.period_report import (
    PeriodReport,
    as_json,
    csv_header,
    parse_period,
    period_report,
)
from mirage_mailer.services.period_report import csv_rows as period_csv_rows
from mirage_mailer.services.reporting import (
    STATUSES,
    check_memory,
    csv_columns,
    csv_rows,
    html_report,
    report_stream,
    restore_warnings,
    titles,
)
from mirage_mailer.services.store_access import OpenEach
from mirage_mailer.util.errors import ExitCode, InputError, Problem, display_path
from mirage_mailer.util.jsonstream import iter_json
from mirage_mailer.util.visible import visible
from mirage_mailer.util.writes import open_private


def _console() -> Console:
    """A terminal's width where there is one; in a pipe or a cron mail there is no width to
    fit, and rich's 80 columns cut words ("suppres…") and broke issue ids over lines."""
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 250)


@click.command("report")
@click.argument("issue_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html"]),
              default="table", show_default=True, help="table for people, json (one object "
              "per issue), csv (one row per recipient), html (one self-contained page with "
              "charts, for ISSUE_DIR or --period; needs --out).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="File for --format html.")
@click.option("--period", metavar="START..END",
              help="Figures for an EU periodic report: the issues first sent between these "
              "dates (UTC, both included), e.g. 2021-01-01..2021-12-31; readers reached by "
              "language and list, bounces, unsubscribes, opens and clicks (estimates).")
@click.pass_obj
def report_command(obj: Context, issue_dir: Path | None, fmt: str, out: Path | None,
                   period: str | None) -> int:
    """Delivery state of ISSUE_DIR (or of every issue) from the tracking store; with
    --period, the dissemination figures of the issues sent in that period.

    A send that was stopped is settled first; if its claim journal was lost or damaged,
    warning lines on standard error say how many readers are now 'unknown'."""
    if period is not None and issue_dir is not None:
        raise click.UsageError("--period covers every issue sent in it; leave out ISSUE_DIR")
    if fmt == "html" and ((issue_dir is None and period is None) or out is None):
        raise click.UsageError("--format html needs ISSUE_DIR (or --period) and --out FILE")
    if out is not None and fmt != "html":
        raise click.UsageError("--out is for --format html")
    if period is not None:
        wanted = parse_period(period)  # a bad period is said before the project is read
        settings = load_settings(locate_config(obj.config))
        check_memory(settings)  # a lost store: exit 2, as send says it
        _period(period_report(settings, wanted, _telling(settings)), fmt, out)
        return ExitCode.OK
    settings = load_settings(locate_config(obj.config, issue_dir))
    check_memory(settings)
    issue = issue_dir.resolve().name if issue_dir else None
    stores = _telling(settings)
    if fmt == "html" and issue is not None and out is not None:
        _write(html_report(settings, issue, issue_dir, stores), out)
        return ExitCode.OK
    # an unknown issue is refused (exit 2) on entry, before a header or a bracket is written
    with report_stream(settings, issue, issue_dir, unsent=fmt == "table",
                       stores=stores) as found:
        if fmt in ("json", "csv"):
            machine_output()
        if fmt == "json":
            sys.stdout.writelines(iter_json(found[0] if issue else found))
            sys.stdout.write("\n")
        elif fmt == "csv":
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(csv_columns(settings))
            writer.writerows(csv_rows(settings, found))
        else:
            _tables(settings, found, detail=issue is not None)
    for line in restore_warnings(settings):  # the store was compared with .mirage/ledger
        err(line)
    return ExitCode.OK


def _telling(settings: Settings) -> OpenEach:
    """The store opened as every command does, but a crashed send's journal that settling
    finds lost, damaged or foreign is said on stderr as ``send`` says it (stdout stays the
    JSON or CSV it was asked for): the rows it left are now ``unknown``, and why."""
    return OpenEach(settings, warn=lambda line: err(f"warning: {line}"))


def _tables(settings: Settings, found: list[dict[str, Any]], *, detail: bool) -> None:
    names = titles(settings, [r["issue"] for r in found])
    _table(found, names, detail=detail)
    _senders_note(found)
    if found and "engagement" in found[0]:
        _engagement_table(found, names)
    if found and "bounces" in found[0]:
        _bounce_table(found, names)
    if found and "relays" in found[0]:
        _relay_table(found, names)


def _period(found: PeriodReport, fmt: str, out: Path | None) -> None:
    if fmt in ("json", "csv"):
        machine_output()
    if fmt == "html" and out is not None:
        _write(period_html(found), out)
    elif fmt == "json":
        click.echo(json.dumps(as_json(found), ensure_ascii=False, indent=1))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(csv_header(found))
        writer.writerows(period_csv_rows(found))
    else:
        _period_table(found)


def _period_table(found: PeriodReport) -> None:
    """Per issue, by language, by list; opens and clicks marked as estimates."""
    console = _console()
    if not found.issues:
        console.print(f"no issue was sent in {found.period.label}")
        return
    table = Table(title=f"Issues sent {found.period.label}")
    for column in ("sent on", "issue", "reached", "bounces", "unsubscribes"):
        table.add_column(column, justify="right" if column in _NUMBERS else "left")
    estimates = [(label, attr) for label, attr, on in (
        ("opened*", "opens", found.tracked_opens),
        ("clicked*", "clicks", found.tracked_clicks)) if on]
    for label, _attr in estimates:
        table.add_column(label, justify="right")
    for f in [*found.issues, found.total]:
        first: list[str | Text] = [f.sent_at.date().isoformat() if f.sent_at else "",
                                   _titled(f.issue, f.subject)]
        numbers = [str(n) for n in (f.reached, f.bounces, f.unsubscribes)]
        guesses = [_estimate(getattr(f, attr)) for _label, attr in estimates]
        table.add_row(*first, *numbers, *guesses, end_section=f is found.issues[-1])
    console.print(table)
    for title, key, names in (("Readers reached by language", "by_language", found.languages),
                              ("Readers reached by list", "by_list", found.lists)):
        part = Table(title=title)
        part.add_column("issue")
        for name in names:
            part.add_column(Text(name), justify="right")  # a list's name is not markup
        for f in [*found.issues, found.total]:
            counts = getattr(f, key)
            part.add_row(_titled(f.issue, f.subject), *(str(counts.get(n, 0)) for n in names),
                         end_section=f is found.issues[-1])
        console.print(part)
    console.print(f"{found.people} distinct address(es) reached")
    if estimates:
        console.print("* estimates: readers who opened or clicked, as far as tracking saw "
                      "them (image blocking and privacy proxies skew opens)")


_NUMBERS = frozenset({"reached", "bounces", "unsubscribes"})


def _titled(issue: str | None, subject: str | None) -> Text:
    """An issue as people know it: its subject, with its id (folder name) below. A Text, so
    brackets in a subject are shown, never read as rich markup."""
    if issue is None:
        return Text("total")
    return Text(f"{subject}\n({issue})" if subject else issue)


def _estimate(value: int | None) -> str:
    return "" if value is None else f"≈{value}"


def _write(page: str, out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open_private(out) as handle:  # recipients' addresses: owner-only
            handle.write(page)
    except OSError as exc:
        raise InputError(Problem(display_path(out), None,
                                 f"cannot write the report: {exc.strerror or exc}",
                                 "choose a file in a folder you can write to")) from exc
    click.echo(display_path(out))


def _engagement_table(found: list[dict[str, Any]], names: dict[str, str | None]) -> None:
    """Opens per issue and clicks per link (only when tracking.opens/clicks is on)."""
    table = Table(title="Opens and clicks")
    for column in ("issue", "opens (unique)", "link", "clicks (unique)"):
        table.add_column(column)
    for report in found:
        data = report["engagement"]
        opens = f"{data['opens']} ({data['unique_opens']})"
        links = data["clicks"] or [{"url": "", "clicks": 0, "unique": 0}]
        for n, link in enumerate(links):
            table.add_row(_titled(report["issue"], names.get(report["issue"])) if n == 0
                          else "", opens if n == 0 else "",
                          Text(link["url"]), f"{link['clicks']} ({link['unique']})")
    _console().print(table)


def _relay_table(found: list[dict[str, Any]], names: dict[str, str | None]) -> None:
    """What each relay carried, per issue (only with transport.relays)."""
    table = Table(title="Relays")
    for column in ("issue", "relay", "sent", "failed", "unknown"):
        table.add_column(column, justify="right" if column in ("sent", "failed", "unknown")
                         else "left", overflow="fold")
    for report in found:
        carried = report["relays"] or {"": {}}
        for n, (relay, counts) in enumerate(carried.items()):
            table.add_row(_titled(report["issue"], names.get(report["issue"])) if n == 0
                          else "", Text(relay or "none yet"),
                          *(str(counts.get(k, 0)) for k in ("sent", "failed", "unknown")))
    _console().print(table)


def _bounce_table(found: list[dict[str, Any]], names: dict[str, str | None]) -> None:
    """Bounces and complaints per issue, their rates per sent message, and the warnings."""
    table = Table(title="Bounces and complaints")
    for column in ("issue", "hard", "soft", "complaints", "bounce rate", "complaint rate"):
        table.add_column(column, justify="left" if column == "issue" else "right")
    warnings: list[str] = []
    for report in found:
        data = report["bounces"]
        table.add_row(_titled(report["issue"], names.get(report["issue"])), str(data["hard"]),
                      str(data["soft"]), str(data["complaints"]),
                      percent(data["bounce_rate"], HARD_BOUNCE_LIMIT),
                      percent(data["complaint_rate"], COMPLAINT_LIMIT))
        warnings += [f"warning: {report['issue']}: {w}" for w in data["warnings"]]
    _console().print(table)
    for line in warnings:
        err(line)


def _senders_note(found: list[dict[str, Any]]) -> None:
    """A PostgreSQL store's senders: those running now (their messages on the wire are
    counted ``unknown`` above until the relay answers, within half a second), those whose
    lease ran out (dead: what becomes of their rows), and those a send found dead (why
    their rows are ``unknown``). One line each."""
    for report in found:
        issue = report["issue"]
        senders = report.get("senders") or []
        live = [s for s in senders if s["lease_left"] >= 0]
        if live:
            who = ", ".join(f"{s['host']} pid {s['pid']}" for s in live)
            wire = sum(s["in_flight"] for s in live)
            click.echo(f"{issue}: {len(live)} sender(s) running ({who}); {wire} message(s) "
                       "on the wire now, counted as unknown until the relay answers")
        for s in senders:
            if s["lease_left"] < 0:
                click.echo(
                    f"{issue}: sender {s['host']} pid {s['pid']} stopped renewing its lease "
                    f"{-s['lease_left']:.0f} s ago: the {s['in_flight']} message(s) it had on "
                    f"the wire are unknown (check, then send --resend-unknown), and the "
                    f"{s.get('held', 0)} other recipient(s) it held go back to the pool at "
                    "the next send")
        for lost in report.get("lost_senders") or []:
            click.echo(f"{issue}: {lost['unknown']} recipient(s) unknown because their "
                       f"sender ({lost['senders']}) stopped renewing its lease with them on "
                       "the wire: check, then send --resend-unknown")


def _table(found: list[dict[str, Any]], names: dict[str, str | None], *,
           detail: bool) -> None:
    console = _console()
    if not found:
        console.print("no issue has been sent yet")
        return
    counts = Table(title="Delivery state")
    counts.add_column("issue", min_width=24, overflow="fold")
    for status in STATUSES:
        counts.add_column(status, justify="right")
    for report in found:
        counts.add_row(_titled(report["issue"], names.get(report["issue"])),
                       *(str(report["counts"][s]) for s in STATUSES))
    console.print(counts)
    if not detail:
        return
    tally = found[0]["counts"]
    unsent = sum(tally.values()) - tally["sent"]
    if not unsent:
        return
    table = Table(title="Recipients not sent")
    for column in ("email", "status", "attempts", "smtp_code", "smtp_response",
                   "last_attempt_at"):
        table.add_column(column)
    for r in islice(found[0]["recipients"], UNSENT_SHOWN):  # the store reads only these
        # addresses and server replies come from outside: Text, never rich markup
        table.add_row(Text(r["email"]), r["status"], str(r["attempts"]),
                      str(r["smtp_code"] or ""), Text(visible(r["smtp_response"] or "")),
                      r["last_attempt_at"] or "")
    console.print(table)
    if unsent > UNSENT_SHOWN:
        console.print(f"... and {unsent - UNSENT_SHOWN} more not sent: --format csv lists "
                      "every recipient")


UNSENT_SHOWN = 500
"""Rows of the table's "Recipients not sent": a terminal shows a few hundred at most, and
the table holds every row it is given (an issue not sent yet has the whole list pending)."""


COMMANDS: tuple[click.Command, ...] = (report_command,)
