"""``forget`` and ``export`` (GDPR articles 17 and 15), and ``process-unsubscribes``.

The tracking store is not the only place that holds a person: the project's list files do
too, so ``export`` shows their rows and ``forget`` names the rows left to delete (list files
are the officer's own documents, often under version control: never rewritten here).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mirage_mailer.commands.common import Context, err, on_terminal
from mirage_mailer.project.config import Settings, load_settings
from mirage_mailer.project.lists import LIST_SUFFIXES, Subscriber, iter_list
from mirage_mailer.services.loader import locate_config
from mirage_mailer.services.reporting import open_store
from mirage_mailer.services.unsubmail import (
    ImapBox,
    Mailbox,
    MaildirBox,
    Outcome,
    parse_imap_url,
    process,
)
from mirage_mailer.store import Store, email_key
from mirage_mailer.util.addresses import check_address
from mirage_mailer.util.errors import ExitCode, InputError, Problem, display_path
from mirage_mailer.util.tokens import Signer, load_secret


def add_gdpr_commands(group: click.Group) -> None:
    """Register the commands of this module (one line in cli.py)."""
    for command in (forget_command, export_command, process_unsubscribes_command):
        group.add_command(command)


def _address(command: str, email: str) -> str:
    normalised, bad = check_address(email.strip())
    if bad:
        raise InputError(Problem(command, None, bad, "give the complete address"))
    return normalised


@dataclass(frozen=True)
class ListRow:
    """A list-file row that holds the address (in its email or any other column)."""

    file: str
    line: int
    list: str
    values: dict[str, str]
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"file": self.file, "line": self.line, "list": self.list,
                                "values": self.values}
        if self.problem:
            data["problem"] = self.problem
        return data


def list_rows(settings: Settings, address: str) -> Iterator[ListRow]:
    """Rows of every list file of the project with the address, compared without case."""
    key = email_key(address)
    if not settings.lists_dir.is_dir():
        return
    for path in sorted(settings.lists_dir.iterdir()):
        if path.suffix.lower() not in LIST_SUFFIXES or not path.is_file():
            continue
        for row in iter_list(path, path.stem):
            if isinstance(row, Subscriber):
                values = {"email": row.email, **({"name": row.name} if row.name else {}),
                          **({"lang": row.lang} if row.lang else {}), **row.fields}
                if any(email_key(v) == key for v in values.values()):
                    yield ListRow(display_path(row.path), row.line, path.stem, values)
            elif email_key(row.email) == key:
                yield ListRow(row.problem.path, row.problem.line or 0, path.stem,
                              {"email": row.email}, row.problem.message)


def _settings(obj: Context) -> Settings:
    return load_settings(locate_config(obj.config))


@click.command("forget")
@click.argument("email")
@click.option("--yes", "-y", is_flag=True,
              help="Do not ask; required without a terminal. Erasure cannot be undone.")
@click.pass_obj
def forget_command(obj: Context, email: str, yes: bool) -> int:
    """Erase everything held about EMAIL (GDPR art. 17), except a hashed suppression.

    Delivery rows stay, anonymised, so past reports keep their counts; the suppression is
    kept as a hash so the person is never mailed again, even from a list that still has
    them. Rows of list files are named, not edited: delete them yourself.
    """
    address = email_key(_address("forget", email))  # addresses are compared without case
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
    try:
        rows = list(list_rows(settings, address))
    except InputError as exc:  # a broken list file must not block an erasure
        rows = []
        for problem in exc.problems:
            err(f"{problem} (not searched for {address})")
    with Store(settings.tracking.database) as store:
        done = store.forget(address)
    click.echo(f"{address}: erased from the tracking store: {done['deliveries']} delivery "
               f"row(s) and {done['events']} event(s) anonymised, {done['subscriptions']} web "
               "subscription(s) deleted; kept: a hashed suppression, so it is never mailed again")
    for row in rows:
        click.echo(f"{row.file}:{row.line}: still has {address}: delete this row (meanwhile "
                   "the suppression keeps it from being mailed)")
    if done["residue"]:
        err(f"{display_path(settings.tracking.database)}: warning: another process has the "
            "database open, so old copies of the erased data may stay in the file until it "
            "closes (stop it, e.g. serve, and run forget again)")
    return ExitCode.OK


def _empty_export(address: str) -> dict[str, Any]:
    return {"email": email_key(address), "suppressed": None, "subscriptions": [],
            "deliveries": [], "events": []}


@click.command("export")
@click.argument("email")
@click.pass_obj
def export_command(obj: Context, email: str) -> int:
    """Print as JSON all data held about EMAIL (GDPR art. 15).

    The tracking store's suppression, web subscriptions with their consent, deliveries and
    events, and the rows of the project's list files that hold the address.
    """
    address = _address("export", email)
    settings = _settings(obj)
    rows = [row.as_json() for row in list_rows(settings, address)]
    store = open_store(settings.tracking.database)
    try:
        data = store.export(address) if store is not None else _empty_export(address)
    finally:
        if store is not None:
            store.close()
    click.echo(json.dumps({**data, "list_rows": rows}, ensure_ascii=False, indent=1))
    return ExitCode.OK


def _signer(settings: Settings) -> Signer | None:
    """The signing key, or None when no token was ever made (no key is created here)."""
    secret_env = settings.tracking.secret_env
    if not secret_env and not (settings.state_dir / "secret").is_file():
        return None
    return Signer(load_secret(settings.state_dir, secret_env))


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
    if maildir is None and imap_url is None:
        raise InputError(Problem("process-unsubscribes", None, "no mailbox given",
                                 "add --maildir PATH or --imap imaps://user@host/INBOX"))
    target = parse_imap_url(imap_url) if imap_url else None
    password = os.environ.get(password_env) if target else None
    if target and not password:
        raise InputError(Problem("process-unsubscribes", None, f"{password_env} is not set",
                                 f"export {password_env}=<the IMAP password>"))
    boxes: list[Mailbox] = []
    if maildir is not None:
        boxes.append(MaildirBox(maildir, include_seen=include_seen))
    settings = _settings(obj)
    signer = _signer(settings)
    store = open_store(settings.tracking.database)
    counts = dict.fromkeys(("unsubscribed", "already", "skipped"), 0)
    try:
        if target is not None and password:
            boxes.append(ImapBox(target, password, readonly=dry_run, include_seen=include_seen))
        for box in boxes:
            for outcome in process(box, signer, store, dry_run=dry_run):
                counts[outcome.status] += 1
                click.echo(_line(outcome, dry_run))
    finally:
        for box in boxes:
            if isinstance(box, ImapBox):
                box.close()
        if store is not None:
            store.close()
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
