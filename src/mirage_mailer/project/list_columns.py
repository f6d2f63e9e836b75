"""A CSV list read as columns: what ``validate`` needs of each row, without an object a row.

``validate`` reports row problems, duplicate addresses and the figures of the plan; of a
good row it needs only the address, the line, the language and which columns it filled.
Building a ``Subscriber`` for each of a million rows, and pickling it through the reader
child's pipe, was most of what validate cost (``docs/design.md``, the eighth round). So a
list is read here into ``Columns``: every good row's normalised address in one string
(joined by ``\\n``, which no valid address holds), and its line, language and shape in
arrays; row problems travel as the ``RowProblem`` they are (they are few).

Most lines of a list look alike: no quote, no line break in a cell, a plain address, a
known language. One regular expression over a whole block of lines (``re.findall``, in C)
splits such lines into the parts needed; each is settled with a dict look-up or two. Every
other line is read as ``lists._iter_csv`` reads it (``csv`` on that one line, then
``lists.record``), which is exact because a line without a quote is a record of its own.
Anything the block pass cannot vouch for (a quote anywhere in the block, a lone CR, bytes
that are not UTF-8, a very long line) hands over to ``lists._iter_csv`` itself, read again
from the top with the rows already given skipped, so even a broken file ends in the very
``InputError`` it always did.
"""

from __future__ import annotations

import csv
import re
from array import array
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mirage_mailer.project.lists import (
    MAX_HEADER_CHARS,
    RowProblem,
    Subscriber,
    _header_of,
    _iter_csv,
    _open_csv,
    is_blank,
    language_of,
    record,
)
from mirage_mailer.project.name_parts import name_columns
from mirage_mailer.util.addresses import LOWERED_LOCALS, MAX_ADDRESS, settled_domain
from mirage_mailer.util.errors import InputError, display_path
from mirage_mailer.util.fieldsjson import encode_string, fields_json

BATCH = 10_000  # rows in one ``Columns``
BLOCK = 1 << 20  # bytes read at once
_LONGEST_CELL = 1_000  # a longer cell is read line by line
_LONGEST_LINE = 100_000  # a longer line goes to the exact reader: csv's field limit (131,072)
# and lists.MAX_LINE_CHARS are its to word
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# what a cell may hold on the fast way: no quote, no delimiter, nothing header_problem
# refuses (C0 controls but TAB, DEL, C1, U+2028/9; an encoded word is checked per block)
_CELL = "[^\"{delimiter}\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f\\u2028\\u2029]"
_DOMAINS = 100_000  # domains kept settled (as util/addresses.py keeps them)
_UNFILLED = ("email", "name", "lang")  # columns that are no template field


@dataclass(slots=True)
class Columns:
    """Rows of one list in file order: good rows as columns, row problems as they are.

    ``emails`` joins the good rows' normalised addresses with ``\\n``; ``lines``, ``langs``
    and ``shapes`` hold each good row's line, its language (an index into ``languages``,
    whose items are a normalised code or None) and the template fields it filled (an
    index into ``shapes``). Both tables are the reader's whole tables so far."""

    emails: str = ""
    lines: array[int] = field(default_factory=lambda: array("q"))
    langs: array[int] = field(default_factory=lambda: array("H"))
    shape_of: array[int] = field(default_factory=lambda: array("H"))
    problems: list[RowProblem] = field(default_factory=list)
    languages: tuple[str | None, ...] = ()
    shapes: tuple[tuple[str, ...], ...] = ()
    # rows bound for the store only (``iter_columns(subject=...)``): each good row's name,
    # its fields as the store keeps them (``fields_json``) and its subject id
    names: list[str | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)


