"""Add one reader to a list file, or take one out: ``subscribers add`` and ``remove``.

What goes into a list file is checked as ``send`` will check it (address, line breaks and
encoded words, language), so an added row is never a row problem later. The file is written
by ``project.list_edit`` (in place, format and comments kept, atomically) under a lock, so two
edits at once cannot lose one of them. Every list is a file (the web form signs people up only
to lists that have one), so a web sign-up is never added here: it confirms itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mirage_mailer.project.config import Settings
from mirage_mailer.project.list_edit import FIELD_KEY, Layout, append_rows, layout, remove_rows
from mirage_mailer.project.lists import (
    Subscriber,
    column_name,
    iter_list,
)
from mirage_mailer.project.name_parts import name_columns
from mirage_mailer.project.yamlrows import Shape
from mirage_mailer.services.roster import list_path, store_if_any
from mirage_mailer.store import email_key
from mirage_mailer.util.addresses import check_address
from mirage_mailer.util.errors import DeliveryError, InputError, Problem, display_path, shorten
from mirage_mailer.util.headersafe import header_problem
from mirage_mailer.util.langs import check_language, normalise_language
from mirage_mailer.util.locks import Lock

MAX_VALUE_CHARS = 1_000  # a name or a column value; longer is no reader's data
LOCK_WAIT = 30.0  # seconds a change waits for another to finish


@dataclass(frozen=True)
class Added:
    path: Path
    email: str
    notes: list[str] = field(default_factory=list)  # warnings: the row is added all the same


@dataclass(frozen=True)
class Removed:
    path: Path
    email: str
    lines: list[int]


def check_row(row: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """(the row cleaned, None) or (partial row, why it cannot go into a list). Keys are
    normalised column names; ``email`` is required; empty values are dropped."""
    out: dict[str, str] = {}
    for key, value in row.items():
        value = value.strip()
        if not value:
            continue
        if len(value) > MAX_VALUE_CHARS:
            return out, f"'{shorten(key)}' is longer than {MAX_VALUE_CHARS:,} characters"
        bad = header_problem(value)
        if bad:
            return out, f"'{shorten(key)}' {bad}"
        out[key] = value
    if not out.get("email"):
        return out, "no e-mail address"
    address, bad = check_address(out["email"])
    if bad:
        return out, bad
    out["email"] = address
    if "lang" in out:
        bad = check_language(out["lang"])
        if bad:
            return out, f"lang {bad}"
        out["lang"] = normalise_language(out["lang"])
    return out, None


def field_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    """``key=value`` words (``organisation=Red Cross``) -> column name -> value."""
    fields: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        name = column_name(key)
        if not sep or not FIELD_KEY.fullmatch(name):
            raise InputError(f"'{shorten(pair)}' is not a field: write column=value, e.g. "
                             "organisation=Red Cross (quote it when it has spaces)")
        if name in fields:
            raise InputError(f"field '{shorten(name)}' is given twice: give it once")
        fields[name] = value
    return fields


@contextmanager
def locked(settings: Settings, *, wait: float = LOCK_WAIT) -> Iterator[None]:
    """One change to the lists at a time: a script adding readers in parallel waits its turn
    (up to ``wait`` seconds, then exit 3 naming the holder) instead of losing a row."""
    lock = Lock(settings.state_dir / "lists.lock", "another change to a list file")
    deadline = time.monotonic() + wait
    while True:
        try:
            lock.acquire()
            break
        except DeliveryError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
    try:
        yield
    finally:
        lock.release()


def _fits(path: Path, shape: Layout, row: dict[str, str]) -> None:
    """Every value has a place in the file: one line saying which column to add if not."""
    where = display_path(path)
    for key in row:
        if shape.accepts(key):
            continue
        if key == "name" and (parts := name_columns(shape.columns)):  # Mailchimp's, Brevo's
            hint = ("this list has first and last name columns: give "
                    + " ".join(f"{part}=..." for part in parts))
        else:
            hint = f"add a '{shorten(key)}' column to the header, or leave the value out"
        raise InputError(Problem(where, 1, f"the list has no '{shorten(key)}' column", hint))


def _present(path: Path, name: str, key: str,
             shape: Shape) -> tuple[str | None, set[str]]:
    """Where ``key`` already has a row in the file (``path:line``), or None; and the fields
    of the rows read (all of them when it has none). One read of the file, whose ``shape``
    the edit then uses instead of reading it again."""
    fields: set[str] = set()
    for row in iter_list(path, name, shape=shape):
        if isinstance(row, Subscriber):
            if email_key(row.email) == key:
                return f"{display_path(path)}:{row.line}", fields
            fields.update(row.fields)
        elif email_key(row.email) == key:
            return (f"{row.problem.path}:{row.problem.line} (a row with a problem: fix it "
                    "there)", fields)
    return None, fields


def add_reader(settings: Settings, list_name: str, email: str, *, name: str | None,
               lang: str | None, fields: dict[str, str]) -> Added:
    """Append a checked row for ``email`` at the end of the list file."""
    path = list_path(settings, list_name)
    given = {"email": email}
    for key, value in (("name", name), ("lang", lang)):
        if value is not None:
            if key in fields:
                raise InputError(f"{key} is given twice (--{key} and {key}=): give it once")
            given[key] = value
    row, bad = check_row({**given, **fields})
    if bad:
        shown = shorten(email)
        raise InputError(Problem("subscribers add", None,
                                 bad if shown in bad else f"{shown}: {bad}",
                                 "nothing was written; correct the value"))
    address = row["email"]
    shape = layout(path)
    _fits(path, shape, row)
    notes: list[str] = []
    read = Shape()
    with locked(settings):
        first, known = _present(path, list_name, email_key(address), read)
        if shape.kind == "yaml":  # no header to refuse a typo: say which key is new
            notes.extend(f"no other row has '{shorten(key)}': check the spelling (the row "
                         "is added with it)" for key in row
                         if key not in known | {"email", "name", "lang"})
        if first:
            raise InputError(Problem(first, None, f"{address} is already in the list",
                                     "nothing was written"))
        with store_if_any(settings) as store:
            if store is not None:
                for web in store.web_subscribers(list_name):
                    if email_key(web["email"]) == email_key(address) \
                            and web["status"] == "confirmed":
                        raise InputError(Problem(display_path(path), None, f"{address} "
                                                 "already reads this list (a confirmed web "
                                                 "sign-up)", "nothing was written"))
                if store.is_suppressed(address):
                    notes.append(f"{address} is suppressed (unsubscribed or erased): the row "
                                 "is added, but nothing is sent to them unless they sign up "
                                 "again through the web form")
        append_rows(path, [row], shape=read)
    return Added(path, address, notes)


def remove_reader(settings: Settings, list_name: str, email: str) -> Removed:
    """Delete every row of ``email`` from the list file (any case; an invalid row too)."""
    key = email_key(email)
    if not key or header_problem(key):
        raise InputError(f"subscribers remove: '{shorten(email)}' is not an address")
    path = list_path(settings, list_name)
    with locked(settings):
        lines = remove_rows(path, key)
    if lines:
        return Removed(path, key, lines)
    with store_if_any(settings) as store:
        web = [w for w in store.web_subscribers(list_name)
               if email_key(w["email"]) == key] if store is not None else []
    if web:
        raise InputError(Problem(display_path(path), None, f"{shorten(key)} is not in the "
                                 "file: they signed up on the web",
                                 f"'mirage-mailer unsubscribe {shorten(key)}' stops all mail "
                                 "to them"))
    raise InputError(Problem(display_path(path), None, f"{shorten(key)} is not in the list",
                             "nothing was changed; check the address"))
