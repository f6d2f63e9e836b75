"""Subscriber lists (YAML and CSV) streamed row by row, with row problems kept apart.

A bad row (invalid address, CR/LF, unknown language, a CSV value past the header's last
column) is a *row problem*: ``send`` skips and records it while everyone else still gets the
issue. A list that cannot be read at all is fatal. CSV files come from spreadsheets: BOM,
``;`` separators, odd header case and empty cells padding a line are fine.
A YAML list's values are text as written, as a CSV cell is: ``lang: no`` is Norwegian, ``name:
Yes`` a name, ``phone: 0123`` keeps its zero; a problem is named at the line of its key.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mirage_mailer.project.issue_values import LIST_NAME, inside
from mirage_mailer.project.list_name_rule import name_problem
from mirage_mailer.project.name_parts import composed_name, name_columns
from mirage_mailer.project.yamlrows import Shape
from mirage_mailer.project.yamlrows import entries as yaml_entries
from mirage_mailer.project.yamlsrc import LineDict
from mirage_mailer.util.addresses import check_clean_address
from mirage_mailer.util.csvrecords import MAX_CELL_LINES, extra_cells, quote_problem, row_width
from mirage_mailer.util.errors import InputError, Problem, display_path, shorten
from mirage_mailer.util.headersafe import header_problem, may_have_problem
from mirage_mailer.util.langs import check_language, normalise_language

LIST_SUFFIXES = (".yaml", ".yml", ".csv")
MAX_HEADER_CHARS = 100_000
MAX_LINE_CHARS = 1_000_000
_MAX_LANGUAGES = 1_000
_LANGUAGES: dict[str, tuple[str, str | None]] = {}  # lang as written -> _language(lang)


@dataclass(slots=True)
class Subscriber:
    """One usable row. Read-only by convention, not ``frozen``: a pass over a long list makes
    one per row, and a frozen dataclass takes four times as long to build."""

    email: str
    name: str | None
    lang: str | None
    fields: dict[str, str]
    list_name: str
    path: Path
    line: int
    subject: str | None = None  # the address's keyed hash, when the reader was asked for it
    fields_text: str | None = None  # ``fields_json(fields)``, written with ``subject``


# The keyed hash a planned row stores for its address (``Signer.subject_id``): a reader on
# the second core computes it there, beside the row's checks.
SubjectOf = Callable[[str], str]


@dataclass(frozen=True)
class RowProblem:
    """One subscriber row that cannot be used; ``email`` is the raw value, for the store."""

    email: str
    list_name: str
    problem: Problem


def find_list(lists_dir: Path, name: str, *, origin: Path, line: int | None) -> Path:
    """lists/<name>.yaml|.yml|.csv, or a fatal problem pointing at the issue line."""
    shown = shorten(name)
    if not LIST_NAME.match(name):  # the rule, and the file to rename (list_name_rule)
        raise InputError(Problem(display_path(origin), line, *name_problem(name, lists_dir)))
    found = _list_files(lists_dir, name)
    if len(found) > 1:  # reading one would silently leave out the readers of the other
        others = " and ".join(display_path(f) for f in found[1:])
        raise InputError(Problem(display_path(found[0]), None, f"list '{shown}' is also in "
                                 f"{others}: one list, one file", "keep one: move the rows "
                                 "you need into it and delete the other"))
    if found:
        if not inside(found[0], lists_dir.parent):
            raise InputError(Problem(display_path(origin), line, f"list '{shown}' is "
                                     "outside the project folder", "put the list file "
                                     "itself in lists/, not a link to it"))
        return found[0]
    broken = broken_list_link(lists_dir, name)
    if broken is not None:  # "create lists/x.csv" would write through the link
        said, hint = broken
        raise InputError(Problem(display_path(origin), line, f"list '{shown}': {said}", hint))
    missing = why_missing(lists_dir, name)
    if missing is not None:
        raise InputError(Problem(display_path(origin), line, *missing))
    raise InputError(
        Problem(display_path(origin), line, f"list '{shown}' not found",
                f"create {display_path(lists_dir / name)}.csv or .yaml, or fix the name")
    )


SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")
_PLAIN_TABLES = (".tsv", ".tab", ".txt")  # a delimited text file under another extension


def why_missing(lists_dir: Path, name: str) -> tuple[str, str] | None:
    """(what is wrong, the fix) for a list ``name`` with no readable file, where "create
    lists/NAME.csv" would mislead: a name given with its extension (the fix said
    "create lists/x.csv.csv"), a folder or other non-file where the list file belongs, a
    list kept in a format that is not read. None: it is simply not there."""
    shown = shorten(name)
    stem, suffix = os.path.splitext(name)
    if suffix.lower() in LIST_SUFFIXES:
        files = _list_files(lists_dir, stem)
        return (f"list '{shown}' is a file name, not a list name",
                f"give the list's name without the extension: '{shorten(stem)}'"
                + (f" for {display_path(files[0])}" if files else
                   f", and create {display_path(lists_dir / stem)}.csv or .yaml"))
    try:
        taken = sorted(p for p in lists_dir.iterdir() if p.stem == name
                       and p.suffix.lower() in LIST_SUFFIXES and p.exists() and not p.is_file())
    except OSError:
        taken = []
    if taken:  # a folder (or a pipe, a device) named like the list file
        what = "a folder" if taken[0].is_dir() else "not a regular file"
        return (f"list '{shown}': {display_path(taken[0])} is {what}",
                "put the list file itself there: move that away first")
    return _other_format(lists_dir, name)


def _other_format(lists_dir: Path, name: str) -> tuple[str, str] | None:
    """A list kept in a format that is not read: a spreadsheet (the usual export of an
    office) or delimited text named otherwise."""
    try:
        found = sorted(p for p in lists_dir.iterdir() if p.stem == name and p.is_file()
                       and p.suffix.lower() in SPREADSHEETS + _PLAIN_TABLES)
    except OSError:
        return None
    if not found:
        return None
    where, csv_file = display_path(found[0]), display_path(lists_dir / f"{name}.csv")
    if found[0].suffix.lower() in SPREADSHEETS:
        return (f"list '{shorten(name)}' is the spreadsheet {where}, which is not read",
                f"save it as CSV UTF-8 (in Excel: File, Save As, 'CSV UTF-8') as {csv_file}")
    return (f"list '{shorten(name)}' is {where}, which is not read under that name",
            f"rename it to {csv_file} (commas, semicolons or tabs between columns are read)")


def broken_list_link(lists_dir: Path, name: str) -> tuple[str, str] | None:
    """What is wrong and the fix when lists/<name>.csv|.yaml|.yml is a link to no file (a
    list moved or deleted behind it): the fix is the link, not a new file, which would be
    written wherever the link points."""
    try:
        links = sorted(p for p in lists_dir.iterdir() if p.stem == name
                       and p.suffix.lower() in LIST_SUFFIXES and p.is_symlink()
                       and not p.exists())
        target = os.readlink(links[0]) if links else None
    except OSError:
        return None
    if not links or target is None:
        return None
    where = os.path.join(display_path(lists_dir), links[0].name)  # the link, not its target
    pointed = Path(os.path.normpath(links[0].parent / target))
    said = f"{where} is a broken link: it points to '{shorten(target)}', where there is no file"
    replace = f"remove the link (rm {where}) and put the list file itself in its place"
    if not inside(pointed, lists_dir.parent):  # a list from outside is refused anyway
        return said, f"{replace}: a list must lie inside the project folder"
    return said, f"put the list file back at {shorten(display_path(pointed))}, or {replace}"


def list_names(lists_dir: Path) -> list[str]:
    """Every list of the project: the names of the files in lists/."""
    if not lists_dir.is_dir():
        return []
    return sorted({p.stem for p in lists_dir.iterdir()
                   if p.suffix.lower() in LIST_SUFFIXES and LIST_NAME.match(p.stem)
                   and p.is_file()})


def _list_files(lists_dir: Path, name: str) -> list[Path]:
    """Every file of the list ``name`` (any case of ``.csv``, ``.yaml``, ``.yml``, as
    ``list_names`` counts them), in name order; none when the folder is unreadable."""
    try:
        return sorted(p for p in lists_dir.iterdir() if p.stem == name
                      and p.suffix.lower() in LIST_SUFFIXES and p.is_file())
    except OSError:
        return []


def iter_list(path: Path, list_name: str, *, subject: SubjectOf | None = None,
              shape: Shape | None = None) -> Iterator[Subscriber | RowProblem]:
    """Stream one list's rows; raises ``InputError`` only when the file is unusable. A long
    CSV list is read on the second core (``list_worker``), with the very same result; there
    each row's ``subject`` and ``fields_text`` are also filled in when ``subject`` is given
    (the rows are bound for the store; elsewhere they stay None and the caller computes
    them). A YAML list's ``shape`` is filled in as it is read (``list_edit`` uses it)."""
    if path.suffix.lower() == ".csv":
        from mirage_mailer.project import list_worker

        if file_size(path) >= list_worker.PARALLEL_BYTES and list_worker.can_fork():
            yield from list_worker.iter_in_child(path, list_name, _iter_csv, Subscriber,
                                                 subject=subject)
        else:
            yield from _iter_csv(path, list_name)
    else:
        yield from _iter_yaml(path, list_name, shape)


