"""``send`` and ``run-due``: confirmation, progress display, closing summary line."""

from __future__ import annotations

import csv
import math
import shlex
import signal
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mirage_mailer.commands.common import (
    Context,
    email_option,
    err,
    issue_folder,
    on_terminal,
)
from mirage_mailer.commands.signals import SignalStop
from mirage_mailer.commands.streams import machine_output
from mirage_mailer.project.config import Settings, load_settings
from mirage_mailer.project.config_checks import redact
from mirage_mailer.project.content import parse_send_at
from mirage_mailer.services.loader import locate_config, open_project
from mirage_mailer.services.outbound import insecure_tls_warning
from mirage_mailer.services.planning import K_DUPLICATE, K_LANG, K_LATE, K_LIMIT, SEND, Plan
from mirage_mailer.services.preparation import Preparation
from mirage_mailer.services.schedule import bounces_first, check_store, find_due
from mirage_mailer.services.sending import Progress as Totals
from mirage_mailer.services.sending import (
    ProgressHook,
    SendOptions,
    SendOutcome,
    dry_run,
    dry_run_test,
    plan_to_confirm,
    prepare,
    send,
    send_test,
    sent_before,
)
from mirage_mailer.services.store_locks import run_due_lock
from mirage_mailer.util.csvcells import safe_row
from mirage_mailer.util.errors import (
    ExitCode,
    InputError,
    MirageError,
    Problem,
    StoppedEarly,
    display_path,
)
from mirage_mailer.util.writes import open_private

if TYPE_CHECKING:  # rich draws the bar on a terminal only: not imported by cron's runs
    from rich.progress import Progress

_LOG_EVERY = 10.0  # seconds between plain progress lines when not on a terminal
_REDRAW_EVERY = 0.1  # seconds between progress bar updates
_SKIPPED_SHOWN = 20
PLAN_CSV_COLUMNS = ("email", "name", "lang", "list", "decision", "reason")
_ALSO = ((K_DUPLICATE, "duplicate row(s)"), (K_LANG, "in another language (--lang)"),
         (K_LIMIT, "over --limit"),
         (K_LATE, "new in the list since the issue went out (run-due sends a finished "
          "issue to corrected rows only)"))
_NOT_STORED = (K_DUPLICATE, K_LATE)  # skips a real send records no row for


def _also_skipped(plan: Plan | None, *, stored: bool = False) -> str:
    """Skips that have no store count of their own, when there are any: with the counts,
    every list row is accounted for once (``validate``'s errors are ``invalid`` plus the
    row problems whose address has another row). ``stored``: a real send, whose counts
    already hold the withdrawn rows and those left pending by --lang or --limit."""
    if plan is None:
        return ""
    parts = [f"{plan.skipped[kind]} {label}" for kind, label in _ALSO
             if plan.skipped[kind] and not (stored and kind not in _NOT_STORED)]
    if plan.shadowed:
        parts.append(f"{plan.shadowed} row problem(s) whose address has another row")
    gone = plan.counts.get("withdrawn", 0)
    if gone and not stored:
        parts.insert(0, f"{gone} withdrawn (no longer in the list)")
    return f"; also not sent: {', '.join(parts)}" if parts else ""


