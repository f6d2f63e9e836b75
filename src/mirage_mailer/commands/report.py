"""``report``: print the delivery figures of ``services.reporting`` as a table, JSON, CSV, or
write its HTML page (the same page ``web/report_routes.py`` serves behind a password)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mirage_mailer.commands.common import Context
from mirage_mailer.project.config import load_settings
from mirage_mailer.services.loader import locate_config
from mirage_mailer.services.reporting import (
    CSV_COLUMNS,
    STATUSES,
    csv_rows,
    html_report,
    reports,
)
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
    issue = issue_dir.resolve().name if issue_dir else None
    if fmt == "html" and issue is not None and out is not None:
        _write(html_report(settings, issue), out)
    elif fmt == "json":
        found = reports(settings, issue)
        click.echo(json.dumps(found[0] if issue else found, ensure_ascii=False, indent=1))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(settings, issue))
    else:
        found = reports(settings, issue)
        _table(found, detail=issue is not None)
        if found and "engagement" in found[0]:
            _engagement_table(found)
    return ExitCode.OK


def _write(page: str, out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(Problem(display_path(out), None,
                                 f"cannot write the report: {exc.strerror or exc}",
                                 "choose a file in a folder you can write to")) from exc
    click.echo(display_path(out))


def _engagement_table(found: list[dict[str, Any]]) -> None:
    """Opens per issue and clicks per link (only when tracking.opens/clicks is on)."""
    table = Table(title="Opens and clicks")
    for column in ("issue", "opens (unique)", "link", "clicks (unique)"):
        table.add_column(column)
    for report in found:
        data = report["engagement"]
        opens = f"{data['opens']} ({data['unique_opens']})"
        links = data["clicks"] or [{"url": "", "clicks": 0, "unique": 0}]
        for n, link in enumerate(links):
            table.add_row(report["issue"] if n == 0 else "", opens if n == 0 else "",
                          link["url"], f"{link['clicks']} ({link['unique']})")
    Console(soft_wrap=True).print(table)


def _table(found: list[dict[str, Any]], *, detail: bool) -> None:
    console = Console(soft_wrap=True)
    if not found:
        console.print("no issue has been sent yet")
        return
    counts = Table(title="Delivery state")
    counts.add_column("issue")
    for status in STATUSES:
        counts.add_column(status, justify="right")
    for report in found:
        counts.add_row(report["issue"], *(str(report["counts"][s]) for s in STATUSES))
    console.print(counts)
    if not detail:
        return
    rows = [r for r in found[0]["recipients"] if r["status"] != "sent"]
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


COMMANDS: tuple[click.Command, ...] = (report_command,)
