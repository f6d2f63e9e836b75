"""Edit a list file in place: append rows at the end, or delete the rows of one address.

Lists are written by people (comments, column order, a spreadsheet's ``;`` and CRLF) and read
by cron jobs, so an edit changes only the rows it is about: every other byte stays as it was.
CSV files are streamed through; YAML files are edited as text (never re-dumped, which would
lose the comments), and the result is parsed again and compared with what was meant before it
replaces the file. Every write goes to a temporary file beside the list, synced, then renamed
over it, with the list's permissions: a crash leaves the old file or the new one, never half.

Values are checked by the caller (``services.roster``); this module refuses only what it
cannot write faithfully (a key the CSV header has no column for, a layout it does not know).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from mirage_mailer.project.lists import MAX_HEADER_CHARS, MAX_LINE_CHARS, column_name
from mirage_mailer.project.yamlsrc import LIST_MAX_BYTES, LineDict, LineList, parse_yaml
from mirage_mailer.util.csvrecords import MAX_CELL_LINES, numbered, quote_problem
from mirage_mailer.util.errors import InputError, Problem, display_path, shorten

BOM = b"\xef\xbb\xbf"
_PLAIN = re.compile(r"[^\W_][\w @.+'-]*")  # letters, digits: safe as a plain YAML scalar
FIELD_KEY = re.compile(r"[a-z_][a-z0-9_]{0,63}")  # a key a YAML list can hold as written
# Plain words that PyYAML reads as text but other YAML readers do not: YAML 1.2's numbers
# (1e3, 0o17) and YAML 1.1's booleans (y, n); a list file is opened by other tools too.
_OTHER_READERS = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
                            r"|0o[0-7]+|0x[0-9a-fA-F]+|y|n|yes|no|on|off|true|false|null",
                            re.IGNORECASE)


@dataclass(frozen=True)
class Layout:
    """What a list file can hold: its format and, for CSV, its columns (normalised)."""

    kind: str  # "csv" or "yaml"
    columns: tuple[str, ...]  # CSV: the header's columns; YAML: () (any plain key)

    def accepts(self, key: str) -> bool:
        return key in self.columns if self.kind == "csv" else bool(FIELD_KEY.fullmatch(key))


@dataclass(frozen=True)
class _CsvHead:
    bom: bool
    delimiter: str
    newline: str
    columns: tuple[str, ...]


def layout(path: Path) -> Layout:
    if _is_csv(path):
        return Layout("csv", _csv_head(path).columns)
    return Layout("yaml", ())


def append_rows(path: Path, rows: Iterable[dict[str, str]], *, dry_run: bool = False) -> None:
    """Add ``rows`` (key -> value, keys as ``Layout`` accepts them) after the last row.

    A CSV list takes them as they come (an import of any length streams through); a YAML
    list is edited whole, so its result is held to the YAML list size limit. ``dry_run``
    does all of it, checks included, but writes the result to nowhere: a dry run refuses
    exactly what the real edit refuses.
    """
    if _is_csv(path):
        _append_csv(path, rows, dry_run)
    else:
        _append_yaml(path, rows, dry_run)


def remove_rows(path: Path, key: str) -> list[int]:
    """Delete every row whose address is ``key`` (lowercase); the lines they started at."""
    if _is_csv(path):
        return _remove_csv(path, key)
    return _remove_yaml(path, key)


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def _unusable(path: Path, line: int | None, message: str, hint: str = "") -> InputError:
    return InputError(Problem(display_path(path), line, message, hint))


# -- writing -----------------------------------------------------------------------------------

def _replace(path: Path, write: Callable[[IO[bytes]], object], dry_run: bool = False) -> None:
    """Write through a temporary file beside ``path`` and rename it over ``path``; a dry run
    writes to the null device instead, once it has checked that it may create files there."""
    if dry_run:
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise _unusable(path, None, "cannot write the list: Permission denied",
                            "check the folder's permissions and free space")
        with open(os.devnull, "wb") as nowhere:
            write(nowhere)
        return
    mode = path.stat().st_mode & 0o7777
    tmp = path  # replaced by the temporary file's name once it exists
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise _unusable(path, None, f"cannot write the list: {exc.strerror}",
                        "check the folder's permissions and free space") from None
    finally:
        if tmp != path:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    with contextlib.suppress(OSError):  # the rename itself survives a power cut
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


# -- CSV ---------------------------------------------------------------------------------------

def _csv_head(path: Path) -> _CsvHead:
    try:
        with open(path, "rb") as handle:
            first = handle.readline(MAX_HEADER_CHARS)
    except OSError as exc:
        raise _unusable(path, None, f"cannot read file: {exc.strerror}") from None
    bom = first.startswith(BOM)
    try:
        text = first[len(BOM) if bom else 0:].decode("utf-8")
    except UnicodeDecodeError:
        raise _unusable(path, 1, "not valid UTF-8", "save the file as UTF-8") from None
    if not text.strip():
        raise _unusable(path, 1, "list is empty", "add a header row with an 'email' column")
    delimiter = max((",", ";", "\t"), key=text.count)  # as project.lists guesses it
    newline = "\r\n" if text.endswith("\r\n") else "\n"
    header = next(csv.reader([text.rstrip("\r\n")], delimiter=delimiter), [])
    return _CsvHead(bom, delimiter, newline, tuple(column_name(h) for h in header))


def _csv_line(head: _CsvHead, values: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=head.delimiter, lineterminator=head.newline).writerow(values)
    return out.getvalue().encode("utf-8")


def _append_csv(path: Path, rows: Iterable[dict[str, str]], dry_run: bool) -> None:
    head = _csv_head(path)

    def lines() -> Iterator[bytes]:
        for row in rows:
            unknown = [k for k, v in row.items() if v and k not in head.columns]
            if unknown:
                raise _unusable(path, 1, f"the header has no '{shorten(unknown[0])}' column",
                                f"add a '{shorten(unknown[0])}' column to the first row, "
                                "or leave the value out")
            yield _csv_line(head, [row.get(c, "") if c else "" for c in head.columns])

    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 1))
        ends_open = size > 0 and handle.read(1) not in (b"\n", b"\r")

    def write(out: IO[bytes]) -> None:
        with open(path, "rb") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        if ends_open:
            out.write(head.newline.encode())
        for line in lines():
            out.write(line)

    _replace(path, write, dry_run)


def _records(handle: IO[str], path: Path, delimiter: str) -> Iterator[tuple[int, list[str],
                                                                          list[str]]]:
    """(first line, cells, the physical lines) of each record after the header."""
    taken: list[str] = []
    number = 1
    ended = False

    def lines() -> Iterator[str]:
        nonlocal number, ended
        while line := handle.readline(MAX_LINE_CHARS):
            if len(line) >= MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
                raise _unusable(path, number + 1, f"line longer than {MAX_LINE_CHARS:,} "
                                "characters", "is this a list file?")
            number += 1
            taken.append(line)
            yield line
        ended = True

    reader = csv.reader(lines(), delimiter=delimiter)
    for start, cells in numbered(reader, lambda: number + 1, lambda line, exc: _unusable(
            path, line, f"CSV error: {exc}", "check the quotes here")):
        if ended or number - start >= MAX_CELL_LINES:  # as project.lists reads the list
            bad = quote_problem(display_path(path), cells, start, at_end=ended)
            if bad:
                raise InputError(bad)
        yield start, cells, taken[:]
        taken.clear()


def _remove_csv(path: Path, key: str) -> list[int]:
    head = _csv_head(path)
    column = head.columns.index("email")
    removed: list[int] = []

    def matches(cells: list[str]) -> bool:
        return len(cells) > column and cells[column].strip().lower() == key

    try:
        with open(path, encoding="utf-8", newline="") as handle:  # the BOM stays in line 1
            handle.readline(MAX_HEADER_CHARS)
            removed = [start for start, cells, _ in _records(handle, path, head.delimiter)
                       if matches(cells)]
        if not removed:
            return removed

        def write(out: IO[bytes]) -> None:
            with open(path, encoding="utf-8", newline="") as handle:
                out.write(handle.readline(MAX_HEADER_CHARS).encode("utf-8"))
                for _, cells, raw in _records(handle, path, head.delimiter):
                    if not matches(cells):
                        out.write("".join(raw).encode("utf-8"))

        _replace(path, write)
    except UnicodeDecodeError:
        raise _unusable(path, None, "not valid UTF-8", "save the file as UTF-8") from None
    return removed


# -- YAML --------------------------------------------------------------------------------------

@dataclass
class _YamlText:
    """A YAML list as lines, with where its ``subscribers:`` block and each item start."""

    bom: bool
    lines: list[str]
    rows: LineList
    key_line: int  # index of the ``subscribers:`` line
    flow_empty: bool  # ``subscribers: []``
    items: list[int]  # index of each item's '- ' line
    dash: int  # column of the items' '-'
    end: int  # index of the first line after the block


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _read_yaml(path: Path) -> _YamlText:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _unusable(path, None, f"cannot read file: {exc.strerror}") from None
    if len(raw) > LIST_MAX_BYTES:
        raise _unusable(path, None, f"file is {len(raw):,} bytes; the limit is "
                        f"{LIST_MAX_BYTES:,}", "split the list")
    bom = raw.startswith(BOM)
    try:
        text = raw[len(BOM) if bom else 0:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _unusable(path, raw[:exc.start].count(b"\n") + 1, "not valid UTF-8",
                        "save the file as UTF-8") from None
    data = parse_yaml(text, path, text_values=True)  # as lists.py reads it
    if not isinstance(data, LineDict) or not isinstance(data.get("subscribers"), LineList):
        at = data.line if isinstance(data, LineDict | LineList) else 1  # as lists.py says
        raise _unusable(path, at, "list must have 'subscribers:' with a sequence of entries",
                        "write '- email: someone@example.org' lines")
    lines = text.splitlines(keepends=True)
    key = data.key_line("subscribers") - 1
    rows: LineList = data["subscribers"]
    head = lines[key].split("#", 1)[0]
    flow_empty = re.fullmatch(r"\s*subscribers\s*:\s*\[\s*\]\s*", head) is not None
    if rows and not re.fullmatch(r"\s*subscribers\s*:\s*", head):
        raise _unusable(path, key + 1, "'subscribers:' is written on one line ([...])",
                        "write one '- email: ...' entry per line below 'subscribers:'")
    if flow_empty or not rows:
        return _YamlText(bom, lines, rows, key, flow_empty, [], _indent(lines[key]) + 2,
                         key + 1)
    first = rows.item_line(0) - 1
    dash = lines[first].index("-") if lines[first].lstrip().startswith("-") else -1
    items: list[int] = []
    end = len(lines)
    for index in range(key + 1, len(lines)):
        line = lines[index]
        if not _content(line):
            continue
        if _indent(line) == dash and line.lstrip().startswith("-"):
            items.append(index)
        elif _indent(line) <= dash or dash < 0:
            end = index
            break
    if dash < 0 or len(items) != len(rows):
        raise _unusable(path, key + 1, "this layout of 'subscribers:' cannot be edited in "
                        "place", "write each entry as '- email: ...' with its keys below")
    return _YamlText(bom, lines, rows, key, False, items, dash, end)


def _scalar(value: str) -> str:
    """A value as YAML that reads back as the same text, in PyYAML and in YAML 1.1 and 1.2
    readers alike (quoted unless plainly safe)."""
    if (_PLAIN.fullmatch(value) and not value.endswith(" ")
            and not _OTHER_READERS.fullmatch(value)):
        with contextlib.suppress(yaml.YAMLError):
            if yaml.safe_load(value) == value:
                return value
    return json.dumps(value, ensure_ascii=False)  # JSON strings are YAML double-quoted ones


def _entry(doc: _YamlText, row: dict[str, str], newline: str) -> list[str]:
    pad = " " * doc.dash
    plain_items = bool(doc.rows) and all(isinstance(r, str) for r in doc.rows)
    if plain_items and set(row) == {"email"}:
        return [f"{pad}- {_scalar(row['email'])}{newline}"]
    key_col = doc.dash + 2
    if doc.items:  # as the first entry has it: "- email" or "-   email"
        rest = doc.lines[doc.items[0]][doc.dash + 1:]
        key_col = doc.dash + 1 + max(1, len(rest) - len(rest.lstrip(" ")))
    out = []
    for n, (key, value) in enumerate((k, v) for k, v in row.items() if v):
        lead = f"{pad}-{' ' * (key_col - doc.dash - 1)}" if n == 0 else " " * key_col
        out.append(f"{lead}{key}: {_scalar(value)}{newline}")
    return out


def _newline(lines: list[str]) -> str:
    return "\r\n" if lines and lines[0].endswith("\r\n") else "\n"


def _write_yaml(path: Path, doc: _YamlText, lines: list[str], expected: list[Any],
                dry_run: bool = False) -> None:
    """Parse the edited text again: it must hold exactly ``expected`` as its subscribers."""
    text = "".join(lines)
    data = parse_yaml(text, path, text_values=True)
    got = data.get("subscribers") if isinstance(data, LineDict) else None
    if got != expected:
        raise _unusable(path, doc.key_line + 1, "the list could not be edited without "
                        "changing other entries; nothing was written",
                        "edit this file by hand")
    encoded = (BOM if doc.bom else b"") + text.encode("utf-8")
    _replace(path, lambda out: out.write(encoded), dry_run)


def _append_yaml(path: Path, given: Iterable[dict[str, str]], dry_run: bool) -> None:
    doc = _read_yaml(path)
    lines = list(doc.lines)
    newline = _newline(lines)
    size = sum(len(line) for line in lines)
    rows: list[dict[str, str]] = []
    added: list[str] = []
    for row in given:
        bad = [k for k in row if not FIELD_KEY.fullmatch(k)]
        if bad:
            raise _unusable(path, None, f"'{shorten(bad[0])}' cannot be a key of a list "
                            "entry", "use lowercase letters, digits and '_'")
        rows.append(row)
        entry = _entry(doc, row, newline)
        added += entry
        size += sum(len(line) for line in entry)
        if size > LIST_MAX_BYTES:
            raise _unusable(path, None, f"the list would pass {LIST_MAX_BYTES:,} bytes",
                            "use a CSV list for this many readers")
    if not rows:
        return
    if doc.flow_empty or not doc.rows:
        comment = lines[doc.key_line].split("#", 1)[1] if "#" in lines[doc.key_line] else ""
        indent = " " * _indent(lines[doc.key_line])
        tail = f"  #{comment.rstrip(chr(13) + chr(10))}" if comment else ""
        lines[doc.key_line] = f"{indent}subscribers:{tail}{newline}"
        at = doc.key_line + 1
    else:
        at = max(i for i in range(doc.items[-1], doc.end) if _content(lines[i])) + 1
    if at > 0 and not lines[at - 1].endswith(("\n", "\r")):
        lines[at - 1] += newline
    lines[at:at] = added
    expected = [*doc.rows, *[_read_back(doc, row) for row in rows]]
    _write_yaml(path, doc, lines, expected, dry_run)


def _read_back(doc: _YamlText, row: dict[str, str]) -> Any:
    plain_items = bool(doc.rows) and all(isinstance(r, str) for r in doc.rows)
    if plain_items and set(row) == {"email"}:
        return row["email"]
    return {k: v for k, v in row.items() if v}


def _address(entry: Any) -> str:
    if isinstance(entry, str):
        return entry.strip().lower()
    if isinstance(entry, dict):
        for key, value in entry.items():
            if column_name(str(key)) == "email" and value is not None:
                return str(value).strip().lower()
    return ""


def _remove_yaml(path: Path, key: str) -> list[int]:
    doc = _read_yaml(path)
    gone = [n for n, entry in enumerate(doc.rows) if _address(entry) == key]
    if not gone:
        return []
    lines = list(doc.lines)
    for n in reversed(gone):
        start = doc.items[n]
        stop = doc.items[n + 1] if n + 1 < len(doc.items) else doc.end
        last = max(i for i in range(start, stop) if _content(lines[i]))
        del lines[start:last + 1]
    kept = [entry for n, entry in enumerate(doc.rows) if n not in set(gone)]
    if not kept:  # an empty block would be null: say it is an empty sequence
        line = lines[doc.key_line]
        comment = line.split("#", 1)[1].rstrip("\r\n") if "#" in line else ""
        lines[doc.key_line] = (f"{' ' * _indent(line)}subscribers: []"
                               f"{'  #' + comment if comment else ''}{_newline(lines)}")
    _write_yaml(path, doc, lines, kept)
    return [doc.items[n] + 1 for n in gone]
