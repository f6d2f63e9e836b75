"""``process-bounces``: one line per mail in the bounce mailbox, then a summary line."""

from __future__ import annotations

import click

from mirage_mailer.commands.common import Context
from mirage_mailer.project.config import load_settings
from mirage_mailer.services.bounces import STATUSES, BounceOutcome, BounceRun, process_bounces
from mirage_mailer.services.loader import locate_config
from mirage_mailer.util.errors import ExitCode

_LABELS = {"hard": "hard bounce", "soft": "soft bounce", "complaint": "complaint",
           "already": "already processed", "unmatched": "unmatched",
           "delay": "ignored", "auto-reply": "ignored", "ignored": "ignored",
           "unreadable": "skipped"}


def outcome_line(outcome: BounceOutcome, dry_run: bool) -> str:
    """One mail, in the officer's words."""
    label = _LABELS[outcome.status]
    who = f" {outcome.email} (issue {outcome.issue})" if outcome.email else ""
    line = f"{outcome.ref}: {label}{who}: {outcome.detail}"
    if outcome.suppressed:
        line += "; would suppress the address" if dry_run else "; address suppressed"
    return line + (f"; {outcome.note}" if outcome.note else "")


def summary_line(run: BounceRun) -> str:
    counts = run.counts
    parts = [f"{counts[s]} {s}" for s in STATUSES if counts[s]]
    total = sum(counts.values())
    text = (f"process-bounces: {total} mail(s)" + (": " + ", ".join(parts) if parts else "")
            + f"; {run.suppressed} address(es) {'to suppress' if run.dry_run else 'suppressed'}")
    return text + ("; dry run, nothing changed" if run.dry_run else "")


@click.command("process-bounces")
@click.option("--dry-run", is_flag=True,
              help="Say what each mail is and what would happen; change nothing (IMAP opens "
              "the folder read-only).")
@click.pass_obj
def process_bounces_command(obj: Context, dry_run: bool) -> int:
    """Read the bounce mailbox (bounces.mailbox): record bounces and complaints per issue.

    A hard bounce (5.x.x) or a spam complaint (ARF feedback report) suppresses the address
    at once; soft bounces (4.x.x) after bounces.soft_limit of them within
    bounces.soft_window_days. Delay warnings and auto-replies never count. Reading the same
    mail twice never counts it twice. A signed token is matched on whatever address it sits,
    so bounces to an earlier bounces.address still count; mail that matches nothing is set
    aside unread in bounces.unmatched_folder when that is set. Exit 2 for a config problem
    or a lost tracking database (a project that has sent), 3 when another process-bounces is
    running or the IMAP server cannot be reached or refuses STARTTLS or the login.
    """
    run = process_bounces(load_settings(locate_config(obj.config)), dry_run=dry_run)
    for outcome in run.outcomes:
        click.echo(outcome_line(outcome, dry_run))
    click.echo(summary_line(run))
    return ExitCode.OK


COMMANDS: tuple[click.Command, ...] = (process_bounces_command,)