def summary(outcome: SendOutcome, rerun: str = "send", resend_command: str = "") -> str:
    """The closing line; ``rerun`` is the command that resumes (``run-due`` for cron's run,
    which has no --resend-unknown: ``resend_command`` is then the ``send`` to run instead)."""
    c = outcome.counts
    resend = (f'run "{resend_command}"' if resend_command
              else "rerun with --resend-unknown")
    head = (f"{outcome.issue}: sent {c.get('sent', 0)}, failed {c.get('failed', 0)}, "
            f"pending {c.get('pending', 0)}, unknown {c.get('unknown', 0)}, "
            f"suppressed {c.get('suppressed', 0)}, invalid {c.get('invalid', 0)}")
    if c.get("withdrawn"):
        head += f", withdrawn {c['withdrawn']}"
    langs = ", ".join(f"{k}: {v}" for k, v in sorted(outcome.per_language.items()))
    if outcome.mode == "dry-run":
        return (f"{outcome.issue}: dry run, nothing sent: would send {outcome.to_send} "
                f"({langs or 'none'}); already sent {outcome.already_sent}, "
                f"suppressed {c['suppressed']}, invalid {c['invalid']}, "
                f"failed {c['failed']}, unknown {c['unknown']}{_also_skipped(outcome.plan)}")
    if outcome.mode == "test-dry-run":
        return (f"{outcome.issue}: dry run of the test copy, nothing sent: would send a "
                f"[TEST] copy to {outcome.to_send} address(es) ({langs}); nothing recorded")
    if outcome.mode == "test":
        run = outcome.this_run
        return (f"{outcome.issue}: test copy sent to {run.sent} of {run.total} address(es), "
                f"failed {run.failed}, deferred {run.deferred}; nothing recorded")
    theirs = _with_others(outcome)  # a PostgreSQL store's other live senders
    pending = c.get("pending", 0) - outcome.elsewhere
    unknown = c.get("unknown", 0) - outcome.elsewhere_on_wire
    if outcome.nothing_to_do and theirs:
        return head + f"; nothing left to claim{theirs}" + (
            f" ({unknown} unknown: {resend} to send them again)"
            if unknown > 0 else "")
    also = _also_skipped(outcome.plan, stored=True)
    if outcome.nothing_to_do:
        return head + also + "; nothing to send" + (
            f" ({c['unknown']} unknown: {resend} to send them again)"
            if c.get("unknown") else "")
    run = outcome.this_run
    stats = outcome.stats
    rate = f", {stats.rate:.0f} msg/s" if stats and stats.elapsed > 0 else ""
    tail = f"; this run: sent {run.sent}, failed {run.failed}" + (
        f" in {stats.elapsed:.1f}s{rate}" if stats else "")
    if outcome.stop_signal is not None:
        tail += ", stopped by " + ("Ctrl-C" if outcome.stop_signal == signal.SIGINT
                                   else "SIGTERM")
    tail += theirs
    if pending > 0:
        tail += f"; {pending} pending: rerun {rerun} to resume"
    if unknown > 0:
        tail += f"; {unknown} unknown: check, then {resend}"
    return head + also + tail


def _with_others(outcome: SendOutcome) -> str:
    """What other senders of the issue still hold (PostgreSQL store): theirs to finish."""
    pending, on_wire = outcome.elsewhere, outcome.elsewhere_on_wire
    if not (pending or on_wire):
        return ""
    return (f"; {pending + on_wire} held by other senders ({pending} pending, {on_wire} on "
            "the wire): theirs to finish, or a rerun's after tracking.lease_seconds if one "
            "has died")


class _Display:
    """A rich progress bar on a terminal, plain timestamped lines otherwise; ``lines``
    False (run-due, for cron) leaves out those lines, so cron's mail holds the warnings and
    one summary line per issue, not a line every ten seconds of a long send."""

    def __init__(self, label: str, interactive: bool, *, lines: bool = True) -> None:
        self.label = label
        self.interactive = interactive
        self.lines = lines
        self.bar: Progress | None = None
        self.task: object = None
        self.last_line = time.monotonic()
        self.last_update = 0.0
        self.noted = 0  # notes already shown

    def __enter__(self) -> ProgressHook:
        if self.interactive:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                TimeElapsedColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.bar.start()
        self.started = time.monotonic()
        return self.update

    def update(self, totals: Totals) -> None:
        for note in totals.notes[self.noted:]:  # a relay out of rotation: said at once
            if self.bar is not None:
                self.bar.console.print(f"warning: {note}", markup=False)
            else:
                err(f"warning: {note}")
        self.noted = len(totals.notes)
        now = time.monotonic()
        if now - self.last_update < _REDRAW_EVERY and totals.done < totals.total:
            return  # called once per message: redrawing ten times a second is plenty
        self.last_update = now
        elapsed = max(now - self.started, 1e-6)
        rate = f"{totals.done / elapsed:.0f} msg/s"
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task(self.label, total=totals.total, rate=rate)
            self.bar.update(self.task, completed=totals.done, rate=rate)  # type: ignore[arg-type]
        elif self.lines and time.monotonic() - self.last_line >= _LOG_EVERY:
            self.last_line = time.monotonic()
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            err(f"{stamp} {self.label}: {totals.done}/{totals.total} done "
                f"(sent {totals.sent}, failed {totals.failed}), {rate}")

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_skipped(outcome: SendOutcome) -> None:
    for problem in outcome.skipped[:_SKIPPED_SHOWN]:
        err(f"{problem} [skipped, recorded as invalid]")
    if len(outcome.skipped) > _SKIPPED_SHOWN:
        err(f"... and {len(outcome.skipped) - _SKIPPED_SHOWN} more skipped rows "
            "(mirage-mailer validate ISSUE_DIR lists them all)")


