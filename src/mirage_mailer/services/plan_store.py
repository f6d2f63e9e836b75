"""An issue's first plan into the store from list columns, without an object a row.

``send`` plans through ``Planner``: a ``Subscriber``, a ``Decision`` and a
``NewRecipient`` a list row, ``SeenAddresses`` for the duplicates, then a stored tuple a
row (about two thirds of the CPU of planning a million rows into the store, in
``docs/design.md``'s ninth round). When nothing the store holds can change a decision
(the issue has no row yet, no suppression, no confirmed web sign-up of its lists) and
nothing holds rows back but ``--limit``, every good row met first is sent and every
later row of its address is a duplicate, as ``list_scan`` found for ``validate``. Then
the lists are read as ``Columns`` (a long CSV list by the reader child, which also
writes each row's name, fields text and subject id) and written as plain tuples by
``executemany`` into the store's staged table (``RecipientsMixin.first_plan``), whose
unique index on the key keeps the first row of each address and whose ids follow the
list without a gap. Row problems come last, as the planner decides them, and the plan's
figures are read off the staged rows. The store's rows, events, figures and output are
those of ``Planner`` and ``reconcile`` (tests compare whole stores); everything else
takes that way, as do lists under ``FAST_BYTES``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from itertools import chain, compress, islice, repeat
from operator import getitem

from mirage_mailer.project.list_columns import Columns
from mirage_mailer.project.lists import RowProblem, file_size
from mirage_mailer.project.seen import SeenAddresses
from mirage_mailer.services.list_scan import list_columns
from mirage_mailer.services.loader import Project
from mirage_mailer.services.planning import (
    K_DUPLICATE,
    K_INVALID,
    K_LIMIT,
    Plan,
    PlanOptions,
)
from mirage_mailer.store import email_key
from mirage_mailer.store.ports import RecorderStore
from mirage_mailer.store.recipients import RecipientsMixin, StagedPlan
from mirage_mailer.util.addresses import EMPTY_ADDRESS
from mirage_mailer.util.gcquiet import bulk_pass

_BATCH = 500  # row problems looked up at once, as the planner does

# lists of this many bytes or more take this way (a test lowers it): below, the planner's
# way is as quick, and its chunked transactions are what short lists always had
FAST_BYTES = 1 << 20


def first_plan(project: Project, store: RecorderStore, options: PlanOptions,
               subject: Callable[[str], str]) -> tuple[Plan, set[str]] | None:
    """The plan written into the store, and ``--limit``'s keys (the plan's first N);
    None when this way does not apply and ``Planner`` must decide row by row."""
    if not _applies(project, store, options):
        return None
    assert isinstance(store, RecipientsMixin)
    with bulk_pass(), store.first_plan(project.issue.id) as staged:  # util/gcquiet.py
        return _Columns(project, options, staged, subject).run()


def _applies(project: Project, store: RecorderStore, options: PlanOptions) -> bool:
    if not isinstance(store, RecipientsMixin) or store.is_postgres:
        return False
    if options != PlanOptions(limit=options.limit, resend_unknown=options.resend_unknown):
        return False  # --lang, or run-due's fixes, hold rows back
    if sum(file_size(path) for path in project.lists.values()) < FAST_BYTES:
        return False
    return (not store.has_rows(project.issue.id) and not store.suppressed_keys()
            and not any(next(store.confirmed_subscribers(name), None) is not None
                        for name in project.lists))


class _Columns:
    """The plan of rows nobody has decided before: first rows sent, later ones duplicates."""

    def __init__(self, project: Project, options: PlanOptions, staged: StagedPlan,
                 subject: Callable[[str], str]) -> None:
        self.project = project
        self.options = options
        self.staged = staged
        self.subject = subject
        self.plan = Plan(project.issue.id, options)
        self.seen = SeenAddresses()  # the planner's own memory of who was met, exact
        self.met = 0  # good rows met, the numbers SeenAddresses remembers them by
        self.languages: Counter[str | None] = Counter()  # of the rows sent, by lang
        self.wanted: list[str] = []  # --limit: the keys of the first N rows sent

    def run(self) -> tuple[Plan, set[str]]:
        invalid: list[RowProblem] = []
        try:
            for name, path in self.project.lists.items():
                for columns in list_columns(path, name, subject=self.subject):
                    if len(columns):
                        self._good_rows(columns, name)
                    invalid.extend(columns.problems)
            self._invalid_rows(invalid)
        finally:
            self.seen.close()
        return self._figures()

    def _good_rows(self, columns: Columns, name: str) -> None:
        """A batch's rows met first, staged in their stored form in list order."""
        emails = columns.emails.split("\n")
        keys = list(map(str.lower, map(str.strip, emails)))  # email_key, a batch at once
        self.seen.prefetch(keys)
        fresh = self.seen.news(keys, self.met + 1)
        self.met += len(keys)
        langs = list(compress(columns.langs, fresh))
        count = len(langs)
        self.languages.update(compress(map(getitem, repeat(columns.languages), langs),
                                       self._sent(count)))
        limit = self.options.limit
        if limit is not None and len(self.wanted) < limit:
            self.wanted.extend(islice(compress(keys, fresh), limit - len(self.wanted)))
        staged = self.staged
        staged.put(list(zip(  # the issue, list, status and time are in the statement
            staged.ids(count), compress(emails, fresh), compress(keys, fresh),
            compress(columns.names, fresh), map(getitem, repeat(columns.languages), langs),
            compress(columns.texts, fresh), compress(columns.subjects, fresh), strict=True)),
            staged.pending_one(name))
        self.plan.counts["pending"] += count
        if count < len(keys):
            self.plan.skipped[K_DUPLICATE] += len(keys) - count

    def _sent(self, count: int) -> Iterator[bool]:
        """Which of the next ``count`` rows met first are sent now (``--limit``: the
        plan's first N), counted into the plan."""
        plan, limit = self.plan, self.options.limit
        sent = count if limit is None else max(0, min(count, limit - plan.to_send))
        plan.to_send += sent
        if sent < count:
            plan.skipped[K_LIMIT] += count - sent
        return chain(repeat(True, sent), repeat(False, count - sent))

    def _invalid_rows(self, invalid: list[RowProblem]) -> None:
        """As ``Planner._invalid_rows`` with no store row: ``invalid`` unless the address
        has a row already (a good one, or an earlier bad one)."""
        plan, seen = self.plan, self.seen
        issue, now = self.project.issue.id, self.staged.now
        for start in range(0, len(invalid), _BATCH):
            batch = invalid[start:start + _BATCH]
            keys = [_problem_key(r) for r in batch]
            plain = [email_key(r.email) for r in batch]
            seen.prefetch(keys + plain)
            rows = []
            for row, key, address in zip(batch, keys, plain, strict=True):
                plan.skipped[K_INVALID] += 1
                first = seen.get(address)
                if (first is not None and first >= 0) or seen.get(key) is not None:
                    plan.shadowed += 1  # the person has a row already
                else:
                    plan.counts["invalid"] += 1
                    plan.problems.append(row.problem)
                    rows.append((row.email or key, row.list_name, str(row.problem)))
                seen.add(key, -1)
            self.staged.put([
                (rid, issue, email, email_key(email), None, None, list_name, "{}", "invalid",
                 detail, now, None)
                for rid, (email, list_name, detail) in zip(self.staged.ids(len(rows)), rows,
                                                            strict=True)])

    def _figures(self) -> tuple[Plan, set[str]]:
        pick = self.project.issue.pick_language
        for lang, count in self.languages.items():
            self.plan.per_language[pick(lang) or ""] += count
        return self.plan, set(self.wanted)


def _problem_key(row: RowProblem) -> str:
    """A row problem's key, as ``Planner._problem_key`` makes it (no one is forgotten)."""
    where = f"{row.problem.path}:{row.problem.line}"
    return email_key(row.email or f"{EMPTY_ADDRESS}{where})")
