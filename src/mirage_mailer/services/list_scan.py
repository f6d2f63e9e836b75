"""``validate``'s pass over the lists, a batch of rows at a time instead of a row.

``scan_plan`` decides each row as ``send`` would (a ``Decision`` each, the store's rows
looked up) and reads the figures off the decisions. When nothing in the store can change a
decision (no store, or one with no row of this issue, no suppression and no web sign-up
of its lists), every good row met for the first time gets the issue and every later row of
its address is a duplicate: the figures are counts, and only the duplicates and the row
problems need a word each. So this pass takes the lists as ``list_columns.Columns`` (a
long CSV list read by a child process, which sends a few objects per 10,000 rows),
finds the duplicates with ``SeenAddresses.firsts`` over a batch's addresses, and counts the
rest with ``Counter`` and ``compress``. It gives the very ``Plan`` and ``ListScan`` that
``scan_plan`` gives (tests compare them); in every other case ``scan_plan`` runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from itertools import repeat
from operator import add, mul
from pathlib import Path
from typing import TypeVar

from mirage_mailer.project import list_worker
from mirage_mailer.project.duplicates import Duplicate, Duplicates
from mirage_mailer.project.list_columns import Columns, columns_of, iter_columns
from mirage_mailer.project.lists import RowProblem, file_size, iter_list
from mirage_mailer.services.loader import Project
from mirage_mailer.services.planning import (
    K_DUPLICATE,
    K_INVALID,
    ListScan,
    Plan,
    PlanOptions,
    scan_plan,
)
from mirage_mailer.store import PlanReader, email_key
from mirage_mailer.util.addresses import EMPTY_ADDRESS
from mirage_mailer.util.errors import Problem, display_path
from mirage_mailer.util.gcquiet import bulk_pass

_SHAPES = 1 << 20  # a tag is language * _SHAPES + shape


def scan_lists(project: Project, store: PlanReader | None,
               options: PlanOptions) -> tuple[Plan, ListScan]:
    """``scan_plan``'s answer; by counting when no decision depends on the store."""
    if not _counts_suffice(project, store, options):
        return scan_plan(project, store, options)
    with bulk_pass():  # millions of short-lived strings: util/gcquiet.py
        return _Counting(project, options).run()


def _counts_suffice(project: Project, store: PlanReader | None, options: PlanOptions) -> bool:
    if options != PlanOptions(resend_unknown=options.resend_unknown):
        return False  # --lang, --limit or run-due's fixes hold rows back
    if store is None:
        return True
    return (store.extent(project.issue.id)[0] == 0 and not store.suppressed_keys()
            and not any(next(store.confirmed_subscribers(name), None) is not None
                        for name in project.lists))


def list_columns(path: Path, list_name: str, *,
                 subject: Callable[[str], str] | None = None) -> Iterator[Columns]:
    """One list's rows as ``Columns``: a long CSV list by a child process (``list_worker``),
    any other in this process. ``subject``: rows bound for the store (``iter_columns``)."""
    if path.suffix.lower() == ".csv":
        read = partial(iter_columns, subject=subject)
        if file_size(path) >= list_worker.PARALLEL_BYTES and list_worker.can_fork():
            yield from list_worker.columns_in_child(path, list_name, read)
        else:
            yield from read(path, list_name)
    else:
        yield from columns_of(iter_list(path, list_name), subject=subject)


_T = TypeVar("_T")


def _number(table: list[_T], ids: dict[_T, int], item: _T) -> int:
    """``item``'s place in ``table``, where it is put the first time."""
    found = ids.get(item)
    if found is None:
        found = ids[item] = len(table)
        table.append(item)
    return found


