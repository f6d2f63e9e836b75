"""``report`` and ``unsubscribe``: read and amend the tracking store."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mirage_mailer.commands.common import Context
from mirage_mailer.project.config import Settings, load_settings
from mirage_mailer.services.loader import locate_config
from mirage_mailer.services.reporting import (
    CSV_COLUMNS,
    all_issues,
    csv_rows,
    issue_report,
    open_store,
)
from mirage_mailer.store import REPORT_STATUSES, Store
from mirage_mailer.util.addresses import check_address
from mirage_mailer.util.errors import ExitCode, InputError, Problem, display_path


@click.command("report")
@click.argument("issue_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html"]),
              default="table", show_default=True, help="table for people, json (one object "
              "per issue), csv (one row per recipient), html (one self-contained page with "
              "charts, for ISSUE_DIR; needs --out).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="File for --format html.")
@click.pass_obj
def report_command(obj: Context, issue_dir: Path | None, fmt: str, out: Path | None) -> int:
    """Delivery state of ISSUE_DIR (or of every issue) from the tracking store."""
    if fmt == "html" and (issue_dir is None or out is None):
        raise click.UsageError("--format html needs ISSUE_DIR and --out FILE")
    if out is not None and fmt != "html":
        raise click.UsageError("--out is for --format html")
    settings = load_settings(locate_config(obj.config, issue_dir))
    store = open_store(settings.tracking.database)
    try:
        issues = [issue_dir.resolve().name] if issue_dir else all_issues(store)
        if fmt == "html" and out is not None:
            _write_html(store, issues[0], settings, out)
        elif fmt == "json":
            reports = [issue_report(store, issue) for issue in issues]
            if tracking_on(settings) and store is not None:  # extra field, only when enabled
                for report in reports:
                    report["engagement"] = store.engagement(report["issue"])
            data = reports[0] if issue_dir else reports
            click.echo(json.dumps(data, ensure_ascii=False, indent=1))
        elif fmt == "csv":
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            writer.writerows(csv_rows(store, issues))
        else:
            _table(store, issues, detail=issue_dir is not None)
            if tracking_on(settings) and store is not None:
                _engagement_table(store, issues)
    finally:
        if store is not None:
            store.close()
    return ExitCode.OK


def _write_html(store: Store | None, issue: str, settings: Settings, out: Path) -> None:
    from mirage_mailer.services.htmlreport import issue_report_html  # pygal only when asked for

    page = issue_report_html(store, issue, settings)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(Problem(display_path(out), None,
                                 f"cannot write the report: {exc.strerror or exc}",
                                 "choose a file in a folder you can write to")) from exc
    click.echo(display_path(out))


def tracking_on(settings: Settings) -> bool:
    return settings.tracking.opens or settings.tracking.clicks


def _engagement_table(store: Store, issues: list[str]) -> None:
    """Opens per issue and clicks per link (only when tracking.opens/clicks is on)."""
    table = Table(title="Opens and clicks")
    for column in ("issue", "opens (unique)", "link", "clicks (unique)"):
        table.add_column(column)
    for issue in issues:
        data = store.engagement(issue)
        opens = f"{data['opens']} ({data['unique_opens']})"
        links = data["clicks"] or [{"url": "", "clicks": 0, "unique": 0}]
        for n, link in enumerate(links):
            table.add_row(issue if n == 0 else "", opens if n == 0 else "", link["url"],
                          f"{link['clicks']} ({link['unique']})")
    Console(soft_wrap=True).print(table)


def _table(store: Store | None, issues: list[str], *, detail: bool) -> None:
    console = Console(soft_wrap=True)
    if not issues:
        console.print("no issue has been sent yet")
        return
    counts = Table(title="Delivery state")
    counts.add_column("issue")
    for status in REPORT_STATUSES:
        counts.add_column(status, justify="right")
    reports = [issue_report(store, issue) for issue in issues]
    for report in reports:
        counts.add_row(report["issue"], *(str(report["counts"][s]) for s in REPORT_STATUSES))
    console.print(counts)
    if not detail:
        return
    rows = [r for r in reports[0]["recipients"] if r["status"] != "sent"]
    if not rows:
        return
    table = Table(title="Recipients not sent")
    for column in ("email", "status", "attempts", "smtp_code", "smtp_response",
                   "last_attempt_at"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["email"], r["status"], str(r["attempts"]), str(r["smtp_code"] or ""),
                      r["smtp_response"] or "", r["last_attempt_at"] or "")
    console.print(table)


@click.command("unsubscribe")
@click.argument("email")
@click.pass_obj
def unsubscribe_command(obj: Context, email: str) -> int:
    """Suppress EMAIL: it is never sent to again, from any list."""
    normalised, bad = check_address(email.strip())
    if bad:
        raise InputError(Problem("unsubscribe", None, bad, "give the complete address"))
    settings = load_settings(locate_config(obj.config))
    with Store(settings.tracking.database) as store:
        added = store.suppress(normalised, source="cli", reason="mirage-mailer unsubscribe")
    click.echo(f"{normalised}: " + ("unsubscribed; never sent to again, from any list"
                                    if added else "already unsubscribed"))
    return ExitCode.OK
