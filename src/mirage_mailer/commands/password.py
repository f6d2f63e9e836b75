"""``hash-password``: a PBKDF2 hash for the web report's basic auth, for the environment."""

from __future__ import annotations

import sys

import click

from mirage_mailer.commands.common import err
from mirage_mailer.util.errors import ExitCode, InputError, Problem
from mirage_mailer.util.passwords import ITERATIONS, MAX_ITERATIONS, MIN_ITERATIONS, hash_password


@click.command("hash-password")
@click.option("--iterations", type=click.IntRange(MIN_ITERATIONS, MAX_ITERATIONS),
              default=ITERATIONS, show_default=True, help="PBKDF2-HMAC-SHA256 rounds.")
def hash_password_command(iterations: int) -> int:
    """Print a password hash for /report/<issue-id> (never stored in mirage.yaml).

    Asks twice without echo on a terminal; otherwise reads the password from the first
    line of standard input. Put the output in the environment variable named by
    web.report_password_hash_env (default MIRAGE_REPORT_PASSWORD_HASH), in single quotes:
    it contains '$'.
    """
    if sys.stdin.isatty():
        password: str = click.prompt("Report password", hide_input=True,
                                     confirmation_prompt="Repeat it", err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InputError(Problem("hash-password", None, "the password is empty",
                                 "type a password, or pipe one line into the command"))
    if len(password) < 12:
        err("hash-password: warning: a password shorter than 12 characters is easy to guess")
    click.echo(hash_password(password, iterations=iterations))
    return ExitCode.OK


COMMANDS: tuple[click.Command, ...] = (hash_password_command,)
