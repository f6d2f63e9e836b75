"""Commands about subscribers: ``unsubscribe``, ``export`` and ``forget`` (GDPR articles 15
and 17), ``process-unsubscribes`` (mailed requests), and the ``subscribers`` group (who reads
each list: list, count, add, remove, import, export; defined in ``commands.roster``). Each
parses, calls one service and prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from mirage_mailer.commands.common import Context, err, on_terminal
from mirage_mailer.commands.roster import roster_group
from mirage_mailer.commands.streams import machine_output
from mirage_mailer.project.config import Settings, load_settings
from mirage_mailer.services.loader import locate_config
from mirage_mailer.services.personal_data import (
    checked_address,
    checked_key,
    export_person,
    forget_person,
)
from mirage_mailer.services.unsubmail import Outcome
from mirage_mailer.services.unsubscribing import mailboxes, mailed_requests, unsubscribe
from mirage_mailer.util.errors import ExitCode, InputError, Problem, display_path


def _settings(obj: Context) -> Settings:
    return load_settings(locate_config(obj.config))


@click.command("unsubscribe")
@click.argument("email")
@click.pass_obj
def unsubscribe_command(obj: Context, email: str) -> int:
    """Suppress EMAIL: it is never sent to again, from any list.

    In a project that has sent, a missing or emptied tracking database is refused (exit 2):
    restoring the backup would drop an unsubscribe taken into a new one. Restore it first.
    """
    address = checked_address("unsubscribe", email)
    added = unsubscribe(_settings(obj), address)
    click.echo(f"{address}: " + ("unsubscribed; never sent to again, from any list"
                                 if added else "already unsubscribed"))
    return ExitCode.OK


@click.command("forget")
@click.argument("email")
@click.option("--yes", "-y", is_flag=True,
              help="Do not ask; required without a terminal. Erasure cannot be undone.")
@click.pass_obj
def forget_command(obj: Context, email: str, yes: bool) -> int:
    """Erase everything held about EMAIL (GDPR article 17), except a hashed suppression.

    Delivery rows stay, anonymised, so past reports keep their counts; the suppression is
    kept as a hash so the person is never mailed again, even from a list that still has
    them. Rows of list files are named, not edited: delete them yourself.
    """
    address = checked_key("forget", email)  # addresses are compared without case
    settings = _settings(obj)
    if not yes:
        if not on_terminal():
            raise InputError(Problem("forget", None, "refusing to erase without --yes when "
                                     "not on a terminal", "add --yes: erasure cannot be undone"))
        if not click.confirm(f"Erase everything held about {address}? Only a hashed "
                             "suppression stays. This cannot be undone.", default=False,
                             err=True):
            err("nothing erased")
            return ExitCode.OK
    result = forget_person(settings, address)
    for problem in result.unsearched:  # a broken list file did not block the erasure
        err(f"{problem} (not searched for {address})")
    done = result.done
    click.echo(f"{address}: erased from the tracking store: {done['deliveries']} delivery "
               f"row(s) and {done['events']} event(s) anonymised, {done['subscriptions']} web "
               "subscription(s) deleted; kept: a hashed suppression, so it is never mailed again")
    for row in result.rows:
        click.echo(f"{row.file}:{row.line}: still has {address}: delete this row (meanwhile "
                   "the suppression keeps it from being mailed)")
    if done["residue"]:
        err(f"{display_path(settings.tracking.database)}: warning: another process has the "
            "database open, so old copies of the erased data may stay in the file until it "
            "closes (stop it, e.g. serve, and run forget again)")
    return ExitCode.OK


@click.command("export")
@click.argument("email")
@click.pass_obj
def export_command(obj: Context, email: str) -> int:
    """Print as JSON all data held about EMAIL (GDPR article 15).

    The tracking store's suppression, web subscriptions with their consent, deliveries and
    events, and the rows of the project's list files that hold the address.
    """
    address = checked_address("export", email)
    data = export_person(_settings(obj), address)
    machine_output()
    click.echo(json.dumps(data, ensure_ascii=False, indent=1))
    return ExitCode.OK


_LABELS = {"unsubscribed": "unsubscribed", "already": "already unsubscribed"}

@click.command("process-unsubscribes")
@click.option("--maildir", type=click.Path(file_okay=False, path_type=Path),
              help="A Maildir that receives the replies to the unsubscribe mailto.")
@click.option("--imap", "imap_url", metavar="URL",
              help="imaps://user@host[:port]/FOLDER (imap:// uses STARTTLS).")
@click.option("--password-env", default="MIRAGE_IMAP_PASSWORD", show_default=True,
              metavar="NAME", help="Environment variable that holds the IMAP password.")
@click.option("--include-seen", is_flag=True,
              help="Also messages already marked seen (e.g. read by a person in a mail client).")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.pass_obj
def process_unsubscribes_command(obj: Context, maildir: Path | None, imap_url: str | None,
                                 password_env: str, include_seen: bool, dry_run: bool) -> int:
    """Suppress the senders of mailed unsubscribe requests (the List-Unsubscribe mailto).

    A request carries its signed token in the Subject ("unsubscribe <token>", also after
    Re:/Fwd:) or in the address (contact+unsubscribe-<token>@...). Handled messages are
    marked seen (Maildir: moved to cur/ with the S flag); others are left as they were.
    """
    given = mailboxes(maildir=maildir, imap_url=imap_url, password_env=password_env,
                      include_seen=include_seen)
    counts = dict.fromkeys(("unsubscribed", "already", "skipped"), 0)
    for outcome in mailed_requests(_settings(obj), given, dry_run=dry_run):
        counts[outcome.status] += 1
        click.echo(_line(outcome, dry_run))
    click.echo(_summary(counts, dry_run))
    return ExitCode.OK


def _summary(counts: dict[str, int], dry_run: bool) -> str:
    return (f"process-unsubscribes: {sum(counts.values())} message(s): {counts['unsubscribed']} "
            f"{'to unsubscribe' if dry_run else 'unsubscribed'}, {counts['already']} already "
            f"unsubscribed, {counts['skipped']} skipped"
            + ("; dry run, nothing changed" if dry_run else ""))


def _line(outcome: Outcome, dry_run: bool) -> str:
    if outcome.status == "skipped":
        return f"{outcome.ref}: skipped: {outcome.detail}"
    label = _LABELS[outcome.status]
    if dry_run and outcome.status == "unsubscribed":
        label = "would unsubscribe"
    line = f"{outcome.ref}: {label} {outcome.detail} (issue {outcome.issue})"
    return line + (f"; {outcome.note}" if outcome.note else "")


COMMANDS: tuple[click.Command, ...] = (unsubscribe_command, export_command, forget_command,
                                       process_unsubscribes_command, roster_group)