class _Builder:
    """Collects rows into ``Columns``; languages and shapes numbered as they first come.
    With ``subject``, also what the store keeps of each good row (``Columns.names``)."""

    def __init__(self, subject: Callable[[str], str] | None = None) -> None:
        self.subject = subject
        self.languages: list[str | None] = []
        self.language_ids: dict[str | None, int] = {}
        self.shapes: list[tuple[str, ...]] = []
        self.shape_ids: dict[tuple[str, ...], int] = {}
        self.reset()

    def reset(self) -> None:
        self.emails: list[str] = []
        self.lines: array[int] = array("q")
        self.langs: array[int] = array("H")
        self.shape_of: array[int] = array("H")
        self.problems: list[RowProblem] = []
        self.names: list[str | None] = []
        self.texts: list[str] = []

    def language(self, lang: str | None) -> int:
        found = self.language_ids.get(lang)
        if found is None:
            found = self.language_ids[lang] = len(self.languages)
            self.languages.append(lang)
        return found

    def shape(self, fields: Iterable[str]) -> int:
        key = tuple(fields)
        found = self.shape_ids.get(key)
        if found is None:
            found = self.shape_ids[key] = len(self.shapes)
            self.shapes.append(key)
        return found

    def add(self, row: Subscriber | RowProblem) -> None:
        if isinstance(row, RowProblem):
            self.problems.append(row)
            return
        self.emails.append(row.email)
        self.lines.append(row.line)
        self.langs.append(self.language(row.lang))
        self.shape_of.append(self.shape(row.fields))
        if self.subject is not None:
            self.names.append(row.name)
            self.texts.append(fields_json(row.fields))

    def full(self) -> bool:
        return len(self.lines) + len(self.problems) >= BATCH

    def take(self) -> Columns:
        out = Columns("\n".join(self.emails), self.lines, self.langs, self.shape_of,
                      self.problems, tuple(self.languages), tuple(self.shapes))
        if self.subject is not None:  # the keyed hash, a batch at a time (C-level map)
            out.names, out.texts = self.names, self.texts
            out.subjects = list(map(self.subject, self.emails))
        self.reset()
        return out


def columns_of(rows: Iterable[Subscriber | RowProblem], *,
               subject: Callable[[str], str] | None = None) -> Iterator[Columns]:
    """Rows read the usual way (a YAML list, a short CSV list) as ``Columns``."""
    builder = _Builder(subject)
    for row in rows:
        builder.add(row)
        if builder.full():
            yield builder.take()
    yield builder.take()


def iter_columns(path: Path, list_name: str, *,
                 subject: Callable[[str], str] | None = None) -> Iterator[Columns]:
    """A CSV list's rows as ``Columns``: exactly the rows, row problems and fatal error of
    ``lists._iter_csv``, in the same order. Before a fatal error there may be more rows
    than that reader gives (its text layer decodes 8 KiB ahead, so a byte that is not
    UTF-8 stops it a few rows earlier): the error is the same, and it is all validate
    prints then (a send stops before it writes anything). ``subject``: the rows are bound
    for the store, so each good row's name, fields text and subject id come too."""
    where = display_path(path)
    with _open_csv(path) as handle:
        columns, delimiter = _header_of(handle, path)
    start = _body_offset(path)
    if start is None or not all(columns) or (
            subject is not None and len(set(columns)) < len(columns)):
        # an odd header (or a doubled column, whose fields a row keeps once): the usual
        # reader, as columns
        yield from columns_of(_iter_csv(path, list_name), subject=subject)
        return
    builder = _Builder(subject)
    builder.shape(c for c in columns if c not in _UNFILLED)  # shape 0: every column filled
    try:
        given = yield from _fast(path, list_name, where, columns, delimiter, start, builder)
        if given is not None:  # the block pass handed over: the exact reader from the top
            for row in _iter_csv(path, list_name):
                line = row.line if isinstance(row, Subscriber) else row.problem.line
                if line is not None and line > given:
                    builder.add(row)
                    if builder.full():
                        yield builder.take()
    except InputError:
        yield builder.take()  # the rows before it first, as _iter_csv gives them
        raise
    yield builder.take()


def _body_offset(path: Path) -> int | None:
    """Where the rows start in the file's bytes (after the header line and its ``\\n``);
    None when the header does not end with ``\\n`` (a lone CR) or is not found."""
    with path.open("rb") as raw:
        first = raw.readline(4 * MAX_HEADER_CHARS + 4)
    if not first.endswith(b"\n") or b"\r" in first[:-2]:
        return None
    return len(first)


