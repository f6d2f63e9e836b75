"""Everything held about one person (GDPR articles 15 and 17): ``export`` and ``forget``.

The tracking store is not the only place that holds a person: the project's list files do
too, so the export shows their rows and the erasure names the rows left to delete (list files
are the officer's own documents, often under version control: never rewritten here).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mirage_mailer.project.config import Settings
from mirage_mailer.project.lists import LIST_SUFFIXES, Subscriber, iter_list
from mirage_mailer.services.reporting import existing
from mirage_mailer.store import email_key, open_store
from mirage_mailer.store.guard import RECORDS, check_kept
from mirage_mailer.util.addresses import check_address
from mirage_mailer.util.database import Database
from mirage_mailer.util.errors import InputError, Problem, display_path


def checked_address(command: str, email: str) -> str:
    """The address as typed, normalised; a mistyped one is a one-line ``InputError``."""
    normalised, bad = check_address(email.strip())
    if bad:
        raise InputError(Problem(command, None, bad, "give the complete address"))
    return normalised


def checked_key(command: str, email: str) -> str:
    """``checked_address`` folded as the store compares addresses (without case)."""
    return email_key(checked_address(command, email))


@dataclass(frozen=True)
class ListRow:
    """A list-file row that holds the address (in its email or any other column)."""

    file: str
    line: int
    list: str
    values: dict[str, str]
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"file": self.file, "line": self.line, "list": self.list,
                                "values": self.values}
        if self.problem:
            data["problem"] = self.problem
        return data


def list_rows(settings: Settings, address: str) -> Iterator[ListRow]:
    """Rows of every list file of the project with the address, compared without case."""
    key = email_key(address)
    if not settings.lists_dir.is_dir():
        return
    for path in sorted(settings.lists_dir.iterdir()):
        if path.suffix.lower() not in LIST_SUFFIXES or not path.is_file():
            continue
        for row in iter_list(path, path.stem):
            if isinstance(row, Subscriber):
                values = {"email": row.email, **({"name": row.name} if row.name else {}),
                          **({"lang": row.lang} if row.lang else {}), **row.fields}
                if any(email_key(v) == key for v in values.values()):
                    yield ListRow(display_path(row.path), row.line, path.stem, values)
            elif email_key(row.email) == key:
                yield ListRow(row.problem.path, row.problem.line or 0, path.stem,
                              {"email": row.email}, row.problem.message)


def export_person(settings: Settings, address: str) -> dict[str, Any]:
    """Art. 15: the store's data about ``address`` plus its list rows (never creates a store)."""
    rows = [row.as_json() for row in list_rows(settings, address)]
    with existing(settings) as store:
        data = store.export(address) if store is not None else {
            "email": email_key(address), "suppressed": None, "subscriptions": [],
            "deliveries": [], "events": []}
    return {**data, "list_rows": rows}


@dataclass
class Forgotten:
    """What ``forget`` did, and what is left for the officer to do by hand."""

    address: str
    done: dict[str, int]  # deliveries, events, subscriptions, residue
    rows: list[ListRow] = field(default_factory=list)  # list-file rows still holding it
    unsearched: list[Problem] = field(default_factory=list)  # list files that were unreadable
    database: Database | None = None


def forget_person(settings: Settings, address: str) -> Forgotten:
    """Art. 17: erase ``address`` from the store except a hashed suppression; a broken list
    file must not block the erasure (it is reported as not searched)."""
    address = email_key(address)  # addresses are compared without case
    result = Forgotten(address, {}, database=settings.tracking.database)
    try:
        result.rows = list(list_rows(settings, address))
    except InputError as exc:
        result.unsearched = list(exc.problems)
    # a lost store: the erasure would go into a new one, and the backup put back brings the
    # person's data back without anyone noticing
    check_kept(settings.tracking.database, settings.state_dir, RECORDS)
    with open_store(settings.tracking.database, state_dir=settings.state_dir) as store:
        result.done = store.forget(address)
    return result