def _check_to(addresses: tuple[str, ...]) -> tuple[str, ...]:
    """Checked, and each mailbox once: addresses compare case-insensitively."""
    checked: dict[str, str] = {}
    for address in addresses:
        normalised = email_option("--to", address)
        checked.setdefault(normalised.lower(), normalised)
    return tuple(checked.values())


def ask(plan: Plan, transport_url: str) -> str | None:
    """The confirmation question, or None when there is nothing to send (no question)."""
    if plan.to_send == 0:
        return None
    limit = f", at most --limit {plan.options.limit}" if plan.options.limit else ""
    return (f"Send {plan.issue} to {plan.to_send} recipient(s) now ({plan.already_sent} "
            f"already have it{limit}) via {transport_url}?")


def _confirm(prep: Preparation, options: SendOptions, yes: bool) -> bool:
    """True to go ahead: with --yes, when nothing is left (no question), or on a 'y'."""
    if yes:
        return True
    project = prep.project
    transport = project.settings.transport
    via = (", ".join(relay.name for relay in transport.relays) if transport.relays
           else redact(transport.url))
    question = ask(plan_to_confirm(project, options), via)
    if question is None:
        return True  # the send records the lists as they are and says "nothing to send"
    if not on_terminal():
        raise InputError(Problem(
            "send", None, "refusing a real send without --yes when not on a terminal",
            "add --yes (cron jobs), or --dry-run to see what would be sent"))
    return click.confirm(question, default=False, err=True)


def print_plan(plan: Plan) -> None:
    """``--list``: who gets it (address, name, language, list), then who does not and why."""
    decisions = plan.decisions or []
    for d in decisions:
        if d.action == SEND:
            click.echo(_tab_row((d.email, d.name or "", d.lang or "", d.list_name)))
    skipped = [d for d in decisions if d.action != SEND]
    if skipped:
        click.echo(f"# not sent now ({len(skipped)}):")
    for d in skipped:
        click.echo(_tab_row((d.email, d.name or "", d.lang or "", d.list_name, d.reason)))


def _tab_row(cells: tuple[str, ...]) -> str:
    """One ``--list`` line: a tab or line break inside a value (a name may hold a tab) is
    a space, so every line keeps its columns for ``cut`` and ``awk -F'\\t'``."""
    return "\t".join(cell.replace("\t", " ").replace("\r", " ").replace("\n", " ")
                     for cell in cells)


def write_plan_csv(plan: Plan, target: Path) -> None:
    """``--csv PATH`` (``-`` for standard output): the same rows as ``--list``, as CSV, its
    cells safe to open in a spreadsheet (``util.csvcells``); the file is owner-only."""
    decisions = plan.decisions or []
    ordered = [d for d in decisions if d.action == SEND] + [
        d for d in decisions if d.action != SEND]
    rows = [safe_row([d.email, d.name, d.lang, d.list_name, d.action, d.reason])
            for d in ordered]
    if str(target) == "-":
        machine_output()
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(PLAN_CSV_COLUMNS)
        writer.writerows(rows)
        return
    try:
        with open_private(target, newline="") as handle:  # addresses: owner-only
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(PLAN_CSV_COLUMNS)
            writer.writerows(rows)
    except OSError as exc:
        raise InputError(Problem(display_path(target), None,
                                 f"cannot write the list: {exc.strerror or exc}",
                                 "choose a file in a folder you can write to")) from exc


