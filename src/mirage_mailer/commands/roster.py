"""The ``subscribers`` group: who reads each list (``services.roster``), changes to a list
file (``services.roster_edit``) and imports (``services.roster_import``). Each command parses,
calls one service and prints; ``commands.subscribers`` registers the group.

CSV output is for spreadsheets: a cell that starts like a formula is written with a leading
``'`` (``util.csvcells``, the rule every CSV writer shares), so opening an export never runs
what a stranger typed into a sign-up form. ``import`` takes that ``'`` off again, so an
export imports back unchanged. JSON output is exact.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mirage_mailer.commands.common import Context, err, issue_folder
from mirage_mailer.commands.streams import machine_output
from mirage_mailer.project.config import Settings
from mirage_mailer.services.roster import (
    STATUSES,
    Counts,
    Filters,
    Reader,
    count,
    count_issue,
    export,
    readers,
    settings_for,
    skipped_lists,
)
from mirage_mailer.services.roster_edit import add_reader, field_pairs, remove_reader
from mirage_mailer.services.roster_import import import_file
from mirage_mailer.util.csvcells import safe_cell, safe_row
from mirage_mailer.util.errors import ExitCode, display_path

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
FORMATS = click.Choice(["table", "csv", "json"])
_WIDTH_ROWS = 1_000  # rows that set a table's column widths
_COLUMNS = ("list", "email", "name", "lang", "status", "source", "where", "detail")
_CONSENT = ("consent_text", "consent_version", "consent_source", "requested_at",
            "confirmed_at")


def _shown(value: str | None) -> Text:
    """Terminal-safe: no escape sequences, no rich markup from a list row."""
    return Text(_CONTROL.sub("\N{REPLACEMENT CHARACTER}", value or ""))


def _row(reader: Reader) -> list[str]:
    return [reader.list_name, reader.email, reader.name or "", reader.lang, reader.status,
            reader.source, reader.where, reader.detail]


def _as_json(reader: Reader) -> dict[str, Any]:
    data = asdict(reader)
    return {"list": data.pop("list_name"), **data}


def _print_json(items: Iterable[dict[str, Any]]) -> int:
    """A JSON array written as it streams: a long list is never held whole for this."""
    n = 0
    machine_output()
    click.echo("[", nl=False)
    for item in items:
        click.echo(("," if n else "") + "\n" + json.dumps(item, ensure_ascii=False), nl=False)
        n += 1
    click.echo("\n]")
    return n


def _console() -> Console:
    """A terminal's width on a terminal; piped, nothing cut short."""
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 10_000)


def _writer() -> Any:
    machine_output()
    return csv.writer(sys.stdout, lineterminator="\n")


@click.group("subscribers")
def roster_group() -> None:
    """Who reads each list: list, count, add, remove, import and export readers.

    Covers every source of readers: the list files in lists/ and the confirmed web
    sign-ups, with unsubscribes applied, as the next send sees them.
    """


@roster_group.command("list")
@click.option("--list", "lists", multiple=True, metavar="LIST",
              help="Only this list (repeat for several; default: every list).")
@click.option("--lang", metavar="LANG", help="Only readers of this language (fr also "
              "matches fr-CA; a row without a language is in the project's).")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES),
              help="Only readers with this status (repeat for several).")
@click.option("--search", metavar="TERM", help="Only readers whose address, name or another "
              "column contains TERM (any case).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
              help="table for people, csv or json for other tools.")
@click.pass_obj
def list_command(obj: Context, lists: tuple[str, ...], lang: str | None,
                 statuses: tuple[str, ...], search: str | None, fmt: str) -> int:
    """Every reader of the lists, with status: active, suppressed, invalid, duplicate or
    unconfirmed (a web sign-up not confirmed yet).

    A file in lists/ whose name is not a list name (a space, letters outside ASCII) is
    left out, with a warning on stderr that says what to rename it to (exit 0).
    """
    settings = settings_for(obj.config)
    found = readers(settings, Filters(lists, lang, statuses, search))
    _say_skipped(settings, lists)
    if fmt == "json":
        _print_json(_as_json(r) for r in found)
    elif fmt == "csv":
        writer = _writer()
        writer.writerow(_COLUMNS)
        writer.writerows(safe_row(_row(r)) for r in found)
    else:
        _reader_table(found)
    return ExitCode.OK


