"""Command line: the ``mirage-mailer`` group, the registration of the commands (one module per
group under ``commands/``), and ``main``, which maps errors to exit codes.

Nothing here decides anything about mail; every problem the core raises is printed as one
``path:line: message (hint)`` line. Exit codes: 0 done, 1 permanent failures recorded,
2 invalid input (nothing sent), 3 delivery could not proceed (state kept, rerun resumes).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import click

from mirage_mailer import __version__
from mirage_mailer.commands import password, project, report, send, subscribers, web
from mirage_mailer.commands.common import Context, err
from mirage_mailer.util.errors import MirageError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="Project config file (default: ./mirage.yaml, or the project of ISSUE_DIR).")
@click.option("--verbose", "-v", is_flag=True, help="Print more detail about what happens.")
@click.version_option(__version__, prog_name="mirage-mailer")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: bool) -> None:
    """Newsletters for EU-funded projects: inline-styled HTML with the mandatory EU
    funding disclaimer, sent over SMTP with a tracking log that never sends twice.

    Exit codes: 0 done, 1 some recipients failed permanently (5xx), 2 invalid input
    (nothing sent), 3 delivery could not proceed (state kept; rerun to resume).
    """
    ctx.obj = Context(config, verbose)


def _register(group: click.Group) -> None:
    """Every command is defined in its group's module under commands/ and added here, one way."""
    for module in (project, send, report, subscribers, web, password):
        for command in module.COMMANDS:
            group.add_command(command)


_register(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line per problem, never a traceback for input or network faults."""
    verbose = "--verbose" in (argv or sys.argv) or "-v" in (argv or sys.argv)
    try:
        result: Any = cli.main(args=argv, prog_name="mirage-mailer", standalone_mode=False)
    except click.exceptions.Abort:
        err("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MirageError as exc:
        for problem in exc.problems:
            err(str(problem))
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        err("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug, not a user mistake: say so in one line
        if verbose:
            traceback.print_exc()
        err(f"mirage-mailer: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --verbose for details, and please report it)")
        sys.exit(70)
    sys.exit(int(result) if isinstance(result, int) else 0)
