"""Edit a list file in place: append rows at the end, or delete the rows of one address.

Lists are written by people (comments, column order, a spreadsheet's ``;`` and CRLF) and read
by cron jobs, so an edit changes only the rows it is about: every other byte stays as it was.
CSV files are streamed through; YAML files are edited as text in one pass (``yaml_edit``:
never re-dumped, which would lose the comments), and each edited stretch is read again and
compared with what was meant before the result replaces the file. Every write goes to a
temporary file beside the list, synced, then renamed over it, with the list's permissions: a
crash leaves the old file or the new one, never half.

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
from typing import IO

import yaml

from mirage_mailer.project.lists import MAX_HEADER_CHARS, MAX_LINE_CHARS, column_name
from mirage_mailer.project.yamlrows import Shape
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


def append_rows(path: Path, rows: Iterable[dict[str, str]], *, dry_run: bool = False,
                shape: Shape | None = None) -> None:
    """Add ``rows`` (key -> value, keys as ``Layout`` accepts them) after the last row.

    Either format takes them as they come (an import of any length streams through); a YAML
    list's result is held to the YAML list size limit. ``shape``: the caller's own read of
    this YAML list, just made (``iter_list(..., shape=...)``), which spares reading it again.
    ``dry_run`` does all of it, checks included, but writes the result to nowhere: a dry run
    refuses exactly what the real edit refuses.
    """
    if _is_csv(path):
        _append_csv(path, rows, dry_run)
    else:
        from mirage_mailer.project import yaml_edit

        yaml_edit.append(path, rows, dry_run=dry_run, shape=shape)


def remove_rows(path: Path, key: str) -> list[int]:
    """Delete every row whose address is ``key`` (lowercase); the lines they started at."""
    if _is_csv(path):
        return _remove_csv(path, key)
    from mirage_mailer.project import yaml_edit

    return yaml_edit.remove(path, key)


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


# -- YAML (``yaml_edit`` edits; the values are written as ``_scalar`` says) ------------------

_RESOLVER = yaml.resolver.Resolver()  # SafeLoader's


def _typed_as_text(word: str) -> bool:
    """Whether PyYAML reads the plain word as text, found without loading it: loading raised
    on a date that is no date (2021-13-45), and took 14 s for a 20,000-row import."""
    tag = _RESOLVER.resolve(yaml.ScalarNode, word, (True, False))  # type: ignore[no-untyped-call]
    return bool(tag == "tag:yaml.org,2002:str")


def _scalar(value: str) -> str:
    """A value as YAML that reads back as the same text, in PyYAML and in YAML 1.1 and 1.2
    readers alike (quoted unless plainly safe)."""
    if (_PLAIN.fullmatch(value) and not value.endswith(" ")
            and not _OTHER_READERS.fullmatch(value) and _typed_as_text(value)):
        return value
    return json.dumps(value, ensure_ascii=False)  # JSON strings are YAML double-quoted ones