def file_size(path: Path) -> int:
    """The file's size, 0 when it cannot be read (reading it then says why)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _check_row(
    raw: dict[str, str], list_name: str, path: Path, line: int, where: str,
    lines: dict[str, int] | None = None,
) -> Subscriber | RowProblem:
    """``lines``: the line of each column's value, where it has its own (a YAML entry)."""
    email = raw.get("email", "").strip()
    # One check of the whole row answers for every value when it holds no encoded word
    # (TAB, the glue, is allowed, and every other refusal is per character); a row that
    # fails it, or might hold an encoded word, is checked value by value for the message.
    if may_have_problem("\t".join(raw.values())):
        for key, value in raw.items():
            bad = header_problem(value)  # after decoding RFC 2047 encoded words (headersafe)
            if bad:
                hint = "the encoded word (=?...?=)" if "encoded word" in bad else "the " + next(
                    w for w in ("line break", "control character", "lone surrogate") if w in bad)
                return RowProblem(email, list_name, Problem(
                    where, _at(lines, key, line), f"'{key}' {bad}",
                    f"remove {hint} from this row"))
    if not email:
        return RowProblem(email, list_name, Problem(where, line, "row has no e-mail address",
                                                    "fill in the email column or delete the row"))
    normalised, bad = check_clean_address(email)  # the row's values passed header_problem
    if bad:
        return RowProblem(email, list_name, Problem(where, _at(lines, "email", line), bad,
                                                    "correct the address or delete the row"))
    lang = raw.get("lang", "").strip() or None
    if lang is not None:
        lang, bad = _LANGUAGES.get(lang) or _language(lang)
        if bad:
            return RowProblem(normalised, list_name, Problem(
                where, _at(lines, "lang", line), f"lang {bad}",
                "use an ISO 639-1 code such as en, fr or pt-BR"))
    name = raw.get("name", "").strip() or None
    if name is None and (parts := name_columns(tuple(raw))):  # as Mailchimp, Brevo export
        name = composed_name(raw, parts)
    fields = raw.copy()  # in C, then three removals: a third of a comprehension's time
    fields.pop("email", None)
    fields.pop("name", None)
    fields.pop("lang", None)
    return Subscriber(normalised, name, lang, fields, list_name, path, line)