def run_send(obj: Context, issue_dir: Path, options: SendOptions, yes: bool,
             interactive: bool, *, keep: bool = False, warn_tls: bool = True,
             refuse_twin: bool = False, progress_lines: bool = True) -> SendOutcome | None:
    """``refuse_twin``: run-due refuses (exit 2) an issue already sent under another id,
    since nobody is there to confirm; ``send`` warns before its question or ``--yes``, as
    a person may mean to send a renamed issue again. ``progress_lines`` False: no
    timestamped progress lines without a terminal (run-due's one line per issue)."""
    stopper = SignalStop()
    with stopper.early():  # SIGTERM while planning: exit 143, not the default kill
        outcome = _run_send(obj, issue_dir, options, yes, interactive, stopper, keep=keep,
                            warn_tls=warn_tls, refuse_twin=refuse_twin,
                            progress_lines=progress_lines)
    if outcome is not None and outcome.stop_signal is None and stopper.signal is not None:
        outcome.stop_signal = stopper.signal  # came as the delivery loop ended
    return outcome


def _run_send(obj: Context, issue_dir: Path, options: SendOptions, yes: bool,
              interactive: bool, stopper: SignalStop, *, keep: bool, warn_tls: bool,
              refuse_twin: bool, progress_lines: bool) -> SendOutcome | None:
    project = open_project(obj.config, issue_dir)
    for problem in project.warnings:
        err(str(problem))
    twin = None if options.to else sent_before(project, options)
    if twin is not None and refuse_twin:
        raise InputError(twin)
    if twin is not None:
        err(str(replace(twin, warning=True)))
    if warn_tls and (insecure := insecure_tls_warning(project.settings)):
        err(str(insecure))
    prep = prepare(project, options)
    for problem in prep.warnings:  # what only the rendered issue shows (its image ratio)
        err(str(problem))
    if options.dry_run and options.to:
        return dry_run_test(prep, options.to)
    if options.dry_run:
        return dry_run(prep, options, keep=keep)
    if options.to:
        with _Display(f"{project.issue.id} [TEST]", interactive,
                      lines=progress_lines) as hook:
            return send_test(prep, options.to, hook, stopper)
    if not _confirm(prep, options, yes):
        err("nothing sent")
        return None
    with _Display(project.issue.id, interactive, lines=progress_lines) as hook:
        return send(prep, options, hook, stopper)


