"""Who gets an issue now, and why everyone else does not: one plan for every command.

``validate``, ``send --dry-run``, the send prompt and ``send`` itself once counted each in
their own way (list rows, unique rows, store rows) and printed figures that disagreed. They
all use this planner now. It reads the lists, the confirmed web sign-ups and the tracking
store (which may be absent) and never writes; ``send`` feeds the decisions to
``Store.reconcile`` so the store follows the lists as they are today: a corrected row is sent,
a row that left the list before its turn is ``withdrawn``, a new row is queued. Rows already
``sent``, ``failed`` or ``unknown`` are never changed by a list edit.

``send``'s first plan of an issue that nothing stored can change (no row of the issue, no
suppression, no confirmed sign-up, nothing but ``--limit``) is written from the lists'
columns instead (``plan_store``), with the very rows, events and figures this planner gives.

Decisions stream (list order, then invalid rows, then store rows no longer in any list); the
addresses seen are kept by ``SeenAddresses`` (the latest 250,000 in a dict, older ones in
sorted runs in a private temporary file), so memory stays bounded whatever the list size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

from mirage_mailer.project.lists import RowProblem, SubjectOf, Subscriber
from mirage_mailer.project.seen import SeenAddresses
from mirage_mailer.services.loader import Project, iter_rows
from mirage_mailer.store import (
    REPORT_STATUSES,
    NewRecipient,
    PlanReader,
    Prior,
    email_key,
    hashed_key,
)
from mirage_mailer.util.addresses import EMPTY_ADDRESS, looks_corrected
from mirage_mailer.util.errors import Problem, display_path
from mirage_mailer.util.fieldsjson import stored_fields
from mirage_mailer.util.gcquiet import bulk_pass

SEND = "send"
SKIP = "skip"
_BATCH = 500  # list rows whose store rows are looked up in one query

# Decision kinds (the reason text adds the detail)
K_SEND, K_SENT, K_FAILED, K_UNKNOWN = "send", "already-sent", "failed", "unknown"
K_SUPPRESSED, K_INVALID, K_DUPLICATE = "suppressed", "invalid", "duplicate"
K_LANG, K_LIMIT, K_WITHDRAWN = "other-language", "over-limit", "withdrawn"
K_LATE = "joined-late"
LATE_REASON = ("new in the list since the issue went out: run-due sends a finished issue "
               "only to rows corrected since (send the issue by hand to include them)")
DUPLICATE_OF = "duplicate of "  # a duplicate's reason, then where the first one is


@dataclass(frozen=True)
class PlanOptions:
    lang: str | None = None  # --lang: only readers of this language (as the issue picks it)
    limit: int | None = None  # --limit: at most this many now
    resend_unknown: bool = False
    # run-due on an issue it finished: only rows recorded invalid and corrected since (same
    # address, or a valid row at the line of an invalid one) are sent; newcomers are not
    fixes_only: bool = False


@dataclass(slots=True)
class Decision:
    """One person (or one list row) and what happens to them in this run (read-only by
    convention: one is made per row, and a frozen one takes four times as long)."""

    email: str
    name: str | None
    lang: str | None  # the language of their message (None: a row that cannot be sent)
    list_name: str
    kind: str  # K_* above
    reason: str  # "" for those who get it
    status: str | None  # their store row once reconciled; None: no row of its own
    key: str  # the store row's key (email_key, or a forgotten person's hash)
    where: str = ""  # file:line of a row problem or duplicate; "tracking store" for rows gone
    row: Subscriber | RowProblem | None = None  # what to record; None: not in any list
    prior: Prior | None = None  # the store row of this key as it was, if any

    @property
    def action(self) -> str:
        return SEND if self.kind == K_SEND else SKIP


@dataclass
class Plan:
    """The figures every command prints; ``decisions`` only when asked for (``keep``)."""

    issue: str
    options: PlanOptions = field(default_factory=PlanOptions)
    to_send: int = 0
    per_language: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # by kind
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REPORT_STATUSES, 0))
    problems: list[Problem] = field(default_factory=list)  # invalid rows recorded as such
    # row problems not recorded ``invalid``: their address has another row (a valid one, an
    # earlier bad one, or a stored status no list edit changes); validate counts them too
    shadowed: int = 0
    decisions: list[Decision] | None = None

    @property
    def already_sent(self) -> int:
        return self.counts["sent"]

    def add(self, decision: Decision) -> None:
        if decision.kind == K_SEND:
            self.to_send += 1
            self.per_language[decision.lang or ""] += 1
        else:
            self.skipped[decision.kind] += 1
        if decision.status is not None:
            self.counts[decision.status] += 1
        if decision.kind == K_INVALID and decision.status == "invalid" \
                and isinstance(decision.row, RowProblem):
            self.problems.append(decision.row.problem)
        elif decision.kind == K_INVALID:
            self.shadowed += 1
        if self.decisions is not None:
            self.decisions.append(decision)

    def languages(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.per_language.items())) or "none"


def make_plan(project: Project, store: PlanReader | None, options: PlanOptions, *,
              keep: bool = False, also_suppressed: set[str] | None = None) -> Plan:
    """The whole plan at once (read-only): what ``validate``, the prompt and dry-run print."""
    planner = Planner(project, store, options, keep=keep, also_suppressed=also_suppressed)
    for _ in planner:
        pass
    return planner.plan


@dataclass
class ListScan:
    """What ``validate`` reports about the lists' rows, read off the plan's own pass."""

    row_problems: list[Problem] = field(default_factory=list)
    duplicates: list[Problem] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)  # columns of the rows that get a message
    recipients: int = 0  # unique valid list rows (web sign-ups not counted)
    languages: Counter[str] = field(default_factory=Counter)


def scan_plan(project: Project, store: PlanReader | None,
              options: PlanOptions) -> tuple[Plan, ListScan]:
    """The plan and the list check in one pass over the lists (a million-row list was read
    and checked twice, once for each: a third of validate's time)."""
    planner = Planner(project, store, options)
    scan = ListScan()
    shown: dict[Path, str] = {}
    for d in planner:
        row = d.row
        if isinstance(row, RowProblem):
            scan.row_problems.append(row.problem)
        elif isinstance(row, Subscriber) and row.line:  # a list row, not a web sign-up
            if d.kind == K_DUPLICATE:
                where = shown.get(row.path) or shown.setdefault(row.path,
                                                                display_path(row.path))
                first = d.reason.removeprefix(DUPLICATE_OF)
                scan.duplicates.append(Problem(
                    where, row.line, f"duplicate address {row.email} (first at {first})",
                    "only the first is sent to; delete this row", warning=True))
                continue
            scan.fields.update(row.fields)
            scan.recipients += 1
            scan.languages[d.lang or ""] += 1
    return planner.plan, scan


def changes(decisions: Iterable[Decision],
            subject: Callable[[str], str]) -> Iterator[NewRecipient | str]:
    """What ``Store.reconcile`` records for each decision (nothing for unchanged rows);
    ``subject`` is the keyed hash that tokens carry for an address.

    A row the store already holds as the list holds it now is left out here, so a rerun of
    a long list asks the store nothing more about it (three statements a row, before). A row
    read on the second core comes with its subject id (``Planner(subject=...)``)."""
    for d in decisions:
        if d.row is None:
            if d.status == "withdrawn":
                yield d.key
        elif d.status in ("pending", "suppressed") and isinstance(d.row, Subscriber):
            r = d.row
            subject_id = r.subject or subject(r.email)
            if d.prior is not None and _unchanged(d, r, d.prior, subject_id):
                continue
            yield NewRecipient(r.email, r.name, r.lang, r.list_name, r.fields,
                               subject=subject_id, fields_text=r.fields_text)
        elif d.status == "invalid" and isinstance(d.row, RowProblem):
            yield NewRecipient(d.email, None, None, d.list_name, {}, status="invalid",
                               detail=str(d.row.problem))


def _unchanged(d: Decision, r: Subscriber, prior: Prior, subject_id: str) -> bool:
    """True when ``reconcile`` would write nothing for this row: its store row is closed to
    list edits (sent, failed, unknown, suppressed), or pending with the very same values."""
    if prior.status not in ("pending", "invalid", "withdrawn"):  # as reconcile's SQL
        return True
    return (prior.status == "pending" and d.status == "pending"
            and d.key == email_key(r.email) and prior.email == r.email
            and prior.name == r.name and prior.lang == r.lang
            and prior.list_name == r.list_name and prior.subject == subject_id
            and prior.fields == stored_fields(r.fields, r.fields_text))


class Planner:
    """Iterate to get the decisions one by one; ``plan`` holds the totals so far."""

    def __init__(self, project: Project, store: PlanReader | None, options: PlanOptions, *,
                 keep: bool = False, subject: SubjectOf | None = None,
                 also_suppressed: set[str] | None = None) -> None:
        self.project = project
        self.subject = subject  # rows read on the second core get their subject id there
        self.store = store
        self.options = options
        issue = project.issue
        self.only = issue.pick_language(options.lang) if options.lang else None
        self.plan = Plan(issue.id, options, decisions=[] if keep else None)
        self.suppressed = store.suppressed_keys() if store is not None else set()
        self.suppressed |= also_suppressed or set()  # held unsubscribes, in a read-only plan
        # an issue with no row yet (its first send, or validate before it): nobody has a
        # prior to look up and no store row can have left the list (a million queries saved)
        # the issue's rows as they were (rows, highest id); those met in the lists are
        # counted, and when all were met no row can have left them (a rerun of a long list
        # read every row again, and looked each up among the addresses seen, to find none)
        self.stored, self.top = store.extent(issue.id) if store is not None else (0, 0)
        self.fresh = self.stored == 0
        self.met = 0  # distinct rows of ``stored`` that a list row matched
        # a rerun reads the issue's rows along their ids beside the list (``_in_order``):
        # the last two pages read, and the highest id a list row matched so far
        self.window: dict[str, Prior] = {}
        self.page: dict[str, Prior] = {}
        self.after = 0
        # a forgotten person's suppression is a hash: without any, no address needs hashing
        self.forgotten = any(key.startswith("sha256:") for key in self.suppressed)
        self.languages: dict[str | None, str] = {}  # a row's lang -> the issue's language
        # where rows are, as line * len(paths) + index in paths (0: a web sign-up)
        self.paths: list[Path] = [Path(), *project.lists.values()]
        self.index = {path: n for n, path in enumerate(self.paths) if n}
        self.shown = [display_path(path) for path in self.paths]  # once, not per duplicate
        self.seen = SeenAddresses()
        # no suppression, --lang, --limit or run-due fix: a row nobody has a prior for is sent
        self.unlimited = (not self.suppressed and self.only is None and options.limit is None
                     and not options.fixes_only)
        self.invalid: list[RowProblem] = []  # decided last: a valid row of theirs wins
        self.fixed_lines = (store.invalid_lines(issue.id)
                            if options.fixes_only and store is not None else {})

    def __iter__(self) -> Iterator[Decision]:
        with bulk_pass():  # millions of short-lived objects: util/gcquiet.py
            yield from self._decisions()

    def _decisions(self) -> Iterator[Decision]:
        try:
            rows = chain(iter_rows(self.project, subject=self.subject), self._web_rows())
            while batch := list(islice(rows, _BATCH)):
                valid = [r for r in batch if isinstance(r, Subscriber)]
                self.invalid.extend(r for r in batch if isinstance(r, RowProblem))
                keys = [email_key(r.email) for r in valid]
                self.seen.prefetch(keys)
                priors = ({} if self.fresh or self.store is None  # nobody has a prior
                          else self._in_order([self._store_key(k) for k in keys]))
                for row, key in zip(valid, keys, strict=True):
                    decision = self._valid(row, key, priors)
                    self.plan.add(decision)
                    yield decision
            yield from self._invalid_rows()
            yield from self._gone_rows()
        finally:
            self.seen.close()

    # -- rows of the lists --------------------------------------------------------------------

    def _web_rows(self) -> Iterator[Subscriber]:
        """Confirmed web sign-ups follow each list's file (as ``send`` always did)."""
        if self.store is None:
            return
        for name in self.project.lists:
            for web in self.store.confirmed_subscribers(name):
                yield Subscriber(web["email"], web["name"], web["lang"], {}, name, Path(), 0)

    def _store_key(self, key: str) -> str:
        """A forgotten person's rows are kept under the hash of their address."""
        if not self.forgotten:
            return key
        hashed = hashed_key(key)
        return hashed if hashed in self.suppressed else key

    def _language(self, lang: str | None) -> str:
        """The issue's language for a reader of ``lang`` (lists hold few distinct codes)."""
        picked = self.languages.get(lang)
        if picked is None:
            picked = self.project.issue.pick_language(lang)
            if len(self.languages) < 1_000:
                self.languages[lang] = picked
        return picked

    def _priors(self, keys: list[str]) -> dict[str, Prior]:
        if self.store is None or self.fresh:
            return {}
        return self.store.priors(self.project.issue.id, keys)

    def _in_order(self, keys: list[str]) -> dict[str, Prior]:
        """``_priors`` of a batch of list rows, found first among the issue's rows read in
        id order after the last one matched: an issue's ids follow its list, so a rerun
        meets them in that order. Keys not found there are looked up by address as before,
        and when none was found in order (rows added to the list, or it was reordered), the
        next page starts after the highest row so found. The answers are the same either
        way: a row read by id is the row of its (issue, key)."""
        if self.store is None or self.fresh or not keys:
            return {}
        page = dict(self.store.priors_after(self.project.issue.id, self.after, len(keys)))
        self.window, self.page = self.page, page
        found: dict[str, Prior] = {}
        missing = []
        for key in keys:
            prior = page.get(key) or self.window.get(key)
            if prior is None:
                missing.append(key)
            else:
                found[key] = prior
        if found:
            self.after = max(self.after, max(p.id for p in found.values()))
        if missing:
            looked_up = self._priors(missing)
            if looked_up and not found:
                self.after = max(p.id for p in looked_up.values())
            found.update(looked_up)
        return found

    def _valid(self, row: Subscriber, key: str, priors: dict[str, Prior]) -> Decision:
        lang = self.languages.get(row.lang) or self._language(row.lang)
        store_key = self._store_key(key) if self.forgotten else key
        line = row.line  # where the row is, as one number (0: a web sign-up; see _where)
        code = line * len(self.paths) + self.index.get(row.path, 0) if line else 0
        first = self.seen.first(key, code)  # remembered here when met for the first time
        if first is not None and first >= 0:
            return Decision(row.email, row.name, lang, row.list_name, K_DUPLICATE,
                            DUPLICATE_OF + self._where(first), None, store_key,
                            self._where(code), row)
        if store_key != key:
            self.seen.add(store_key, -1)
        if self.unlimited and not priors:  # nothing known of anyone: they get it
            return Decision(row.email, row.name, lang, row.list_name, K_SEND, "", "pending",
                            store_key, "", row)
        prior = priors.get(store_key)
        if prior is not None and prior.id <= self.top:
            self.met += 1
        if self.options.fixes_only and prior is None and not self._corrected(row):
            return Decision(row.email, row.name, lang, row.list_name, K_LATE, LATE_REASON,
                            None, store_key, self._where(code), row)
        kind, reason, status = self._decide(prior, store_key, lang)
        return Decision(row.email, row.name, lang, row.list_name, kind, reason, status,
                        store_key, "", row, prior)

    def _corrected(self, row: Subscriber) -> bool:
        """A new address on the line of a row recorded invalid, that reads as that address
        corrected (run-due sends a finished issue to it, never to a newcomer)."""
        bad = self.fixed_lines.get((row.list_name, row.line))
        return bad is not None and looks_corrected(bad, row.email)

    def _decide(self, prior: Prior | None, store_key: str,
                lang: str) -> tuple[str, str, str | None]:
        """(kind, reason, status) of a valid row met for the first time."""
        if prior is None:
            status, code, response = "pending", None, None
        else:
            status, code, response = prior.status, prior.smtp_code, prior.smtp_response
        if status == "sending":
            status = "unknown"  # a crash's in-flight row: the next send calls it unknown
        if status == "sent":
            return K_SENT, "already sent", "sent"
        if status == "failed":
            said = " ".join(str(p) for p in (code, response) if p)
            return K_FAILED, "failed earlier" + (f" ({said})" if said else ""), "failed"
        if store_key in self.suppressed or status == "suppressed":
            return K_SUPPRESSED, "suppressed (unsubscribed)", "suppressed"
        if status == "unknown" and not self.options.resend_unknown:
            return K_UNKNOWN, "unknown: the relay may have it (use --resend-unknown)", "unknown"
        if self.only is not None and lang != self.only:
            return K_LANG, f"other language (--lang {self.options.lang})", "pending"
        limit = self.options.limit
        if limit is not None and self.plan.to_send >= limit:
            return K_LIMIT, f"over --limit {limit}", "pending"
        return K_SEND, "", "pending"

    def _where(self, code: int) -> str:
        line, index = divmod(code, len(self.paths))
        return f"{self.shown[index]}:{line}" if line else "web sign-up"

    def _invalid_rows(self) -> Iterator[Decision]:
        """Row problems, recorded ``invalid`` unless a valid row of the same address exists
        (that one is sent) or the address already has a row no list edit changes."""
        for start in range(0, len(self.invalid), _BATCH):
            batch = self.invalid[start:start + _BATCH]
            keys = [self._problem_key(r) for r in batch]
            plain = [email_key(r.email) for r in batch]
            self.seen.prefetch(keys + plain)
            priors = self._priors(keys)
            for row, key, address in zip(batch, keys, plain, strict=True):
                status: str | None = "invalid"
                first = self.seen.get(address)
                if (first is not None and first >= 0) or self.seen.get(key) is not None:
                    status = None  # the person has a row already: a valid one, or this one
                elif key in priors:
                    prior = priors[key]
                    self.met += prior.id <= self.top
                    if prior.status not in ("pending", "invalid", "withdrawn"):
                        status = "unknown" if prior.status == "sending" else prior.status
                self.seen.add(key, -1)
                where = f"{row.problem.path}:{row.problem.line}"
                decision = Decision(row.email or key, None, None, row.list_name, K_INVALID,
                                    f"invalid row: {row.problem}", status, key, where, row)
                self.plan.add(decision)
                yield decision

    def _problem_key(self, row: RowProblem) -> str:
        where = f"{row.problem.path}:{row.problem.line}"
        return self._store_key(email_key(row.email or f"{EMPTY_ADDRESS}{where})"))

    # -- rows of the store that no list holds any more -----------------------------------------

    def _gone_rows(self) -> Iterator[Decision]:
        if self.store is None or self.fresh or self.met == self.stored:
            return
        issue = self.project.issue
        rows = self.store.issue_rows(issue.id)
        while page := list(islice(rows, _BATCH)):
            self.seen.prefetch([row[1] for row in page])
            for row in page:
                if self.seen.get(row[1]) is None:
                    yield self._gone(*row)

    def _gone(self, email: str, key: str, status: str, lang: str | None, list_name: str,
              code: int | None, response: str | None) -> Decision:
        """A store row no list holds any more: pending and invalid ones are withdrawn."""
        issue = self.project.issue
        kind, reason = K_WITHDRAWN, "no longer in the list (withdrawn)"
        if status in ("pending", "invalid", "withdrawn"):
            status = "withdrawn"
        elif status == "sent":
            kind, reason = K_SENT, "already sent (no longer in the list)"
        elif status == "failed":
            said = " ".join(str(p) for p in (code, response) if p)
            kind, reason = K_FAILED, "failed earlier" + (f" ({said})" if said else "")
        elif status == "suppressed":
            kind, reason = K_SUPPRESSED, "suppressed (unsubscribed)"
        else:
            kind, reason, status = (K_UNKNOWN, "unknown: the relay may have it (no longer "
                                    "in the list)", "unknown")
        picked = issue.pick_language(lang) if lang else None
        decision = Decision(email, None, picked, list_name, kind, reason, status, key,
                            "tracking store")
        self.plan.add(decision)
        return decision
