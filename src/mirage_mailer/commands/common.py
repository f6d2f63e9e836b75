"""What every command shares: the context object and one-line output helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import click

ISSUE_DIR = click.Path(file_okay=False, path_type=Path)


class Context:
    def __init__(self, config: Path | None, verbose: bool) -> None:
        self.config = config
        self.verbose = verbose


def err(line: str) -> None:
    click.echo(line, err=True)


def on_terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()