def _at(lines: dict[str, int] | None, column: str, line: int) -> int:
    return line if lines is None else lines.get(column, line)


def language_of(lang: str) -> tuple[str, str | None]:
    """(normalised code, problem) of a stripped, non-empty lang value, as a row reads it."""
    return _LANGUAGES.get(lang) or _language(lang)


def _language(lang: str) -> tuple[str, str | None]:
    """(normalised code, problem) of a lang value as written; a list holds few distinct ones,
    so each is checked once (the cache stays small whatever the file holds)."""
    bad = check_language(lang)
    known = (lang if bad else normalise_language(lang), bad)
    if len(_LANGUAGES) < _MAX_LANGUAGES:
        _LANGUAGES[lang] = known
    return known


def _open_csv(path: Path) -> io.TextIOWrapper:
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputError(Problem(display_path(path), None, "file not found",
                                 "create it or fix the list name")) from None
    except OSError as exc:
        raise InputError(Problem(display_path(path), None,
                                 f"cannot read file: {exc.strerror}")) from None


def _csv_header(handle: io.TextIOWrapper, path: Path) -> tuple[list[str], str]:
    """(column names, delimiter): the delimiter is guessed from the header line alone."""
    first = handle.readline(MAX_HEADER_CHARS)
    if len(first) >= MAX_HEADER_CHARS and not first.endswith("\n"):
        raise InputError(Problem(display_path(path), 1, "CSV header line is longer than "
                                 f"{MAX_HEADER_CHARS:,} characters", "is this a list file?"))
    if not first.strip():
        if first and handle.read(MAX_HEADER_CHARS).strip():  # blank lines above the header
            raise InputError(Problem(display_path(path), 1, "the first line is blank, not the "
                                     "header row", "delete the blank lines above the header "
                                     "row: it must be the first line"))
        raise InputError(Problem(display_path(path), 1, "list is empty",
                                 "add a header row with an 'email' column"))
    if re.fullmatch(r'"?sep=.?"?', first.strip(), re.IGNORECASE):  # Excel's delimiter hint
        raise InputError(Problem(display_path(path), 1, f"the first line is Excel's "
                                 f"'{first.strip().strip(chr(34))}' hint, not the header row",
                                 "delete that line: the header row with an 'email' column "
                                 "must be the first line"))
    delimiter = max((",", ";", "\t"), key=first.count)
    header = next(csv.reader([first], delimiter=delimiter), [])
    columns = [column_name(h) for h in header]
    twice = sorted(c for c, n in Counter(columns).items() if c and n > 1)
    if twice:
        raise InputError(Problem(display_path(path), 1, f"column '{shorten(twice[0])}' appears "
                                 "twice in the header", "keep one column of each name"))
    if "email" not in columns:
        raise InputError(Problem(display_path(path), 1, "CSV header has no 'email' column",
                                 "name the address column 'email' in the first row"))
    return columns, delimiter