def _finite_rate(_ctx: click.Context, _param: click.Parameter,
                 value: float | None) -> float | None:
    """click's range check lets NaN through (every comparison with it is false)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of messages per second")
    return value


@click.command("send")
@click.argument("issue", metavar="ISSUE")
@click.option("--dry-run", is_flag=True,
              help="Build every message and report what would be sent; transmit and record "
              "nothing (with --to: the test copy).")
@click.option("--to", "to", multiple=True, metavar="EMAIL",
              help="Send a [TEST] copy to EMAIL only (repeatable); not recorded, no --yes "
              "needed.")
@click.option("--lang", metavar="LANG",
              help="Only this language of the issue (one it has, else exit 2): its readers "
              "in a real send, the copy's language with --to.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N",
              help="Send at most N messages this run.")
@click.option("--concurrency", type=click.IntRange(min=1, max=100), metavar="N",
              help="SMTP connections for the whole send, 1 to 100, split between its "
              "sending processes (default: transport.concurrency).")
@click.option("--rate", type=click.FloatRange(min=0.01, max=100_000), metavar="R",
              callback=_finite_rate, help="At most R messages per second for the whole send, "
              "0.01 to 100000 (default: transport.rate_per_second).")
@click.option("--resend-unknown", is_flag=True,
              help="Also send again to recipients a crash left 'unknown'.")
@click.option("--yes", "-y", is_flag=True,
              help="Do not ask; required for a real send without a terminal.")
@click.option("--list", "show_list", is_flag=True,
              help="With --dry-run: print who would get it (address, name, language, list; "
              "tab-separated, one per line), then everyone skipped and why.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True,
                                                   path_type=Path), metavar="PATH",
              help="With --dry-run: write the same as CSV to PATH ('-' for standard output): "
              "email,name,lang,list,decision,reason.")
@click.option("--new-store", is_flag=True,
              help="Start over on purpose when the tracking database of a project that has "
              "sent before is missing, empty or damaged (a damaged file is renamed aside); "
              "everyone not recorded in the new store gets the issue.")
@click.option("--accept-restore", is_flag=True,
              help="Send ISSUE again, on purpose, to the readers a tracking database "
              "restored from an older backup does not know got it (refused without this); "
              "who unsubscribed or was erased since stays so.")
@click.pass_obj
def send_command(obj: Context, issue: str, dry_run: bool, to: tuple[str, ...],
                 lang: str | None, limit: int | None, concurrency: int | None,
                 rate: float | None, resend_unknown: bool, yes: bool, show_list: bool,
                 csv_path: Path | None, new_store: bool, accept_restore: bool) -> int:
    """Send ISSUE to its lists; resumes where an earlier run stopped.

    ISSUE is the issue folder or its id (the folder name under issues/ of the project).

    Each recipient gets the issue exactly once: a finished issue sends nothing, an
    interrupted one resumes. Exit 1 when this run recorded a permanent (5xx) failure,
    3 when delivery could not proceed (state kept: rerun to resume), 130 or 143 when
    Ctrl-C or SIGTERM stopped it (messages on the wire were finished and recorded).
    """
    if (show_list or csv_path is not None) and not dry_run:
        raise click.UsageError("--list and --csv go with --dry-run")
    if (show_list or csv_path is not None) and to:
        raise click.UsageError("--list and --csv show who gets the real send; leave out --to")
    options = SendOptions(dry_run=dry_run, to=_check_to(to), lang=lang, limit=limit,
                          concurrency=concurrency, rate=rate, resend_unknown=resend_unknown,
                          new_store=new_store, accept_restore=accept_restore)
    keep = show_list or csv_path is not None
    outcome = run_send(obj, issue_folder(obj, issue), options, yes, on_terminal(), keep=keep)
    if outcome is None:
        return ExitCode.OK
    if outcome.plan is not None and show_list:
        print_plan(outcome.plan)
    if outcome.plan is not None and csv_path is not None:
        write_plan_csv(outcome.plan, csv_path)
    if not (show_list or str(csv_path) == "-"):
        _print_skipped(outcome)
    if str(csv_path) == "-":
        err(summary(outcome))  # standard output holds the CSV alone
    else:
        click.echo(summary(outcome))
    if obj.verbose and outcome.claim_seconds and outcome.this_run.done:
        done = outcome.this_run.done  # a PostgreSQL store's leases: what recording cost
        err(f"store: {outcome.claim_seconds * 1000:.0f} ms in claim and outcome commits, "
            f"{outcome.claim_seconds / done * 1e6:.0f} µs a message; {outcome.commits} "
            f"commits for {done} messages")
    return outcome.exit_code


_RANK = {ExitCode.OK: 0, ExitCode.PERMANENT_FAILURES: 1, ExitCode.INVALID_INPUT: 2,
         ExitCode.CANNOT_DELIVER: 3, ExitCode.STOPPED_BY_SIGINT: 4,
         ExitCode.STOPPED_BY_SIGTERM: 4}
_STOPPED = (ExitCode.STOPPED_BY_SIGINT, ExitCode.STOPPED_BY_SIGTERM)


@click.command("run-due")
@click.option("--now", metavar="ISO8601",
              help="Pretend it is this time (ISO 8601 with time zone); default: now.")
@click.pass_obj
def run_due_command(obj: Context, now: str | None) -> int:
    """For cron: send every issue whose send_at has passed and that is not complete.

    Complete: recipients recorded, none pending, and no row recorded 'invalid' in a list
    changed since the issue's last send; such a change is sent on the next run to the rows
    it corrected only, not to newcomers (they get the next issue), and only for the latest
    issue of those lists. Those left 'unknown' are
    resent only by a person (the summary names the send --resend-unknown to run), so they
    never keep an issue due. An issue with the subject, number and date of one already
    sent under another id (a renamed or copied folder) is refused (exit 2), and so is one
    with nothing recorded that was due more than 24 hours before this copy of the project
    first sent (before now, if it never did: a git clone without its .mirage/ folder looks
    like that): copy that folder here, or send the issue by hand. A lock stops
    overlapping runs (exit 3). Output is one line per issue (no progress lines; warnings
    and errors are still shown); the exit code is the highest
    of the issues handled (3 > 2 > 1 > 0); a run stopped by Ctrl-C or SIGTERM starts no
    further issue and exits 130 or 143.
    """
    moment = datetime.now(UTC)
    if now is not None:
        parsed = parse_send_at(now)
        if parsed is None:
            raise InputError(Problem("--now", None, f"{now!r} is not an ISO 8601 time with a "
                                     "time zone", "write it like 2026-12-01T09:00:00+01:00"))
        moment = parsed
    settings = load_settings(locate_config(obj.config))
    if insecure := insecure_tls_warning(settings):
        err(str(insecure))  # once per run, before any issue is due
    handled: list[Path] = []
    try:
        # the whole run, not only each issue's send: a SIGTERM while bounces are read, due
        # issues are looked for, or between two issues ends with 143 and a line too
        with SignalStop().early():
            return _run_due(obj, settings, moment, handled)
    except StoppedEarly as exc:  # an issue's own stop is its send's (``_send_due``)
        err(f"run-due: stopped by {exc.name} before the next issue: {len(handled)} issue(s) "
            "handled; the next run goes on with the rest")
        return ExitCode(128 + exc.signum)


def _run_due(obj: Context, settings: Settings, moment: datetime, handled: list[Path]) -> int:
    """run-due's work under its lock; ``handled`` grows with each issue taken in hand."""
    worst = ExitCode.OK
    with run_due_lock(settings):
        check_store(settings)  # a lost store: exit 2
        bounced, trouble = bounces_first(settings)  # bounces.mailbox: suppress them first
        for problem in trouble:
            err(str(problem))
        if bounced is not None:
            from mirage_mailer.commands.bounces import summary_line

            click.echo(summary_line(bounced))
        due, problems = find_due(settings, moment)
        for problem in problems:
            err(str(problem))
            worst = ExitCode.INVALID_INPUT
        if not due:
            click.echo(nothing_due_line(moment, len(problems)))
        for item in due:
            handled.append(item.issue_dir)  # before: a stop as its summary prints counts it
            code = _send_due(obj, item.issue_dir, item.fixes_only)
            if _RANK[code] > _RANK[worst]:
                worst = code
            if code in _STOPPED:  # Ctrl-C or SIGTERM: no further issue is started
                break
    return worst