def _pattern(columns: list[str], delimiter: str, *, every: bool = False) -> re.Pattern[str]:
    """A line in the common shape, as (local part, domain, lang cell), or ("", "", "")
    for any other line: one alternation, so ``findall`` gives every line. ``every``: each
    cell but the address's is a group of its own, in column order (no lang group added)."""
    cell = _CELL.format(delimiter=re.escape(delimiter))
    parts = []
    for column in columns:
        if column == "email":
            parts.append(rf"({_ATEXT}(?:\.{_ATEXT})*)@([A-Za-z0-9.-]{{1,253}})")
        elif column == "lang" or every:
            parts.append(f"({cell}{{0,{_LONGEST_CELL}}})")
        else:
            parts.append(f"{cell}{{0,{_LONGEST_CELL}}}")
    if "lang" not in columns and not every:
        parts[-1] += "()"
    return re.compile(f"^(?:{re.escape(delimiter).join(parts)}|.*)$", re.MULTILINE)


def _fast(path: Path, list_name: str, where: str, columns: list[str], delimiter: str,
          start: int, builder: _Builder) -> Generator[Columns, None, int | None]:
    """The block pass; its return value is None when it read the whole file, else the last
    line it gave (the exact reader takes over after it)."""
    block_rows = _BlockRows(path, list_name, where, columns, delimiter, builder)
    line = 1
    carry = b""
    with path.open("rb") as raw:
        raw.seek(start)
        while True:
            data = raw.read(BLOCK)
            buffered = carry + data
            if data:
                cut = buffered.rfind(b"\n") + 1
                if not cut:
                    if len(buffered) > 4 * BLOCK:
                        return line  # one very long line: the exact reader says what it is
                    carry = buffered
                    continue
                block, carry = buffered[:cut], buffered[cut:]
            elif buffered:
                block, carry = buffered + b"\n", b""  # the last line had no line end
            else:
                return None
            if b'"' in block:
                return line  # a quoted cell may span lines: only csv reads that right
            if b"\r" in block:
                if block.count(b"\r") != block.count(b"\r\n"):
                    return line
                block = block.replace(b"\r\n", b"\n")
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError:
                return line
            handed = block_rows.read(text, line)
            if handed is not None:
                return handed
            line += text.count("\n")
            if builder.full():
                yield builder.take()
            if not data:
                return None


