"""The ``store`` group: ``store migrate`` copies the SQLite tracking store into PostgreSQL
(``services.store_migrate``); this module parses, calls it once and prints the comparison and
the line to put in mirage.yaml."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mirage_mailer.commands.common import Context, err
from mirage_mailer.project.config import load_settings
from mirage_mailer.services.loader import locate_config
from mirage_mailer.services.store_migrate import Migrated, migrate_store
from mirage_mailer.util.errors import ExitCode, display_path

_SHOWN = 20  # values named one by one before the rest are counted


@click.group("store")
def store_group() -> None:
    """The tracking store itself: move it from SQLite to PostgreSQL."""


@store_group.command("migrate")
@click.option("--to", "url", required=True, metavar="postgresql://USER@HOST[:PORT]/DB",
              help="The empty PostgreSQL database to copy into. No password in the URL: "
              "libpq reads PGPASSWORD or ~/.pgpass, or see --password-env.")
@click.option("--password-env", metavar="NAME", help="The environment variable that holds "
              "the database password (as tracking.password_env in mirage.yaml).")
@click.option("--from", "source", type=click.Path(dir_okay=False, path_type=Path),
              help="The SQLite file to copy (default: tracking.database of mirage.yaml).")
@click.pass_obj
def migrate_command(obj: Context, url: str, password_env: str | None,
                    source: Path | None) -> int:
    """Copy the project's SQLite tracking store into an empty PostgreSQL database.

    Every table, with the same ids, in one transaction; then the row counts of each table
    and the status counts of each issue are compared, and any difference leaves the target
    empty again. The SQLite file is kept as it was (a send's leftover journal replayed into
    it first): keep it as a backup. Stop cron, sends and the web host first; a send that is
    running refuses the migration (exit 3).
    """
    settings = load_settings(locate_config(obj.config))
    progress = _progress if sys.stderr.isatty() else None
    done = migrate_store(settings, url, source=source, password_env=password_env,
                         on_progress=progress)
    if progress is not None:
        err("")
    _print(done)
    return ExitCode.OK


def _progress(table: str, done: int, total: int) -> None:
    click.echo(f"\r{table}: {done:,} of {total:,} rows".ljust(60), nl=False, err=True)


def _print(done: Migrated) -> None:
    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 250)
    if done.replayed:
        click.echo(f"replayed {done.replayed} record(s) of a stopped send's journal into "
                   f"{display_path(done.source)} first")
    table = Table(title=f"Copied {display_path(done.source)} into {done.target} "
                        f"(schema version {done.version})")
    for column in ("table", "SQLite", "PostgreSQL"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for t in done.tables:
        table.add_row(t.name, f"{t.source:,}", f"{t.target:,}")
    console.print(table)
    if done.statuses:
        statuses = sorted({s for counts in done.statuses.values() for s in counts})
        per_issue = Table(title="Recipients per issue and status (the same on both sides)")
        per_issue.add_column("issue")
        for status in statuses:  # "sending": on the wire at a crash, reported unknown
            per_issue.add_column("sending (unknown)" if status == "sending" else status,
                                 justify="right")
        for issue, counts in done.statuses.items():
            per_issue.add_row(Text(issue), *(f"{counts.get(s, 0):,}" for s in statuses))
        console.print(per_issue)
    for where in done.replaced[:_SHOWN]:
        err(f"{where}: warning: held a NUL character, which PostgreSQL cannot store; copied "
            "with U+FFFD in its place")
    if len(done.replaced) > _SHOWN:
        err(f"... and {len(done.replaced) - _SHOWN} more value(s) with a NUL character, "
            "copied with U+FFFD in its place")
    click.echo("Every table and status count matches. To use the PostgreSQL store, set in "
               "mirage.yaml:")
    lines = [f"    database: {done.target}"]
    if done.password_env:
        lines.append(f"    password_env: {done.password_env}")
    click.echo("\n  tracking:\n" + "\n".join(lines) + "\n")
    click.echo(f"and keep {display_path(done.source)} as a backup: nothing writes to it once "
               "mirage.yaml names the new store.")


COMMANDS = [store_group]
