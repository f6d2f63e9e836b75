"""``send``: plan recipients into the tracking store, build each message, deliver, record.

Order matters for crash safety: a message is claimed in the claim journal right before it
goes to the server and its outcome journalled as soon as the server answered (the store gets
both in batches, ``recorder``), so a SIGKILL leaves at most the in-flight messages ``unknown``
once the next run (or ``report``) has replayed the journal; everything else resumes on the
next run without duplicates.
Recipients stream from the lists into SQLite and back out page by page, so memory stays flat
in list size.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol, TypeVar

from mirage_mailer.compose.message import Personal
from mirage_mailer.delivery import (
    Claim,
    DeliveryAborted,
    DeliveryStats,
    Envelope,
    Outcome,
    Result,
    SharedState,
    unclaimed,
)
from mirage_mailer.project.config import Settings
from mirage_mailer.project.lists import Subscriber
from mirage_mailer.services.as_sent import keep_as_sent
from mirage_mailer.services.held_unsubscribes import held_keys, record_held
from mirage_mailer.services.issue_marks import issue_plan, list_stamp, sent_twin
from mirage_mailer.services.journal import journal_path, journal_roots, settle
from mirage_mailer.services.lease_sending import (
    send_leased,
    shared_store,
    with_others,
)
from mirage_mailer.services.loader import Project, reader_problems
from mirage_mailer.services.outbound import credentials, deliver, resumable
from mirage_mailer.services.plan_store import first_plan
from mirage_mailer.services.planning import (
    K_SEND,
    Decision,
    Plan,
    Planner,
    PlanOptions,
    changes,
    make_plan,
)
from mirage_mailer.services.preparation import Preparation, for_the_wire, prepare_issue
from mirage_mailer.services.preview import preview_person
from mirage_mailer.services.recorder import SendRecorder
from mirage_mailer.services.sending_processes import process_count, send_on_processes
from mirage_mailer.services.store_locks import send_lock
from mirage_mailer.services.verp import envelope_sender
from mirage_mailer.store import (
    PlanReader,
    Recipient,
    RecorderStore,
    Store,
    StoreError,
    email_key,
    hashed_key,
    open_store,
    store_exists,
)
from mirage_mailer.store.guard import check_memory, inspect, mark_sent
from mirage_mailer.store.ledger import LEDGER, Ledger
from mirage_mailer.util.database import Database
from mirage_mailer.util.errors import (
    ExitCode,
    InputError,
    Problem,
    display_path,
)

TEST_PREFIX = "[TEST] "
AHEAD = 16  # messages built in a row (``_send_rows``)
T = TypeVar("T")


@dataclass(frozen=True)
class SendOptions:
    dry_run: bool = False
    to: tuple[str, ...] = ()
    lang: str | None = None
    limit: int | None = None
    concurrency: int | None = None
    rate: float | None = None
    resend_unknown: bool = False
    new_store: bool = False  # start over from a missing, empty or damaged store, on purpose
    fixes_only: bool = False  # run-due on an issue it finished: corrected rows only
    accept_restore: bool = False  # re-send an issue a restored store knows less of, on purpose


@dataclass
class Progress:
    """Running totals for the CLI's progress bar or log lines."""

    total: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    unknown: int = 0  # the relay may have the message (no reply after DATA): not retried
    notes: list[str] = field(default_factory=list)  # relays taken out of rotation, and why

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.unknown


ProgressHook = Callable[[Progress], None]


class StopSource(Protocol):
    """What may stop a run early (the CLI's Ctrl-C/SIGTERM handlers, ``commands.signals``).

    ``arm`` is called inside the run's event loop with the event that stops it; it returns
    the call that disarms it. ``signal`` is what stopped the run, if anything did.
    ``remember`` is called before sending processes are forked: from then on a stop may no
    longer unwind the run as "nothing sent"; it is kept for the next ``arm``.
    """

    signal: signal.Signals | None

    def arm(self, stop: asyncio.Event) -> Callable[[], None]: ...

    def remember(self) -> None: ...


