"""``subscribers import``: readers from a CSV, a Mailchimp or a listmonk export, into a list.

The formats, as those tools write them (checked against their exports and source):

* Mailchimp (Audience > Export): ``Email Address``, ``First Name``, ``Last Name``, then
  ``Address``, ``Phone Number``, ``MEMBER_RATING``, ``OPTIN_TIME``, ``OPTIN_IP``,
  ``CONFIRM_TIME``, ... ``LEID``, ``EUID``, ``NOTES``, ``TAGS``; a language column when the
  audience has one. The unsubscribed and cleaned exports add ``UNSUB_TIME`` or
  ``CLEAN_TIME``: such readers are skipped, never re-subscribed by an import.
* listmonk (Subscribers > Export): ``uuid, email, name, attributes, status, created_at,
  updated_at``; ``attributes`` is a JSON object (its ``lang`` or ``language`` is used), and
  ``blocklisted`` readers are skipped.
* Brevo (Sendinblue; Contacts > Export): ``EMAIL``, ``FIRSTNAME``, ``LASTNAME`` (``PRENOM``,
  ``NOM`` in a French account), then its own attributes: the name parts ``name_parts`` knows.
* Any CSV with an ``email`` column (``E-mail``, ``Email Address`` too), ``name`` or first and
  last name, and ``lang`` or ``language``; UTF-8 with or without BOM; ``,`` ``;`` or tab.

Only what a newsletter needs is copied: the address, the name (into ``name``, or into first
and last name columns when the list has those; a list with only one of them gets that part,
and a note says which was left out), the language, and the values of columns the CSV list
already has. The rest (IP addresses, locations, ratings) is left behind on purpose
(GDPR art. 5(1)(c), data minimisation), and a note says which columns were.

Rows are checked as ``send`` checks them; every skipped row is reported as ``FILE:LINE:
reason`` as it is met. The file is streamed, lines are bounded, and the addresses seen are
kept as planning keeps them (``SeenAddresses``), so a file of any length is read in bounded
memory; a CSV list is written as the rows come. A dry run takes the same path to the end,
the list edit's own checks included, and writes the result to the null device.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import BinaryIO

from mirage_mailer.project.config import Settings
from mirage_mailer.project.list_edit import Layout, append_rows, layout
from mirage_mailer.project.lists import (
    MAX_HEADER_CHARS,
    MAX_LINE_CHARS,
    RowProblem,
    Subscriber,
    column_name,
    iter_list,
)
from mirage_mailer.project.name_parts import FIRST_NAMES, LAST_NAMES, name_columns
from mirage_mailer.project.seen import SeenAddresses
from mirage_mailer.project.yamlrows import Shape
from mirage_mailer.services.roster import list_path, store_if_any
from mirage_mailer.services.roster_edit import check_row, locked
from mirage_mailer.store import email_key, hashed_key
from mirage_mailer.util.csvcells import unquote
from mirage_mailer.util.csvrecords import extra_cells, numbered, row_width
from mirage_mailer.util.errors import InputError, Problem, display_path, shorten

_MAILCHIMP = {"member_rating", "optin_time", "leid", "euid", "confirm_time"}
_BATCH = 500


@dataclass(frozen=True)
class Skipped:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: skipped: {self.reason}"


@dataclass
class ImportResult:
    path: Path  # the list file
    source: str  # "Mailchimp", "listmonk" or "CSV"
    added: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    line: int
    values: dict[str, str]  # normalised column -> cell
    attributes: dict[str, str]  # listmonk's attributes, flattened to text
    problem: str | None = None  # why its cells cannot be taken for the columns they sit in


def _unusable(path: Path, line: int | None, message: str, hint: str = "") -> InputError:
    return InputError(Problem(display_path(path), line, message, hint))


def _open(path: Path) -> BinaryIO:
    """Read as bytes and decoded line by line, so a bad byte is named with its line."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise _unusable(path, None, "file not found", "check the path") from None
    except OSError as exc:
        raise _unusable(path, None, f"cannot read file: {exc.strerror}") from None


