"""Command line: parse arguments, call the core, print, map errors to exit codes.

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
from mirage_mailer.commands.common import Context, err
from mirage_mailer.commands.subscribers import add_gdpr_commands
from mirage_mailer.commands.password import hash_password_command
from mirage_mailer.commands.report import report_command, unsubscribe_command
from mirage_mailer.commands.send import run_due_command, send_command
from mirage_mailer.commands.web import add_web_commands
from mirage_mailer.util.errors import ExitCode, InputError, MirageError, display_path


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


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> int:
    """Scaffold a working project in DIRECTORY: config, templates, a list, an issue."""
    from mirage_mailer.project.scaffold import init_project

    written = init_project(directory)
    for path in written:
        click.echo(f"created {display_path(path)}")
    click.echo(f"next: cd {display_path(directory)} && mirage-mailer validate "
               "issues/2021-10-partners-meeting")
    return ExitCode.OK


@cli.command()
@click.argument("issue", required=False, metavar="[ISSUE]")
@click.pass_obj
def validate(obj: Context, issue: str | None) -> int:
    """Check config, issue, articles, lists, templates and the EU disclaimer.

    ISSUE is the issue folder or its id (the folder name under issues/); without it, the
    only issue, or the latest one.

    Prints every problem as path:line: message. Exit 2 if any is an error;
    warnings (duplicate addresses, missing translations) leave exit 0.
    """
    from mirage_mailer.services.loader import open_project
    from mirage_mailer.services.loader import validate as run_validate
    from mirage_mailer.services.planning import PlanOptions, make_plan
    from mirage_mailer.services.sending import SendOptions, read_plan
    from mirage_mailer.store import StoreError
    from mirage_mailer.util.tokens import check_secret

    project = open_project(obj.config, _issue_dir(obj, issue))
    errors, warnings, _scan = run_validate(project)
    try:  # the same refusal as preview and send, but a project without a secret gets none
        check_secret(project.settings.state_dir, project.settings.tracking.secret_env)
    except InputError as exc:
        errors = [*errors, *exc.problems]
    for problem in warnings:
        err(str(problem))
    for problem in errors:
        err(str(problem))
    try:  # the same plan as send --dry-run and the send prompt: one set of figures
        plan = read_plan(project, SendOptions())
    except StoreError as exc:  # validate checks the inputs; a broken store is send's business
        for problem in exc.problems:
            err(f"{problem} (recipient figures below ignore the tracking store)")
        plan = make_plan(project, None, PlanOptions())
    already = (f", {plan.already_sent} already sent" if plan.already_sent else "")
    summary = (f"{project.issue.id}: {len(errors)} error(s), {len(warnings)} warning(s); "
               f"languages {', '.join(project.issue.languages)}; "
               f"{plan.to_send} recipient(s) ({plan.languages()}){already}")
    click.echo(summary)
    return ExitCode.INVALID_INPUT if errors else ExitCode.OK


@cli.command()
@click.argument("issue", required=False, metavar="[ISSUE]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the files (default: preview/<issue-id>/).")
@click.option("--recipient", metavar="EMAIL",
              help="Personalise for this address (its list entry if it has one).")
@click.option("--lang", metavar="LANG", help="Only this language.")
@click.pass_obj
def preview(obj: Context, issue: str | None, out: Path | None, recipient: str | None,
            lang: str | None) -> int:
    """Write <lang>.html, <lang>.txt and <lang>.eml for each language; sends nothing.

    ISSUE is the issue folder or its id; without it, the only issue, or the latest one.
    """
    from mirage_mailer.services.loader import open_project
    from mirage_mailer.services.preview import write_preview

    project = open_project(obj.config, _issue_dir(obj, issue))
    for problem in project.warnings:
        err(str(problem))
    target = out if out is not None else Path("preview") / project.issue.id
    for path in write_preview(project, target, recipient=recipient, lang=lang):
        click.echo(display_path(path))
    return ExitCode.OK


def _issue_dir(obj: Context, issue: str | None) -> Path:
    """ISSUE as typed (folder, id or nothing) to its folder; says which one when it chose."""
    from mirage_mailer.services.loader import find_issue

    folder, note = find_issue(obj.config, issue)
    if note:
        err(note)
    return folder


@cli.command("rotate-secret")
@click.pass_obj
def rotate_secret_command(obj: Context) -> int:
    """Start signing links with a new key; links already sent keep working.

    The new key goes first in .mirage/secret and the earlier ones stay below it, used only
    to check links in messages already sent. Restart `serve` afterwards. With
    tracking.secret_env, change that variable instead (this says how).
    """
    from mirage_mailer.project.config import load_settings
    from mirage_mailer.services.loader import locate_config
    from mirage_mailer.util.tokens import rotate_secret

    settings = load_settings(locate_config(obj.config))
    done = rotate_secret(settings.state_dir, settings.tracking.secret_env)
    dropped = f"; {done.dropped} key(s) too short to be safe dropped" if done.dropped else ""
    click.echo(f"{display_path(done.path)}: new signing key; {done.kept} earlier key(s) kept "
               f"to check links already sent{dropped} (restart 'serve' to use it)")
    return ExitCode.OK


cli.add_command(send_command)
cli.add_command(run_due_command)
cli.add_command(report_command)
cli.add_command(unsubscribe_command)
add_gdpr_commands(cli)
cli.add_command(hash_password_command)
add_web_commands(cli)


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