class _Counting:
    """The plan of rows nobody has decided before: first rows sent, later ones duplicates."""

    def __init__(self, project: Project, options: PlanOptions) -> None:
        self.project = project
        self.plan = Plan(project.issue.id, options)
        self.scan = ListScan()
        self.invalid: list[RowProblem] = []
        # where rows are, as line * len(paths) + index in paths (as Planner numbers them)
        self.paths: list[Path] = [Path(), *project.lists.values()]
        self.shown = [display_path(path) for path in self.paths]
        # a row's tag: its message's language and the fields it filled, numbered here
        self.languages: list[str] = []
        self.shapes: list[tuple[str, ...]] = []
        self.language_ids: dict[str, int] = {}
        self.shape_ids: dict[tuple[str, ...], int] = {}
        self.tags: Counter[int] = Counter()

    def run(self) -> tuple[Plan, ListScan]:
        duplicates = Duplicates()
        try:
            for index, (name, path) in enumerate(self.project.lists.items(), 1):
                for columns in list_columns(path, name):
                    if len(columns):
                        self._good_rows(columns, index, duplicates)
                    self.invalid.extend(columns.problems)
            keys = [(email_key(r.email), self._problem_key(r)) for r in self.invalid]
            found, met = duplicates.finish(key for pair in keys for key in pair)
        finally:
            duplicates.close()
        self._count(found)
        self._invalid_rows(keys, met)
        return self.plan, self.scan

    def _good_rows(self, columns: Columns, index: int, duplicates: Duplicates) -> None:
        size = len(self.paths)
        codes = map(add, map(mul, columns.lines, repeat(size)), repeat(index))
        languages = [_number(self.languages, self.language_ids, self._pick(lang))
                     for lang in columns.languages]
        shapes = [_number(self.shapes, self.shape_ids, shape) for shape in columns.shapes]
        tags = list(map(add, map(mul, map(languages.__getitem__, columns.langs),
                                 repeat(_SHAPES)), map(shapes.__getitem__, columns.shape_of)))
        self.tags.update(tags)
        duplicates.add(columns.emails.split("\n"), codes, tags)

    def _pick(self, lang: str | None) -> str:
        return self.project.issue.pick_language(lang) or ""

    def _count(self, found: list[Duplicate]) -> None:
        """The figures: every good row, less the duplicates; warnings for those."""
        plan, scan = self.plan, self.scan
        self.tags.subtract(d.tag for d in found)
        for tag, count in sorted(self.tags.items()):
            if count > 0:
                language, shape = divmod(tag, _SHAPES)
                plan.per_language[self.languages[language]] += count
                scan.languages[self.languages[language]] += count
                scan.fields.update(self.shapes[shape])
                plan.to_send += count
        plan.counts["pending"] += plan.to_send
        scan.recipients = plan.to_send
        if found:
            plan.skipped[K_DUPLICATE] += len(found)
        for d in found:
            line, index = divmod(d.code, len(self.paths))
            scan.duplicates.append(Problem(
                self.shown[index], line,
                f"duplicate address {d.email} (first at {self._where(d.first)})",
                "only the first is sent to; delete this row", warning=True))

    def _where(self, code: int) -> str:
        line, index = divmod(code, len(self.paths))
        return f"{self.shown[index]}:{line}"

    def _problem_key(self, row: RowProblem) -> str:
        where = f"{row.problem.path}:{row.problem.line}"
        return email_key(row.email or f"{EMPTY_ADDRESS}{where})")

    def _invalid_rows(self, keys: list[tuple[str, str]], met: set[str]) -> None:
        """As ``Planner._invalid_rows`` with no store row: ``invalid`` unless the address
        has a good row, or an earlier bad row."""
        plan = self.plan
        earlier: set[str] = set()
        for row, (address, key) in zip(self.invalid, keys, strict=True):
            shadowed = address in met or key in met or key in earlier
            earlier.add(key)
            plan.skipped[K_INVALID] += 1
            if shadowed:
                plan.shadowed += 1
            else:
                plan.counts["invalid"] += 1
                plan.problems.append(row.problem)
            self.scan.row_problems.append(row.problem)