def _decoded(line: bytes, path: Path, number: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise _unusable(path, number, "not valid UTF-8", "export it again as UTF-8 (in a "
                        "spreadsheet: 'CSV UTF-8'); nothing was imported") from None


def _header(handle: BinaryIO, path: Path) -> tuple[list[str], list[str], str]:
    """(normalised column names, the names as written, the delimiter)."""
    raw = handle.readline(MAX_HEADER_CHARS)
    first = _decoded(raw.removeprefix(b"\xef\xbb\xbf"), path, 1)
    if len(raw) >= MAX_HEADER_CHARS and not first.endswith(("\n", "\r")):
        raise _unusable(path, 1, f"header line longer than {MAX_HEADER_CHARS:,} characters",
                        "is this a CSV export?")
    if not first.strip():
        raise _unusable(path, 1, "file is empty", "export the audience again")
    delimiter = max((",", ";", "\t"), key=first.count)
    written = [c.strip() for c in next(csv.reader([first], delimiter=delimiter), [])]
    columns = [column_name(c) for c in written]
    if "email" not in columns:
        raise _unusable(path, 1, "no e-mail column", "name it 'email' or 'Email Address'")
    return columns, written, delimiter


def _rows(handle: BinaryIO, path: Path, columns: list[str],
          delimiter: str) -> Iterator[_Row]:
    number = 1

    def lines() -> Iterator[str]:
        nonlocal number
        while line := handle.readline(MAX_LINE_CHARS):
            number += 1
            if len(line) >= MAX_LINE_CHARS and not line.endswith(b"\n"):
                raise _unusable(path, number, f"line longer than {MAX_LINE_CHARS:,} "
                                "bytes", "is this a CSV export? nothing was imported")
            yield _decoded(line, path, number)

    reader = csv.reader(lines(), delimiter=delimiter, strict=True)  # an open quote: an error
    width = row_width(columns)
    for start, cells in numbered(reader, lambda: number + 1, lambda line, exc: _unusable(
            path, line, f"CSV error: {exc}", "check the quotes on this line; nothing was "
            "imported")):
        if not any(cell.strip() for cell in cells):
            continue
        values = {c: unquote(v) for c, v in zip(columns, cells, strict=False) if c}
        extra = extra_cells(cells, columns, width, delimiter) if len(cells) > width else None
        yield _Row(start, values, _attributes(values.get("attributes", "")),
                   None if extra is None else f"{extra[0]} ({extra[1]})")


def _attributes(text: str) -> dict[str, str]:
    """listmonk's ``attributes`` JSON, its plain values as text; anything else: none."""
    if not text.strip().startswith("{"):
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {column_name(str(k)): str(v) for k, v in data.items()
            if isinstance(v, str | int | float) and not isinstance(v, bool)}


def _source(columns: list[str]) -> str:
    if _MAILCHIMP & set(columns):
        return "Mailchimp"
    if {"uuid", "attributes", "status"} <= set(columns):
        return "listmonk"
    return "CSV"


def _gone(row: _Row, source: str) -> str | None:
    """Why the tool this came from says not to mail them, if it does."""
    v = row.values
    where = "the export" if source == "CSV" else source
    if v.get("unsub_time", "").strip():
        return f"unsubscribed in {where} (UNSUB_TIME {shorten(v['unsub_time'], 30)})"
    if v.get("clean_time", "").strip():
        return f"cleaned in {where}: the address bounced (CLEAN_TIME)"
    if source == "listmonk" and v.get("status", "").strip().lower() == "blocklisted":
        return "blocklisted in listmonk"
    return None


class _Mapper:
    """One import row -> the row the list file gets, in the list's own columns."""

    def __init__(self, shape: Layout, columns: list[str], written: list[str],
                 where: str) -> None:
        self.shape = shape
        self.where = where
        csv_list = shape.kind == "csv"
        # The export's first- and last-name columns (Mailchimp's First Name, Brevo's
        # FIRSTNAME or PRENOM: ``name_parts``), and the list's own ones, which keep their
        # names (a list made from a Brevo export has FIRSTNAME: it is filled, not renamed).
        src = name_columns(tuple(columns))
        self.src = {kind: next((c for c in src if c in names), "")
                    for kind, names in (("first", FIRST_NAMES), ("last", LAST_NAMES))}
        self.to = {kind: next((c for c in names if c in shape.columns), f"{kind}_name")
                   for kind, names in (("first", FIRST_NAMES), ("last", LAST_NAMES))}
        given = {kind for kind, c in self.src.items() if c}
        listed = {kind for kind, c in self.to.items() if c in shape.columns}
        kept = {"email", "name", "lang", *src}
        self.split = csv_list and "name" not in shape.columns and bool(listed)
        self.extra = [c for c in columns if csv_list and c in shape.columns and c not in kept]
        has_name = "name" in columns or bool(given)
        self.notes: list[str] = []
        if has_name and csv_list and "name" not in shape.columns and not listed:
            self.notes.append(f"names not imported: {where} has no name column (add a "
                              "'name' column to keep them)")
        if self.split:  # a list with one of First Name and Last Name: that one is filled
            for part, kept_part in (("last", "first"), ("first", "last")):
                if part in given and part not in listed:
                    self.notes.append(
                        f"{part} names not imported: {where} has no {part}-name column, so "
                        f"the greeting and the To: line say the {kept_part} name (add a "
                        f"'{part.title()} Name' column to keep them)")
        # First and last names beside the whole one: the greeting says the first name
        self.parts = tuple(kind for kind in ("first", "last") if kind in given and (
            not csv_list or kind in listed))
        if csv_list and "first" in given and "name" in shape.columns and "first" not in listed:
            self.notes.append(f"first names not kept: {where} has only a 'name' column, so "
                              "the greeting says the whole name (add 'First Name' and "
                              "'Last Name' columns to greet by the first name)")
        self.lang_place = not csv_list or "lang" in shape.columns
        left = [w for c, w in zip(columns, written, strict=True)
                if c and c not in kept | set(self.extra) | {"attributes"}]
        if left:
            self.notes.append("columns not imported (not needed to send a newsletter): "
                              + ", ".join(shorten(c, 30) for c in left[:20])
                              + (" ..." if len(left) > 20 else ""))

    def row(self, row: _Row) -> dict[str, str]:
        v, attrs = row.values, row.attributes
        first = v.get(self.src["first"], "").strip() if self.src["first"] else ""
        last = v.get(self.src["last"], "").strip() if self.src["last"] else ""
        out = {"email": v.get("email", "")}
        if self.split:
            parts = {self.to["first"]: first, self.to["last"]: last}
            if not (first or last) and v.get("name"):  # one name: whole, never split by guess
                whole = self.to["first" if self.to["first"] in self.shape.columns else "last"]
                parts[whole] = v["name"]
            out.update((c, part) for c, part in parts.items() if c in self.shape.columns)
        elif self.shape.kind == "yaml" or "name" in self.shape.columns:
            out["name"] = v.get("name", "").strip() or " ".join(p for p in (first, last) if p)
            for kind, part in (("first", first), ("last", last)):
                if kind in self.parts and (part or self.shape.kind == "csv"):
                    out[self.to[kind]] = part
        lang = v.get("lang", "") or attrs.get("lang", "") or attrs.get("language", "")
        if lang.strip():
            if self.lang_place:
                out["lang"] = lang
            elif "languages not imported" not in " ".join(self.notes):
                self.notes.append(f"languages not imported: {self.where} has no lang column "
                                  "(add one to keep them)")
        for column in self.extra:
            out[column] = v.get(column, "") or attrs.get(column, "")
        return out


class _Importer:
    def __init__(self, settings: Settings, path: Path, list_name: str,
                 report: Callable[[Skipped], None]) -> None:
        self.settings = settings
        self.file = path
        self.shown = display_path(path)
        self.list_name = list_name
        self.list_path = list_path(settings, list_name)
        self.report = report
        self.seen = SeenAddresses()
        self.suppressed: set[str] = set()
        self.web: set[str] = set()
        self.result = ImportResult(self.list_path, "CSV")
        self.shape = Shape()  # a YAML list's, read once here for the edit too

    def load_known(self) -> None:
        """Addresses the list (file and confirmed web sign-ups) has, and unsubscribes."""
        rows = iter_list(self.list_path, self.list_name, shape=self.shape)
        while batch := list(islice(rows, _BATCH)):
            keys = [email_key(r.email) for r in batch if isinstance(r, Subscriber | RowProblem)
                    and r.email]
            self.seen.prefetch(keys)
            for key in keys:
                self.seen.add(key, 0)
        with store_if_any(self.settings) as store:
            if store is not None:
                self.suppressed = store.suppressed_keys()
                self.web = {email_key(w["email"]) for w in store.web_subscribers(self.list_name)
                            if w["status"] == "confirmed"}

    def skip(self, line: int, reason: str) -> None:
        self.result.skipped += 1
        self.report(Skipped(self.shown, line, reason))

    def rows(self, handle: BinaryIO) -> Iterator[dict[str, str]]:
        columns, written, delimiter = _header(handle, self.file)
        source = self.result.source = _source(columns)
        mapper = _Mapper(layout(self.list_path), columns, written,
                         display_path(self.list_path))
        parsed = _rows(handle, self.file, columns, delimiter)
        while batch := list(islice(parsed, _BATCH)):
            self.seen.prefetch(email_key(r.values.get("email", "")) for r in batch)
            for row in batch:
                out = self.decide(row, source, mapper)
                if out is not None:
                    self.result.added += 1
                    yield out
        self.result.notes = mapper.notes

    def decide(self, row: _Row, source: str, mapper: _Mapper) -> dict[str, str] | None:
        if row.problem:  # its values are in the wrong columns: none of them can be trusted
            self.skip(row.line, row.problem)
            return None
        gone = _gone(row, source)
        if gone:
            self.skip(row.line, gone)
            return None
        clean, bad = check_row(mapper.row(row))
        if bad:
            self.skip(row.line, bad)
            return None
        key = email_key(clean["email"])
        first = self.seen.get(key)
        if first is not None:
            self.skip(row.line, f"{clean['email']} is already in "
                      f"{display_path(self.list_path)}" if first == 0
                      else f"{clean['email']} is a duplicate of line {first}")
            return None
        self.seen.add(key, row.line)
        if key in self.suppressed or hashed_key(key) in self.suppressed:
            self.skip(row.line, f"{clean['email']} unsubscribed here (suppressed): never "
                      "added back by an import")
        elif key in self.web:
            self.skip(row.line, f"{clean['email']} already reads this list (a confirmed web "
                      "sign-up)")
        else:
            return clean
        return None


def import_file(settings: Settings, path: Path, list_name: str, *, dry_run: bool,
                report: Callable[[Skipped], None]) -> ImportResult:
    """Add the new readers of ``path`` at the end of the list; ``report`` hears of every
    skipped row as it is met. A fatal problem (not UTF-8, a broken quote, an endless line)
    raises before the list is replaced: nothing is written."""
    importer = _Importer(settings, path, list_name, report)
    with _open(path) as handle, locked(settings):
        try:
            importer.load_known()
            rows = importer.rows(handle)
            first = next(rows, None)
            if first is not None:  # the dry run writes to nowhere, and that is all
                append_rows(importer.list_path, chain([first], rows), dry_run=dry_run,
                            shape=importer.shape)
        finally:
            importer.seen.close()
    return importer.result
