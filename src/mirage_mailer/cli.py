"""Command line: the ``mirage-mailer`` group, the lazy registration of the commands (one module per
group under ``commands/``), and ``main``, which maps errors to exit codes.

Nothing here decides anything about mail; every problem the core raises is printed as one
``path:line: message (hint)`` line. Exit codes: 0 done, 1 permanent failures recorded,
2 invalid input (nothing sent), 3 delivery could not proceed (state kept, rerun resumes),
130/143 stopped by Ctrl-C/SIGTERM, 141 the reader of stdout went away, 74 stdout could not
be written (a full disk) by a run that otherwise exited 0.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import select
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from mirage_mailer import __version__
from mirage_mailer.commands.common import Context, err
from mirage_mailer.commands.streams import lost_output
from mirage_mailer.util.errors import ExitCode, MirageError, StoppedEarly, is_busy
from mirage_mailer.util.pathfaults import as_path_mistake, path_mistake
from mirage_mailer.util.statefault import is_state_fault, state_write_error


class _Deferred(ModuleType):
    """Stands in ``sys.modules`` for a module until one of its names is first used, then
    imports it and answers for it. (``importlib.util.LazyLoader`` does not help here: an
    ``import`` statement reads the module's ``__spec__``, which makes it load at once.)"""

    def __getattr__(self, attr: str) -> Any:  # only called for names the stand-in lacks
        real = self.__dict__.get("_deferred_module")
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = self.__dict__["_deferred_module"] = importlib.import_module(self.__name__)
        return getattr(real, attr)


def defer_import(name: str) -> None:
    """Let ``import name`` cost nothing until the module is used. premailer imports requests,
    with urllib3 and two charset guessers (about 40 ms of every start), and cssutils imports
    urllib.request, with http.client (about 15 ms), and importlib.metadata, with zipfile and
    csv (about 5 ms: for its version in the fetch's User-Agent), only to fetch remote
    stylesheets, which we never let them do."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    stand_in = _Deferred(name)
    stand_in.__spec__ = spec
    sys.modules[name] = stand_in
    package, _, child = name.rpartition(".")
    if package:  # ``import a.b`` binds ``a`` and then reads ``b`` from it
        setattr(sys.modules[package], child, stand_in)


defer_import("requests")
defer_import("urllib.request")
defer_import("importlib.metadata")

# Every command: the module under commands/ that defines it (in its ``COMMANDS``), and the
# summary ``--help`` lists for it (its help's first sentence). A command's module is imported
# only when that command runs: importing every module, with the web server, the charts and
# the report tables, cost ~0.3 s of each start, and listing the commands in ``--help`` from
# their own docstrings cost the same again (a test checks this table against the commands).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("project", "Scaffold a working project in DIRECTORY: config, templates, a list, "
             "an issue."),
    "new-issue": ("project", "Start the next issue from the latest one and print the files to "
                  "edit."),
    "validate": ("project", "Check config, issue, articles, lists, templates, the EU "
                 "disclaimer and unsubscribe link."),
    "preview": ("project", "Write <lang>.html, <lang>.txt and <lang>.eml for each language; "
                "sends nothing."),
    "rotate-secret": ("project", "Start signing links with a new key; links already sent keep "
                      "working."),
    "send": ("send", "Send ISSUE to its lists; resumes where an earlier run stopped."),
    "run-due": ("send", "For cron: send every issue whose send_at has passed and that is not "
                "complete."),
    "report": ("report", "Delivery state of ISSUE_DIR (or of every issue) from the tracking "
               "store; with --period, the dissemination figures of the issues sent in that "
               "period."),
    "unsubscribe": ("subscribers", "Suppress EMAIL: it is never sent to again, from any "
                    "list."),
    "export": ("subscribers", "Print as JSON all data held about EMAIL (GDPR article 15)."),
    "forget": ("subscribers", "Erase everything held about EMAIL (GDPR article 17), except a "
               "hashed suppression."),
    "process-unsubscribes": ("subscribers", "Suppress the senders of mailed unsubscribe "
                             "requests (the List-Unsubscribe mailto)."),
    "subscribers": ("subscribers", "Who reads each list: list, count, add, remove, import and "
                    "export readers."),
    "serve": ("web", "Run the subscriber web app: one-click unsubscribe, double opt-in "
              "sign-up, archive."),
    "archive": ("web", "Write the archive of sent issues as a static site: index.html, one "
                "page per issue and language, feed.xml (Atom) and static/ files."),
    "signup-snippet": ("web", "Print an HTML sign-up form for LIST to paste into the "
                       "project's own website."),
    "hash-password": ("password", "Print a password hash for /report/<issue-id> (never "
                      "stored in mirage.yaml)."),
    "process-bounces": ("bounces", "Read the bounce mailbox (bounces.mailbox): record bounces "
                        "and complaints per issue."),
    "doctor": ("doctor", "Check the sending domain as a mail provider would."),
    "store": ("store", "The tracking store itself: move it from SQLite to PostgreSQL."),
}
COMMAND_MODULES = {name: module for name, (module, _) in COMMANDS.items()}


class OutputClosed(Exception):
    """Whoever reads our standard output stopped reading (``report | head``)."""


def _stdout_closed() -> bool:
    """Is standard output a pipe or socket whose reader has gone? (poll says POLLERR)"""
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else -1
    except (OSError, ValueError):
        return False
    if fd < 0:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, from ``COMMAND_MODULES``."""

    def invoke(self, ctx: click.Context) -> Any:
        # click turns any EPIPE into a silent exit 1, which the contract reserves for
        # permanent failures; a closed stdout gets its own code, any other EPIPE is a bug
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            if _stdout_closed():
                raise OutputClosed from exc
            raise RuntimeError(f"broken pipe: {exc}") from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_MODULES, *self.commands})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """``--help``'s command list, from ``COMMANDS``: no command module is imported. A
        stand-in carries each summary, so click lays the list out (and shortens it) as ever."""
        listing = click.Group(commands=[
            self.commands.get(name) or click.Command(name, help=summary)
            for name, (_, summary) in COMMANDS.items()])
        for name, command in self.commands.items():  # one added outside the table
            listing.commands.setdefault(name, command)
        listing.format_commands(ctx, formatter)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            module = importlib.import_module(f"mirage_mailer.commands.{COMMAND_MODULES[cmd_name]}")
            for command in module.COMMANDS:
                self.add_command(command)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="Project config file (default: ./mirage.yaml, or the project of ISSUE_DIR).")