def nothing_due_line(moment: datetime, problems: int) -> str:
    """The summary line of a run that sent nothing: a cron log read from its last line must
    not say "nothing due" when an issue could not be handled (held back, or its issue.yaml
    unreadable): the reasons are on stderr, which a log may keep apart."""
    if not problems:
        return f"run-due: nothing due at {moment.isoformat()}"
    issues = "issue" if problems == 1 else "issues"
    return (f"run-due: nothing sent at {moment.isoformat()}: {problems} {issues} could not "
            "be handled (see the errors)")


def _send_due(obj: Context, issue_dir: Path, fixes_only: bool) -> ExitCode:
    try:
        outcome = run_send(obj, issue_dir, SendOptions(fixes_only=fixes_only), yes=True,
                           interactive=False, warn_tls=False, refuse_twin=True,
                           progress_lines=False)
    except MirageError as exc:
        for problem in exc.problems:
            err(f"{issue_dir.name}: {problem}")
        return exc.exit_code
    except StoppedEarly as exc:  # this issue's plan: an earlier issue of the run may have gone
        err(f"{issue_dir.name}: stopped by {exc.name} before sending began: nothing of this "
            "issue was sent (the next run plans it again)")
        return ExitCode(128 + exc.signum)
    if outcome is None:
        return ExitCode.OK
    _print_skipped(outcome)
    click.echo(summary(outcome, rerun="run-due", resend_command=resend_unknown_command(
        obj, issue_dir)))
    return outcome.exit_code


def resend_unknown_command(obj: Context, issue_dir: Path) -> str:
    """The ``send`` a person types in the folder run-due ran in: the issue's folder (an id
    would do too, but a folder says which issue wherever the line is read) and the same
    --config; quoted for the shell."""
    words = ["mirage-mailer"]
    if obj.config is not None:
        words += ["--config", display_path(obj.config)]
    return shlex.join([*words, "send", display_path(issue_dir), "--resend-unknown"])


COMMANDS: tuple[click.Command, ...] = (send_command, run_due_command)
