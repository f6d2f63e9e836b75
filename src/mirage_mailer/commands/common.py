"""What every command shares: the context object, one-line output helpers, and ISSUE as typed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mirage_mailer.commands.streams import is_terminal
from mirage_mailer.util.addresses import check_address
from mirage_mailer.util.errors import InputError, Problem

ISSUE_DIR = click.Path(file_okay=False, path_type=Path)


class Context:
    def __init__(self, config: Path | None, verbose: bool) -> None:
        self.config = config
        self.verbose = verbose


def err(line: str) -> None:
    click.echo(line, err=True)


def email_option(option: str, value: str) -> str:
    """An address typed after ``option`` (send --to, preview --recipient), checked as a list
    row is before it reaches a header: one line and exit 2, never a half-built message."""
    normalised, bad = check_address(value)
    if bad:
        raise InputError(Problem(option, None, bad, "give a complete address"))
    return normalised


def on_terminal() -> bool:
    """Someone at a terminal to ask; a closed stdin or stderr (cron's ``<&-``) is nobody."""
    return is_terminal(sys.stdin) and is_terminal(sys.stderr)


def issue_folder(obj: Context, issue: str | None) -> Path:
    """ISSUE as typed (folder, id or nothing) to its folder; says which one when it chose."""
    # imported here: the loader brings the renderer, which commands without ISSUE never need
    from mirage_mailer.services.loader import find_issue

    folder, note = find_issue(obj.config, issue)
    if note:
        err(note)
    return folder