@dataclass
class SendOutcome:
    issue: str
    mode: str  # send | dry-run | test | test-dry-run
    counts: dict[str, int] = field(default_factory=dict)
    to_send: int = 0
    per_language: Counter[str] = field(default_factory=Counter)
    already_sent: int = 0
    this_run: Progress = field(default_factory=Progress)
    stats: DeliveryStats | None = None
    nothing_to_do: bool = False
    skipped: list[Problem] = field(default_factory=list)  # row problems, recorded as invalid
    plan: Plan | None = None  # who gets it now and why the others do not
    stop_signal: signal.Signals | None = None  # Ctrl-C or SIGTERM stopped the run early
    elsewhere: int = 0  # pending rows other live senders hold (a PostgreSQL store's leases)
    elsewhere_on_wire: int = 0  # ... and their rows on the wire (counted unknown meanwhile)
    claim_seconds: float = 0.0  # time in claim and outcome commits (leases; the bench reads it)
    commits: int = 0  # ... and how many outcome commits there were

    @property
    def exit_code(self) -> ExitCode:
        if self.stop_signal is not None:  # a stopped run must not look finished to cron
            return ExitCode(128 + self.stop_signal)
        return ExitCode.PERMANENT_FAILURES if self.this_run.failed else ExitCode.OK


def database(project: Project) -> Database:
    return project.settings.tracking.database


def checked_store(project: Project, options: SendOptions) -> Store:
    """The store, once it is known to still remember who was sent what (``store.guard``)."""
    state_dir = project.settings.state_dir
    check_memory(database(project), state_dir, new_store=options.new_store)
    if options.new_store:  # started over on purpose: no earlier send is this store's to know
        Ledger(state_dir).append([{"k": "new-store"}], sync=True)
    # with the ledger: a store restored from an older backup gets back every suppression
    # recorded since, and names the issues it knows less of than this folder sent
    store = open_store(database(project), state_dir=state_dir)
    try:  # unsubscribes serve took while the store was busy count before anyone is planned
        record_held(store, state_dir)
        check_restored(store, project, accept=options.accept_restore)
    except BaseException:
        store.close()
        raise
    return store


def check_restored(store: Store, project: Project, *, accept: bool) -> None:
    """Refuse (exit 2) to send an issue this folder sent further than the store knows (a
    store put back from an older backup, ``store/restored.py``): the readers it does not
    know got it would get it twice. ``accept`` (``--accept-restore``) sends it to them on
    purpose; the people who unsubscribed or were erased since stay so either way."""
    issue = project.issue
    if issue.id not in store.restored.behind:
        return
    if accept:
        store.accept_restore(issue.id)
        return
    ledger = project.settings.state_dir / LEDGER
    raise StoreError(Problem(
        display_path(ledger), None, f"issue {issue.id}: this project sent it to more readers "
        f"than the tracking database knows ({display_path(database(project))} was restored "
        "from an older backup?): they would get it again; nothing was sent",
        f"restore a newer backup of the database (docs/operations.md#backups), or send it "
        f"again to the readers the database does not know on purpose with 'mirage-mailer "
        f"send {display_path(issue.path.parent)} --accept-restore'"))


def prepare(project: Project, options: SendOptions) -> Preparation:
    """Render every needed language once; raises ``InputError`` before anything is sent."""
    issue = project.issue
    languages = None
    if options.lang is not None:
        languages = (issue.language_option(options.lang),)
    elif options.to:
        languages = (issue.default_language,)
    prep = prepare_issue(project, languages=languages,
                         subject_prefix=TEST_PREFIX if options.to else "",
                         sign_as_built=False)  # signed on the way out: for_the_wire
    if not options.to:  # recipient logic that fails for a reader stops the send before any
        problems = reader_problems(project, prep.rendered)  # (none: no pass over the lists)
        if problems:
            raise InputError(problems)
    return prep


def plan_options(options: SendOptions) -> PlanOptions:
    return PlanOptions(lang=options.lang, limit=options.limit,
                       resend_unknown=options.resend_unknown, fixes_only=options.fixes_only)


@contextmanager
def existing_store(project: Project, *, new_store: bool = False) -> Iterator[PlanReader | None]:
    """The store when it exists, else None: reading a plan never creates a database.

    With ``new_store`` (starting over from a damaged store) an unreadable one counts as none,
    as it will be once ``send --new-store`` has moved it aside.
    """
    if not store_exists(database(project)):
        yield None
        return
    try:
        store = open_store(database(project))
    except StoreError:
        if not new_store:
            raise
        yield None
        return
    with store:
        yield store


def read_plan(project: Project, options: SendOptions, *, keep: bool = False) -> Plan:
    """The plan as a send would make it now, read-only: the prompt's and validate's figures."""
    with existing_store(project, new_store=options.new_store) as store:
        return make_plan(project, store, plan_options(options), keep=keep,
                         also_suppressed=_held(project, store))