@click.option("--verbose", "-v", is_flag=True, help="Print more detail about what happens.")
@click.version_option(__version__, prog_name="mirage-mailer")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: bool) -> None:
    """Newsletters for EU-funded projects: inline-styled HTML with the mandatory EU
    funding disclaimer, sent over SMTP with a tracking log that never sends twice.

    Exit codes: 0 done, 1 some recipients failed permanently (5xx), 2 invalid input
    (nothing sent), 3 delivery could not proceed (state kept; rerun to resume), 130 or 143
    stopped by Ctrl-C or SIGTERM (messages on the wire recorded; rerun to resume), 141 the
    reader of the output stopped reading (as in 'report | head'), 74 the output could not
    be written (a full disk) by a run that otherwise did all its work.
    """
    ctx.obj = Context(config, verbose)


OUTPUT_CLOSED = 141  # what a shell reports for a process that SIGPIPE ended (seq | head)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush has nowhere to fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        if sys.__stdout__ is not None:
            os.dup2(devnull, sys.__stdout__.fileno())
    finally:
        os.close(devnull)


OUTPUT_LOST = 74  # sysexits' EX_IOERR, beside the 70 (EX_SOFTWARE) of an internal error


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line per problem, never a traceback for input or network faults.

    A stdout that could not be written (a full disk) is said once, on stderr, at the end. It
    never hides what the run did: a code that is not 0 is kept (it says more about the
    recipients than the lost output does); a run that would exit 0 exits 74 instead, so that a
    script never takes a cut-off report or export for a whole one. Either way the recipients
    are recorded as they were sent, so a rerun sends nobody the issue twice."""
    code = _run(argv)
    if (lost := lost_output()) is not None:
        err(f"mirage-mailer: standard output: cannot write to it: {lost.strerror or lost} "
            "(free space where the output goes, or send it elsewhere; what this run did is "
            "recorded, only its output from that point on is lost)")
        if code == 0:
            code = OUTPUT_LOST
    sys.exit(code)


def _run(argv: list[str] | None) -> int:
    """The command's exit code, every error turned into its line."""
    verbose = "--verbose" in (argv or sys.argv) or "-v" in (argv or sys.argv)
    try:
        result: Any = cli.main(args=argv, prog_name="mirage-mailer", standalone_mode=False)
        if sys.stdout is not None:  # here, not at exit, so a reader that has gone is seen below
            sys.stdout.flush()
    except (OutputClosed, BrokenPipeError) as exc:
        if isinstance(exc, OutputClosed) or _stdout_closed():
            _quiet_stdout()
            return OUTPUT_CLOSED
        err(f"mirage-mailer: internal error: broken pipe: {exc} (please report it)")
        return 70
    except click.exceptions.Abort:
        err("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except MirageError as exc:
        for problem in exc.problems:
            err(str(problem))
        return int(exc.exit_code)
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except StoppedEarly as exc:  # SIGTERM before the first message: the store is as it was
        err(f"mirage-mailer: stopped by {exc.name} before sending began: nothing was sent "
            "(a rerun plans again and sends)")
        return 128 + exc.signum
    except Exception as exc:  # a bug, not a user mistake: say so in one line
        if is_busy(exc):  # a read waited out another process's write: a fault of the moment
            err(f"tracking database: cannot read it now: {exc} (another mirage-mailer process "
                "is writing to it (wait and rerun); a rerun resumes where this one stopped)")
            return int(ExitCode.CANNOT_DELIVER)
        if (mistake := as_path_mistake(exc)) is not None:  # a name too long, a link loop
            err(str(path_mistake(mistake).problems[0]))
            return int(ExitCode.INVALID_INPUT)
        if is_state_fault(exc):  # a full disk or a folder we may not write: no bug
            if verbose:
                traceback.print_exc()
            assert isinstance(exc, OSError)
            err(str(state_write_error(exc, resumes=False, verb="cannot use it").problems[0]))
            return int(ExitCode.CANNOT_DELIVER)
        if verbose:
            traceback.print_exc()
        err(f"mirage-mailer: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --verbose for details, and please report it)")
        return 70
    return int(result) if isinstance(result, int) else 0