class _BlockRows:
    """The rows of a block of whole lines (no quote, no CR), into the builder."""

    def __init__(self, path: Path, list_name: str, where: str, columns: list[str],
                 delimiter: str, builder: _Builder) -> None:
        self.path, self.list_name, self.where = path, list_name, where
        self.columns, self.delimiter, self.builder = columns, delimiter, builder
        self.stored = builder.subject is not None  # every cell wanted: see _stored
        self.pattern = _pattern(columns, delimiter, every=self.stored)
        self.langs: dict[str, int] = {}  # a lang cell as written -> language index (-1: bad)
        # a domain as written -> (as normalised, the longest local part it takes)
        self.domains: dict[str, tuple[str, int]] = {}
        self.lowered = max(map(len, LOWERED_LOCALS))
        # in a stored match, column n's cell is group ``at[n]`` (the address takes two)
        at: dict[str, int] = {}
        for column in columns:
            at[column] = len(at) + (len(at) > columns.index("email"))
        self.local_at = at["email"]  # the domain is the next group
        self.lang_at = at.get("lang")
        self.name_at = at.get("name")
        self.parts_at = [at[c] for c in name_columns(tuple(columns))]  # as _check_row
        self.fields_at = [(encode_string(c) + ": ", at[c]) for c in columns
                          if c not in _UNFILLED]

    def read(self, text: str, line: int) -> int | None:
        """None when every line was read; else the last line given before one the exact
        reader must read (a line too long to vouch for)."""
        if "=?" in text:  # an encoded word somewhere: every line is checked as a record
            for number, full in enumerate(text.split("\n")[:-1], line + 1):
                if not self.line(full, number):
                    return number - 1
            return None
        if self.stored:
            return self._stored(text, line)
        builder = self.builder
        emails, lines = builder.emails.append, builder.lines.append
        langs, shape_of = builder.langs.append, builder.shape_of.append
        known_langs, domains, lowered = self.langs, self.domains, self.lowered
        split: list[str] | None = None
        first = line
        for local, domain, lang in self.pattern.findall(text, 0, len(text) - 1):
            line += 1
            if local:
                settled = domains.get(domain) or self.domain(domain)
                index = known_langs.get(lang)
                if index is None:
                    index = known_langs[lang] = _lang_index(lang, builder)
                if len(local) <= settled[1] and index >= 0:
                    if len(local) <= lowered and local.lower() in LOWERED_LOCALS:
                        local = local.lower()
                    emails(f"{local}@{settled[0]}")
                    lines(line)
                    langs(index)
                    shape_of(0)
                    continue
            if split is None:
                split = text.split("\n")
            if not self.line(split[line - first - 1], line):
                return line - 1
        return None

    def _stored(self, text: str, line: int) -> int | None:
        """``read`` for rows bound for the store: also each row's name and fields text, as
        ``lists._check_row`` and ``fields_json`` make them from the same cells."""
        builder = self.builder
        emails, lines = builder.emails.append, builder.lines.append
        langs, shape_of = builder.langs.append, builder.shape_of.append
        names, texts = builder.names.append, builder.texts.append
        known_langs, domains, lowered = self.langs, self.domains, self.lowered
        lang_at, name_at, parts_at = self.lang_at, self.name_at, self.parts_at
        fields_at, local_at = self.fields_at, self.local_at
        one = ("{" + fields_at[0][0], fields_at[0][1]) if len(fields_at) == 1 else None
        split: list[str] | None = None
        first = line
        for cells in self.pattern.findall(text, 0, len(text) - 1):
            line += 1
            local = cells[local_at]
            if local:
                domain = cells[local_at + 1]
                settled = domains.get(domain) or self.domain(domain)
                lang = cells[lang_at] if lang_at is not None else ""
                index = known_langs.get(lang)
                if index is None:
                    index = known_langs[lang] = _lang_index(lang, builder)
                if len(local) <= settled[1] and index >= 0:
                    if len(local) <= lowered and local.lower() in LOWERED_LOCALS:
                        local = local.lower()
                    emails(f"{local}@{settled[0]}")
                    lines(line)
                    langs(index)
                    shape_of(0)
                    name = cells[name_at].strip() if name_at is not None else ""
                    if not name and parts_at:  # as Mailchimp and Brevo export: first and last name
                        name = " ".join(part for part in
                                        (cells[at].strip() for at in parts_at) if part)
                    names(name or None)
                    if one is not None:  # one template column (the usual list)
                        texts(one[0] + encode_string(cells[one[1]]) + "}")
                    else:
                        texts("{" + ", ".join([key + encode_string(cells[at])
                                               for key, at in fields_at]) + "}")
                    continue
            if split is None:
                split = text.split("\n")
            if not self.line(split[line - first - 1], line):
                return line - 1
        return None

    def domain(self, written: str) -> tuple[str, int]:
        """``settled_domain`` and the longest local part it takes; (written, -1) while it has
        none (email-validator may settle it when a row takes the long way)."""
        known = settled_domain(written)
        if known is None:
            return written, -1  # not kept: email-validator may settle it on a row's way
        if len(self.domains) >= _DOMAINS:
            self.domains.clear()
        found = self.domains[written] = (known[0], MAX_ADDRESS - 1 - known[1])
        return found

    def line(self, full: str, number: int) -> bool:
        """One line read as the csv reader reads it, alone; False when it is too long to
        be vouched for that way (the exact reader takes over)."""
        if len(full) >= _LONGEST_LINE:
            return False
        row = next(csv.reader([full + "\n"], delimiter=self.delimiter))
        if not is_blank(row):
            self.builder.add(record(row, self.columns, self.delimiter, self.list_name,
                                    self.path, number, self.where, named=True,
                                    width=len(self.columns)))
        return True


def _lang_index(cell: str, builder: _Builder) -> int:
    """The language index of a lang cell as ``lists._check_row`` reads it; -1 when the
    row is a problem (the exact line reader then words it)."""
    lang = cell.strip() or None
    if lang is None:
        return builder.language(None)
    normalised, bad = language_of(lang)
    return -1 if bad else builder.language(normalised)