def _held(project: Project, store: PlanReader | None) -> set[str]:
    """Who held unsubscribes name: a real send records them before it plans."""
    return held_keys(store, project.settings.state_dir) if store is not None else set()


def sent_before(project: Project, options: SendOptions) -> Problem | None:
    """The issue is one already sent under another id (a renamed or copied folder):
    ``issue_marks.sent_twin``, read from the store when there is one. A store that cannot
    be read is not this check's to report: the send's own store guard says why, and how.
    Nor is a store that lost its memory: opening an emptied file would write a new schema
    into it, before the guard could refuse it for what it was."""
    try:
        if inspect(database(project), thorough=False).state != "ok":
            return None
        with existing_store(project, new_store=options.new_store) as store:
            return sent_twin(project.issue, store)
    except StoreError:
        return None


def plan_to_confirm(project: Project, options: SendOptions) -> Plan:
    """The plan the send prompt asks about; a lost store is refused (exit 2) first."""
    state_dir = project.settings.state_dir
    check_memory(database(project), state_dir, new_store=options.new_store, dry_run=True)
    if not (options.new_store or options.accept_restore) and store_exists(database(project)):
        with open_store(database(project), state_dir=state_dir) as store:
            check_restored(store, project, accept=False)  # refused before the question
    return read_plan(project, options)


def dry_run(prep: Preparation, options: SendOptions, *, keep: bool = False) -> SendOutcome:
    """Build every message that a send would transmit; touch neither network nor store.

    ``keep`` holds every decision in the outcome's plan, for ``--list`` and ``--csv``.
    """
    project = prep.project
    check_memory(database(project), project.settings.state_dir,
                 new_store=options.new_store, dry_run=True, reading=True)
    with existing_store(project, new_store=options.new_store) as store:
        planner = Planner(project, store, plan_options(options), keep=keep,
                          also_suppressed=_held(project, store))
        for d in planner:
            if d.kind == K_SEND and isinstance(d.row, Subscriber) and d.lang is not None:
                prep.factory.build(Personal(d.email, d.name, d.list_name, d.row.fields), d.lang)
    return _outcome(planner.plan, "dry-run")


def dry_run_test(prep: Preparation, addresses: tuple[str, ...]) -> SendOutcome:
    """``--to`` with ``--dry-run``: build each ``[TEST] `` copy as ``send_test`` would (so a
    template or address problem shows now), and transmit and record nothing."""
    project = prep.project
    lang = next(iter(prep.rendered))
    for address in addresses:
        person = preview_person(project, address, prep.fields)[0]
        prep.factory.build(person, lang)
    outcome = SendOutcome(project.issue.id, "test-dry-run", to_send=len(addresses))
    outcome.per_language[lang] = len(addresses)
    return outcome


def _outcome(plan: Plan, mode: str) -> SendOutcome:
    return SendOutcome(plan.issue, mode, counts=dict(plan.counts), to_send=plan.to_send,
                       per_language=plan.per_language, already_sent=plan.already_sent,
                       skipped=plan.problems, plan=plan)


def _deliver(project: Project, envelopes: Iterator[Envelope], outcome: SendOutcome, *,
             on_attempt: Claim, on_result: Callable[[Result], None],
             stopper: StopSource | None = None, concurrency: int | None = None,
             rate: float | None = None, after: Callable[[], None] | None = None,
             progress: ProgressHook | None = None,
             shared_pace: SharedState | None = None) -> None:
    """One delivery run on its own event loop, stopped cleanly when ``stopper`` says so; its
    stats, and the signal that stopped it, go into ``outcome``. A relay taken out of
    rotation (``transport.relays``), or one that offers AUTH to a run without a login, is a
    note in the run's totals, shown at once.
    ``shared_pace``: the pace of a send on several processes (``sending_processes``)."""
    def relay_out(line: str) -> None:
        outcome.this_run.notes.append(line)
        if progress is not None:
            progress(outcome.this_run)

    async def run() -> DeliveryStats:
        stop = asyncio.Event()
        disarm = stopper.arm(stop) if stopper is not None else None
        try:
            return await deliver(project.settings, envelopes, on_attempt=on_attempt,
                                 on_result=on_result, stop=stop, concurrency=concurrency,
                                 rate=rate, on_relay_out=relay_out, shared_pace=shared_pace,
                                 on_notice=relay_out)
        finally:
            if after is not None:
                after()  # still inside the loop: timers it owns are cancelled here
            if disarm is not None:
                disarm()
            if stopper is not None:
                outcome.stop_signal = stopper.signal

    outcome.stats = run_loop(project.settings, run())