def _reader_table(found: Iterator[Reader]) -> None:
    """Aligned columns for people, streamed: the widths come from the first rows, so a list of
    100,000 readers prints as it is read instead of being laid out whole."""
    head = ("list", "email", "name", "lang", "status", "where")
    first = list(islice((_cells(r) for r in found), _WIDTH_ROWS))
    widths = [max(len(c) for c in column) for column in zip(head, *first, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    shown = len(first)
    if first:
        click.echo(line(head))
        for cells in first:
            click.echo(line(cells))
        for r in found:
            click.echo(line(_cells(r)))
            shown += 1
    click.echo(f"{shown} reader(s)")


def _cells(r: Reader) -> tuple[str, ...]:
    # "suppressed (unsubscribed)", "duplicate of ...:2" already say the status
    status = (r.detail if r.detail.startswith(r.status) else
              r.status + (f": {r.detail}" if r.detail else ""))
    return tuple(_CONTROL.sub("\N{REPLACEMENT CHARACTER}", v or "")
                 for v in (r.list_name, r.email, r.name, r.lang, status, r.where))


@roster_group.command("count")
@click.option("--list", "lists", multiple=True, metavar="LIST",
              help="Only this list (repeat for several; default: every list).")
@click.option("--issue", metavar="ISSUE", help="Count for this issue (folder or id) as "
              "send --dry-run plans it: its lists and languages, minus whoever has it.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
              help="table for people, csv or json for other tools.")
@click.pass_obj
def count_command(obj: Context, lists: tuple[str, ...], issue: str | None, fmt: str) -> int:
    """Readers the next send reaches, per list and language.

    Without --issue, per list: what a new issue on that list alone would be sent to now
    (unsubscribed, invalid and duplicate rows left out, confirmed web sign-ups in), by the
    language each reader would be sent: the next issue has the latest issue's languages, so
    a reader of another language counts in the default one, as send does. With several
    lists, also all of them together (a reader on two lists counts once). A file in lists/
    whose name is not a list name is left out, with a warning on stderr (exit 0).
    """
    if issue is not None and lists:
        raise click.UsageError("--issue counts the issue's own lists; leave out --list")
    if issue is not None:
        counts = count_issue(obj.config, issue_folder(obj, issue))
    else:
        settings = settings_for(obj.config)
        counts = count(settings, lists)
        _say_skipped(settings, lists)
    _print_counts(counts, fmt)
    return ExitCode.OK


def _say_skipped(settings: Settings, lists: tuple[str, ...]) -> None:
    """Every list was asked for: name the files in lists/ that are not among them."""
    if not lists:
        for problem in skipped_lists(settings):
            err(str(problem))


def _count_rows(counts: Counts) -> Iterator[tuple[str, str, int]]:
    for group in [*counts.lists, *([counts.together] if counts.together else [])]:
        for lang, n in sorted(group.languages.items()):
            yield group.name, lang, n
        yield group.name, "total", group.total


def _print_counts(counts: Counts, fmt: str) -> None:
    if fmt == "json":
        data: dict[str, Any] = {"lists": [{"list": g.name, "total": g.total,
                                           "languages": dict(sorted(g.languages.items()))}
                                          for g in counts.lists]}
        if counts.together:
            data["all"] = {"total": counts.together.total,
                           "languages": dict(sorted(counts.together.languages.items()))}
        if counts.issue:
            data["issue"] = counts.issue
        machine_output()
        click.echo(json.dumps(data, ensure_ascii=False, indent=1))
    elif fmt == "csv":
        writer = _writer()
        writer.writerow(("list", "lang", "readers"))
        writer.writerows((safe_cell(a), b, c) for a, b, c in _count_rows(counts))
    else:
        table = Table(box=None, pad_edge=False,
                      title=f"issue {counts.issue}" if counts.issue else None)
        for column in ("list", "lang", "readers"):
            table.add_column(column, justify="right" if column == "readers" else "left")
        for name, lang, n in _count_rows(counts):
            table.add_row(_shown(name), lang, str(n))
        _console().print(table)


@roster_group.command("add")
@click.argument("list_name", metavar="LIST")
@click.argument("email")
@click.argument("fields", nargs=-1, metavar="[FIELD=VALUE]...")
@click.option("--name", help="The reader's name (the greeting uses it).")
@click.option("--lang", metavar="LANG", help="The reader's language (ISO 639-1, e.g. fr).")
@click.pass_obj
def add_command(obj: Context, list_name: str, email: str, fields: tuple[str, ...],
                name: str | None, lang: str | None) -> int:
    """Add EMAIL at the end of lists/LIST (CSV or YAML), keeping the rest of the file.

    FIELD=VALUE fills another column (organisation="Red Cross", first_name=Marie). An
    invalid address, an address already in the list, or a column a CSV file lacks is
    refused with exit 2, and nothing is written. A YAML list has no header and takes any
    field; one that no other row has is added with a warning (check its spelling).
    """
    added = add_reader(settings_for(obj.config), list_name, email, name=name, lang=lang,
                       fields=field_pairs(fields))
    for note in added.notes:
        err(f"{display_path(added.path)}: warning: {note}")
    click.echo(f"{display_path(added.path)}: added {added.email}")
    return ExitCode.OK


@roster_group.command("remove")
@click.argument("list_name", metavar="LIST")
@click.argument("email")
@click.pass_obj
def remove_command(obj: Context, list_name: str, email: str) -> int:
    """Delete the row(s) of EMAIL from lists/LIST, keeping the rest of the file.

    To stop all mail to someone, from every list, use 'unsubscribe' instead.
    """
    removed = remove_reader(settings_for(obj.config), list_name, email)
    lines = ", ".join(str(n) for n in removed.lines)
    click.echo(f"{display_path(removed.path)}: removed {removed.email} (line {lines})")
    return ExitCode.OK


@roster_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--list", "list_name", required=True, metavar="LIST",
              help="The list to add the readers to (lists/LIST.csv or .yaml).")
@click.option("--dry-run", is_flag=True, help="Say what would be added and skipped, after "
              "every check the import makes; write nothing.")
@click.pass_obj
def import_command(obj: Context, file: Path, list_name: str, dry_run: bool) -> int:
    """Add the readers of FILE (a CSV, or a Mailchimp or listmonk export) to a list.

    Maps 'Email Address'/'email', 'First Name' and 'Last Name' (Brevo's FIRSTNAME and
    LASTNAME)/'name', and a language column; skips readers already in the list,
    unsubscribed or blocklisted ones, and bad rows, each named as FILE:LINE: reason. New
    readers go at the end of the list file.
    """
    result = import_file(settings_for(obj.config), file, list_name, dry_run=dry_run,
                         report=lambda skipped: err(str(skipped)))
    for note in result.notes:
        err(f"{display_path(file)}: note: {note}")
    verb = "would add" if dry_run else "added"
    click.echo(f"{display_path(result.path)}: {verb} {result.added} reader(s) from "
               f"{display_path(file)} ({result.source}); skipped {result.skipped}"
               + ("; dry run, nothing written" if dry_run else ""))
    return ExitCode.OK


@roster_group.command("export")
@click.option("--list", "list_name", required=True, metavar="LIST", help="The list to export.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES),
              help="Only readers with this status (repeat for several; default: all).")
@click.pass_obj
def export_command(obj: Context, list_name: str, statuses: tuple[str, ...]) -> int:
    """Every reader of a list as CSV, with the consent record of each web sign-up (the text
    and version agreed to, the source, when requested and confirmed)."""
    found = export(settings_for(obj.config), list_name, statuses)
    extra = found.fields
    writer = _writer()
    writer.writerow([*_COLUMNS, *_CONSENT, *extra])
    for r in found.readers:
        c = r.consent
        consent = ([c.text, c.version, c.source, c.requested_at, c.confirmed_at or ""]
                   if c else [""] * len(_CONSENT))
        writer.writerow(safe_row([*_row(r), *consent, *(r.fields.get(f, "") for f in extra)]))
    return ExitCode.OK