def _not_utf8(path: Path, line: int) -> InputError:
    """``line`` is where the reading stood; the text layer decodes 8 KiB ahead of it, so
    the line that holds the bad byte is found again in the file's bytes."""
    line = _first_bad_line(path) or line
    return InputError(Problem(display_path(path), line, "not valid UTF-8",
                              "save the file as UTF-8 (in a spreadsheet: 'CSV UTF-8')"))


def _first_bad_line(path: Path, block: int = 1 << 16) -> int | None:
    """The line holding the file's first byte that is not UTF-8, or None; lines end as the
    csv module ends them (``\\r\\n``, ``\\n`` or a lone ``\\r``). Decoded in pieces cut after
    a line end, which no UTF-8 sequence contains, so a character is never split between two
    pieces (a ``\\r`` last in a block waits: a ``\\n`` may follow); memory stays bounded by a
    line's length."""
    lines = 1
    carry = b""
    try:
        with path.open("rb") as raw:
            while True:
                data = raw.read(block)
                buffered = carry + data
                cut = (max(buffered.rfind(b"\n"), buffered.rfind(b"\r", 0, len(buffered) - 1))
                       + 1 if data else len(buffered))
                piece, carry = buffered[:cut], buffered[cut:]
                try:
                    piece.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return lines + _line_ends(piece[:exc.start])
                lines += _line_ends(piece)
                if not data:
                    return None
                if len(carry) > 4 * MAX_LINE_CHARS:  # no line end for that long: this line
                    return lines
    except OSError:
        return None


def _line_ends(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _bounded_lines(handle: io.TextIOWrapper, path: Path, ended: list[bool]) -> Iterator[str]:
    """Physical lines after the header, none longer than ``MAX_LINE_CHARS`` (memory stays
    bounded whatever the file holds: the csv module's field limit alone does not do that).
    ``ended`` gets an item once the file is read to its end: a record still being read
    then was cut short by the end of the file (a quote left open)."""
    number = 1
    while line := handle.readline(MAX_LINE_CHARS):
        number += 1
        if len(line) >= MAX_LINE_CHARS and not line.endswith("\n"):
            raise InputError(Problem(display_path(path), number, "line longer than "
                                     f"{MAX_LINE_CHARS:,} characters", "is this a list file?"))
        yield line
    ended.append(True)


def _header_of(handle: io.TextIOWrapper, path: Path) -> tuple[list[str], str]:
    """The header's columns and delimiter; a first line that is not UTF-8 is named so."""
    try:
        return _csv_header(handle, path)
    except UnicodeDecodeError:
        raise _not_utf8(path, 1) from None


def _iter_csv(path: Path, list_name: str) -> Iterator[Subscriber | RowProblem]:
    """Stream the file: a 100,000-row list never sits in memory."""
    where = display_path(path)
    with _open_csv(path) as handle:
        columns, delimiter = _header_of(handle, path)
        ended: list[bool] = []
        reader = csv.reader(_bounded_lines(handle, path, ended), delimiter=delimiter)
        named = all(columns)  # no unnamed column to leave out of each row's mapping
        width = row_width(columns)
        line = 1  # the file's line where the last row ended
        try:  # one try around the loop, not one per row
            for row in reader:
                start = line + 1
                line = reader.line_num + 1
                if ended or line - start >= MAX_CELL_LINES:  # rare: checked only then
                    bad = quote_problem(where, row, start, at_end=bool(ended))
                    if bad:
                        raise InputError(bad)
                if not (row and row[0].strip()) and not any(cell.strip() for cell in row):
                    continue
                yield record(row, columns, delimiter, list_name, path, start, where,
                             named=named, width=width)
        except UnicodeDecodeError:
            raise _not_utf8(path, line + 1) from None
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):  # a value past 128 KiB
                problem = _past_field_limit(path, where, line + 1)
            else:
                problem = Problem(where, reader.line_num + 1, f"CSV error: {exc}",
                                  "check the quotes on this line")
            raise InputError(problem) from None