def run_loop(settings: Settings, main: Coroutine[Any, Any, T]) -> T:
    """Run a delivery on the configured event loop (``transport.event_loop``)."""
    try:
        factory = loop_factory(settings)
    except InputError:
        main.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when ``transport.event_loop`` asks for it (it made the same send about
    a fifth faster, docs/design.md "Performance notes"), else asyncio's own (None). uvloop is
    an optional extra: asking for it without it installed is a config error (exit 2), found
    before the store is touched."""
    if settings.transport.event_loop != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        raise InputError(Problem(
            display_path(settings.path), settings.line_of.get("transport.event_loop"),
            "transport.event_loop is uvloop, but uvloop is not installed",
            "pip install 'mirage-mailer[uvloop]', or set event_loop: asyncio")) from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def send_test(prep: Preparation, addresses: tuple[str, ...],
              progress: ProgressHook | None = None,
              stopper: StopSource | None = None) -> SendOutcome:
    """``--to``: a ``[TEST] `` copy to each address; nothing is recorded for the issue."""
    project = prep.project
    lang = next(iter(prep.rendered))
    outcome = SendOutcome(project.issue.id, "test")
    outcome.this_run.total = len(addresses)
    people = [preview_person(project, address, prep.fields)[0] for address in addresses]
    sender = project.settings.sender.return_path

    def envelopes() -> Iterator[Envelope]:
        for key, person in enumerate(people):
            yield Envelope(key, sender, person.email, prep.factory.build(person, lang))

    def on_result(result: Result) -> None:
        if result.final:
            _count(outcome.this_run, result)
            if result.outcome is not Outcome.SENT:  # nothing is recorded: say it here
                outcome.this_run.notes.append(_test_copy_note(result))
            if progress:
                progress(outcome.this_run)

    try:
        _deliver(project, for_the_wire(prep, envelopes()), outcome, on_attempt=unclaimed,
                 on_result=on_result, stopper=stopper, progress=progress)
    except DeliveryAborted as exc:
        raise resumable(project.settings, exc) from None
    outcome.to_send = len(people)
    outcome.per_language[lang] = len(people)
    return outcome


def _test_copy_note(result: Result) -> str:
    """Why a test copy did not go: its reply is kept nowhere else (no report row)."""
    what = {Outcome.FAILED: "refused",
            Outcome.UNKNOWN: "no reply after the message was sent (it may have arrived)"
            }.get(result.outcome, "deferred (send the test copy again later)")
    said = " ".join(part for part in (str(result.code or ""), result.response) if part)
    return f"test copy to {result.envelope.recipient}: {what}" + (f": {said}" if said else "")


def _count(totals: Progress, result: Result) -> None:
    if result.outcome is Outcome.SENT:
        totals.sent += 1
    elif result.outcome is Outcome.FAILED:
        totals.failed += 1
    elif result.outcome is Outcome.UNKNOWN:
        totals.unknown += 1
    else:
        totals.deferred += 1


def send(prep: Preparation, options: SendOptions, progress: ProgressHook | None = None,
         stopper: StopSource | None = None) -> SendOutcome:
    """The real send: resumable, idempotent, recorded. Raises ``DeliveryError`` for exit 3."""
    project = prep.project
    issue = project.issue
    settings = project.settings
    credentials(settings)  # half-set credentials fail (exit 2) before the store is touched
    loop_factory(settings)  # so does an event loop that is not installed
    if shared_store(settings):
        return _send_shared(prep, options, progress, stopper)
    with send_lock(settings, issue.id), checked_store(project, options) as store:
        roots = journal_roots(settings.state_dir, settings.tracking.database)
        settled = settle(store, roots, issue.id)  # a crashed run's journal, first
        store.recover_inflight(issue.id)
        outcome, wanted = _plan_send(prep, options, store)
        if settled is not None and settled.warnings:
            # a journal lost, damaged or foreign: said first, even with nothing left to send
            outcome.this_run.notes[:0] = settled.warnings
            if progress:
                progress(outcome.this_run)
        if outcome.nothing_to_do:
            return outcome
        if progress and outcome.this_run.notes:
            progress(outcome.this_run)  # a warning is said before the first message goes
        plan = outcome.plan
        assert plan is not None
        count = process_count(settings, options, plan.to_send)
        if count > 1:
            send_on_processes(prep, options, store, wanted, plan.to_send, outcome, count,
                              progress, stopper)
        else:
            _send_rows(prep, options, store, wanted, plan.to_send, outcome, progress, stopper)
        outcome.to_send = outcome.this_run.total
        outcome.counts = store.counts(issue.id)
    return outcome


def _plan_send(prep: Preparation, options: SendOptions,
               store: RecorderStore) -> tuple[SendOutcome, set[str]]:
    """Bring the issue's rows in line with its lists (``reconcile``) and say what this run
    sends; with ``--limit`` also exactly which addresses (the plan's first N)."""
    project = prep.project
    issue = project.issue
    stamp = list_stamp(project.lists.values())  # before the lists are read: an edit during
    store.apply_suppressions(issue.id)           # this plan is seen by the next run
    fast = first_plan(project, store, plan_options(options), prep.factory.signer.subject_id)
    if fast is not None:  # an issue's first plan no stored row can change: services/plan_store
        plan, wanted = fast
    else:
        plan, wanted = _reconciled(prep, options, store)
    store.record_issue_plan(issue_plan(issue, stamp))  # run-due's "complete" reads it
    # one look at the issue's index, where counting its statuses reads every row (0.5 s at
    # a million); the counts are read only when this run has nothing to send
    if store.has_rows(issue.id):
        mark_sent(project.settings.state_dir)  # from now on, a lost store is refused
    outcome = _outcome(plan, "send")
    outcome.per_language = Counter()  # this run's, counted as messages are built
    outcome.this_run.total = plan.to_send
    if plan.to_send:  # the issue as sent, for the archive; a warning if it changed since
        changed = keep_as_sent(project, prep.rendered, store, to_send=plan.to_send,
                               first_plan=fast is not None)
        if changed is not None:
            outcome.this_run.notes.append(changed)
    if plan.to_send == 0:
        outcome.nothing_to_do = True
        outcome.counts = store.counts(issue.id)
    return outcome, wanted


def _reconciled(prep: Preparation, options: SendOptions,
                store: RecorderStore) -> tuple[Plan, set[str]]:
    """The plan decided row by row and fed to ``reconcile``; with ``--limit`` the keys of
    the plan's first N."""
    issue = prep.project.issue
    planner = Planner(prep.project, store, plan_options(options),
                      subject=prep.factory.signer.subject_id)
    wanted: set[str] = set()  # with --limit: exactly the plan's first N, whatever the ids
    # --resend-unknown: the unknown rows this plan sends, put back to pending after it; the
    # others (no longer in a list, suppressed) stay unknown, so no later run mails them again
    # unasked (requeued before the plan, they were withdrawn, then sent when back)
    resent: list[str] = []

    def noted(decisions: Iterator[Decision]) -> Iterator[Decision]:
        for d in decisions:
            if d.kind == K_SEND:
                if options.limit is not None:
                    wanted.add(d.key)
                if d.prior is not None and d.prior.status in ("unknown", "sending"):
                    resent.append(d.key)
            yield d

    store.reconcile(issue.id, changes(noted(iter(planner)), prep.factory.signer.subject_id))
    if resent:
        store.requeue_unknown(issue.id, resent)
    return planner.plan, wanted


def _send_shared(prep: Preparation, options: SendOptions, progress: ProgressHook | None,
                 stopper: StopSource | None) -> SendOutcome:
    """A send on a PostgreSQL store, one of possibly several senders of the issue
    (``lease_sending``): no file lock, no journal; dead senders' rows first."""
    project = prep.project
    issue = project.issue
    with checked_store(project, options) as store:
        reaped = store.reap(issue.id)
        outcome, wanted = _plan_send(prep, options, store)
        if reaped.senders or reaped.unknown:
            outcome.this_run.notes.append(reaped.words())
        if outcome.nothing_to_do:
            with_others(store, outcome)
            return outcome
        if progress and outcome.this_run.notes:
            progress(outcome.this_run)  # a warning is said before the first message goes
        send_leased(prep, options, store, wanted, outcome, progress, stopper)
        outcome.to_send = outcome.this_run.total
        with_others(store, outcome)
    return outcome


def _send_rows(prep: Preparation, options: SendOptions, store: Store, wanted: set[str],
               to_send: int, outcome: SendOutcome, progress: ProgressHook | None,
               stopper: StopSource | None, *, shard: tuple[int, int] | None = None,
               concurrency: int | None = None,
               shared_pace: SharedState | None = None) -> None:
    """Build, deliver and record the pending rows (a sending process's ``shard`` of them):
    the one place where a recipient's final message bytes are made (``envelopes``), right
    before they go on the wire."""
    project = prep.project
    issue = project.issue
    settings = project.settings
    # per envelope handed out: [hash of the address, attempt number, message id]
    tracked: dict[int, list[Any]] = {}
    sender = envelope_sender(settings, issue.id)  # per recipient with VERP (bounces:)

    factory = prep.factory
    # over SMTP, unsigned: each message is joined in wire format right away (``build_wire``)
    wired = settings.transport.scheme in ("smtp", "smtps") and prep.dkim is None

    def eligible() -> Iterator[tuple[Recipient, str]]:
        count = 0
        for row in store.iter_pending(issue.id, shard=shard):
            if count >= to_send:
                return
            if options.limit is not None and email_key(row.email) not in wanted:
                continue  # over --limit in the plan's order: left for a later run
            lang = issue.pick_language(row.lang)
            if lang not in prep.rendered:
                continue  # --lang: another language's reader, left for a later run
            count += 1
            yield row, lang

    def built() -> Iterator[tuple[Envelope, str]]:
        # reserved in the store before handed out: a lost journal leaves them unknown
        for row, lang in writes.reserved(eligible(), lambda item: item[0].id):
            message_id = factory.new_message_id()
            person = Personal(row.email, row.name, row.list_name, row.fields, row.subject)
            data = factory.build_wire(person, lang, message_id=message_id) if wired else None
            tracked[row.id] = [hashed_key(row.email), row.attempts, message_id]
            if data is not None:
                yield Envelope(row.id, sender(row.id, row.email), row.email, data,
                               wired=True, refused_before=row.refused_before), lang
            else:
                yield Envelope(row.id, sender(row.id, row.email), row.email,
                               factory.build(person, lang, message_id=message_id),
                               refused_before=row.refused_before), lang

    def envelopes() -> Iterator[Envelope]:
        """The messages, built ``AHEAD`` at a time: building a few in a row, between the
        wire's turns, measured 8 to 15 % less CPU a message than one per turn (the code and
        data of building stay in the processor's caches). Nothing is claimed before it is
        handed out, so a stop leaves the ones built ahead pending, untouched."""
        source = built()
        while batch := list(islice(source, AHEAD)):
            for envelope, lang in batch:
                outcome.per_language[lang] += 1
                yield envelope

    index = shard[0] if shard is not None else 0
    home = journal_roots(settings.state_dir, settings.tracking.database)[0]
    writes = SendRecorder.open(store, journal_path(home, issue.id, index), issue.id)

    async def on_attempt(envelope: Envelope) -> bool:
        who, attempt, message_id = tracked[envelope.key]
        if writes.claim(envelope.key, who, attempt, message_id):
            return True
        tracked.pop(envelope.key, None)  # unsubscribed since it was queued: not sent
        return False

    def on_result(result: Result) -> None:
        key = result.envelope.key
        track = tracked[key]
        writes.hold(key, track[0], track[1], track[2], result.outcome.value, result.code,
                    result.response, result.relay)
        track[1] += 1
        if result.final:
            del tracked[key]
            _count(outcome.this_run, result)
            if progress:
                progress(outcome.this_run)

    try:
        _deliver(project, for_the_wire(prep, envelopes()), outcome, on_attempt=on_attempt,
                 on_result=on_result, stopper=stopper,
                 concurrency=options.concurrency if concurrency is None else concurrency,
                 rate=options.rate, after=writes.close, progress=progress,
                 shared_pace=shared_pace)
    except DeliveryAborted as exc:
        writes.close()
        if shard is not None:
            raise  # the parent recovers, once every sending process has finished
        store.recover_inflight(issue.id)
        raise resumable(settings, exc, store.counts(issue.id)) from None
    finally:
        writes.close()
        # a row still 'sending' lost its outcome (the run was stopped with it in flight):
        # unknown, as after a crash, re-sent only by --resend-unknown; with several
        # processes only the parent may say so (a sibling's row may still be on the wire)
        if shard is None:
            store.recover_inflight(issue.id)