def _past_field_limit(path: Path, where: str, line: int) -> Problem:
    """csv's field limit met in the row that starts on ``line``: a quote left open, or, with
    no quote on that line, one value that long (blamed on a quote, it sent the user looking
    for one that is not there)."""
    limit = f"{csv.field_size_limit():,}"
    if _quote_on_line(path, line):
        return Problem(where, line, "a quote in the row that starts on this line is not "
                       f"closed within {limit} characters", "close the quote where the value "
                       "ends")
    return Problem(where, line, f"a value in this row is longer than {limit} characters, "
                   "the most a list cell may hold", "shorten it; is this a list file?")


def _quote_on_line(path: Path, line: int) -> bool:
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            for number, text in enumerate(iter(lambda: handle.readline(MAX_LINE_CHARS), ""), 1):
                if number == line:
                    return '"' in text
    except OSError:
        pass
    return True  # unknown: the cause it has always been told as


def record(row: list[str], columns: list[str], delimiter: str, list_name: str, path: Path,
           start: int, where: str, *, named: bool, width: int) -> Subscriber | RowProblem:
    """One CSV record that is not blank, as a row or a row problem (``list_columns`` reads
    the lines it does not settle itself through this too)."""
    raw = (dict(zip(columns, row, strict=False)) if named else
           {col: cell for col, cell in zip(columns, row, strict=False) if col})
    if len(row) > width and (extra := extra_cells(row, columns, width, delimiter)):
        return RowProblem(raw.get("email", "").strip(), list_name,
                          Problem(where, start, *extra))
    return _check_row(raw, list_name, path, start, where)


def is_blank(row: list[str]) -> bool:
    """A record with nothing in it (a spreadsheet's empty line): skipped, never a problem."""
    return not (row and row[0].strip()) and not any(cell.strip() for cell in row)


def list_fields(path: Path) -> set[str]:
    """Template-visible columns of a list, without reading its rows (CSV: the header)."""
    if path.suffix.lower() == ".csv":
        with _open_csv(path) as handle:
            try:
                columns, _ = _csv_header(handle, path)
            except UnicodeDecodeError:
                raise _not_utf8(path, 1) from None
        return {c for c in columns if c and c not in ("email", "name", "lang")}
    fields: set[str] = set()
    for row in _iter_yaml(path, path.stem):
        if isinstance(row, Subscriber):
            fields.update(row.fields)
    return fields


def column_name(header: str) -> str:
    """A column or key as written (``Email Address``, ``First Name``) -> the name used."""
    name = header.strip().lower().replace("-", "_").replace(" ", "_")
    return {"e_mail": "email", "email_address": "email", "e_mail_address": "email",  # Outlook
            "language": "lang"}.get(name, name)


def _iter_yaml(path: Path, list_name: str,
               shape: Shape | None = None) -> Iterator[Subscriber | RowProblem]:
    """Entry by entry (``yamlrows``): a long YAML list never sits in memory either."""
    where = display_path(path)
    for line, entry in yaml_entries(path, shape):
        if isinstance(entry, str):
            yield _check_row({"email": entry}, list_name, path, line, where)
        elif isinstance(entry, LineDict):
            entry_map: dict[str, str] = {}
            lines: dict[str, int] = {}
            for key, value in entry.items():
                if isinstance(value, dict | list):
                    yield RowProblem(str(entry.get("email", "")), list_name, Problem(
                        where, entry.key_line(key), f"'{key}' must be a single value",
                        f"write one value after '{key}:', in quotes if it starts with [ or {{"))
                    break
                column = column_name(str(key))
                if column in entry_map:  # Email: and E-mail:, as a CSV header may not have
                    yield RowProblem(str(entry.get("email", "")), list_name, Problem(
                        where, entry.key_line(key), f"'{key}' names the '{column}' column "
                        f"again (line {lines[column]})", "keep one of them"))
                    break
                entry_map[column] = "" if value is None else str(value)
                lines[column] = entry.key_line(key)
            else:
                yield _check_row(entry_map, list_name, path, line, where, lines)
        else:
            yield RowProblem("", list_name, Problem(where, line, "subscriber entry must be a "
                                                    "mapping", "write '- email: ...'"))
