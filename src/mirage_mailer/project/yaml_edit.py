"""Edit a YAML list as text in one pass: append entries after the last, or delete entries.

The file is never re-dumped (that would lose the comments and the layout): its lines are
copied to the temporary file that replaces it (``list_edit._replace``), the new entries
written in after the last entry's last line, or a deleted entry's lines left out. Where the
entries are comes from one read of them (``yamlrows``; the caller's own read when it just made
one of the unchanged file, see ``Shape``), and the lines are matched to them as written: an
item is a ``-`` at the first item's column. A layout where the two disagree is refused.

Before the file is replaced, each edited stretch is read again with the ``subscribers:`` line
in front of it (the last entry, the new ones and all that follows; a deleted entry's
neighbours) and compared with what was meant: the rest of the file is byte for byte what was
read, so an edit that changes any entry it is not about is refused and nothing is written.
Memory stays flat in the list's length: lines stream through, the new entries are compared
by a digest, and only the edited stretches are held.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import IO, Any

from mirage_mailer.project.list_edit import BOM, FIELD_KEY, _replace, _scalar, _unusable
from mirage_mailer.project.lists import column_name
from mirage_mailer.project.yamlrows import Entry, Shape, entries, file_stat, text_entries
from mirage_mailer.project.yamlsrc import LIST_MAX_BYTES
from mirage_mailer.util.errors import InputError, shorten

_CHUNK = 1 << 16
_PIECE_LINES = 5_000
_PLAIN_KEY = re.compile(r"\s*subscribers\s*:\s*")
BEFORE, KEY, GAP, ITEM, INSIDE, AFTER = range(6)  # what a line is, for the edit


def append(path: Path, given: Iterable[dict[str, str]], *, dry_run: bool,
           shape: Shape | None = None) -> None:
    """Add ``given`` after the last entry (``list_edit.append_rows``)."""
    shape = _scanned(path, shape)
    rows = iter(given)
    first = next(rows, None)
    edit = _Append(path, shape, [] if first is None else chain([first], rows))
    if first is None:  # nothing to add: the layout is checked all the same, as before
        with open(os.devnull, "wb") as nowhere:
            edit.walk_only(nowhere)
        return
    _replace(path, edit.write, dry_run)


def remove(path: Path, key: str) -> list[int]:
    """Delete every entry whose address is ``key``; the lines they started at."""
    _check_size(path)
    shape = Shape()
    gone: dict[int, Entry | None] = {}  # index of a deleted entry -> the kept one before it
    kept: Entry | None = None
    for index, entry in enumerate(entries(path, shape)):
        if _address(entry[1]) == key:
            gone[index] = kept
        else:
            kept = entry
    edit = _Remove(path, shape, gone)
    if not gone:  # nothing to delete: the layout is checked all the same, as before
        with open(os.devnull, "wb") as nowhere:
            edit.write(nowhere)
        return []
    _replace(path, edit.write)
    return edit.lines


def _check_size(path: Path) -> None:
    found = file_stat(path)
    if found is not None and found[1] > LIST_MAX_BYTES:
        raise _unusable(path, None, f"file is {found[1]:,} bytes; the limit is "
                        f"{LIST_MAX_BYTES:,}", "split the list")


def _scanned(path: Path, shape: Shape | None) -> Shape:
    """The caller's read of the file when it is complete and the file unchanged since (the
    lock keeps our own edits out; a person's save in between changes the stat), else one."""
    if shape is not None and shape.complete and shape.stat is not None \
            and shape.stat == file_stat(path):
        return shape
    _check_size(path)
    shape = Shape()
    for _ in entries(path, shape):
        pass
    return shape


def _address(entry: Any) -> str:
    if isinstance(entry, str):
        return entry.strip().lower()
    if isinstance(entry, dict):
        for key, value in entry.items():
            if column_name(str(key)) == "email" and value is not None:
                return str(value).strip().lower()
    return ""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _lines(path: Path, bom: bool) -> Iterator[str]:
    """The file's lines as ``str.splitlines`` cuts them (as YAML counts lines), a chunk at a
    time, without the BOM."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    carry = ""
    try:
        with open(path, "rb") as raw:
            if bom:
                raw.read(len(BOM))
            while True:
                data = raw.read(_CHUNK)
                parts = (carry + decoder.decode(data, final=not data)).splitlines(True)
                carry = parts.pop() if data and parts else ""  # may go on in the next chunk
                yield from parts
                if not data:
                    return
    except UnicodeDecodeError:
        raise _unusable(path, None, "not valid UTF-8", "save the file as UTF-8") from None
    except OSError as exc:
        raise _unusable(path, None, f"cannot read file: {exc.strerror}") from None


def _has_bom(path: Path) -> bool:
    try:
        with open(path, "rb") as raw:
            return raw.read(len(BOM)) == BOM
    except OSError:
        return False  # reading the lines says why


def _layout_refused(path: Path, shape: Shape) -> InputError:
    return _unusable(path, shape.key_line, "this layout of 'subscribers:' cannot be edited in "
                     "place", "write each entry as '- email: ...' with its keys below")


def _mismatch(path: Path, shape: Shape) -> InputError:
    return _unusable(path, shape.key_line, "the list could not be edited without changing "
                     "other entries; nothing was written", "edit this file by hand")


@dataclass
class _Walk:
    """The file's lines, each with what it is (``BEFORE`` the list, the ``subscribers:`` line,
    a blank or comment ``GAP`` in the list, an ``ITEM``'s first line, a line ``INSIDE`` an
    item, ``AFTER`` the list). Items are the lines with a ``-`` at the first item's column;
    there must be as many as the read found entries."""

    path: Path
    shape: Shape
    bom: bool = False
    newline: str = "\n"
    dash: int = -1  # the items' column
    first_item: str = ""  # the first item's line, for the column of its keys

    def __post_init__(self) -> None:
        self.bom = _has_bom(self.path)

    def lines(self) -> Iterator[tuple[int, str]]:
        key, first = self.shape.key_line - 1, self.shape.first_line - 1
        held: list[str] = []  # lines between 'subscribers:' and the first item
        ended = False
        items = 0
        for index, line in enumerate(_lines(self.path, self.bom)):
            if index == 0:
                self.newline = "\r\n" if line.endswith("\r\n") else "\n"
            if index < key:
                yield BEFORE, line
            elif index == key:
                if self.shape.count and not _PLAIN_KEY.fullmatch(line.split("#", 1)[0]):
                    raise _unusable(self.path, key + 1, "'subscribers:' is written on one "
                                    "line ([...])", "write one '- email: ...' entry per line "
                                    "below 'subscribers:'")
                ended = not self.shape.count
                self.dash = _indent(line) + 2
                yield KEY, line
            elif ended:
                yield AFTER, line
            elif index < first:
                held.append(line)
            else:
                if index == first:
                    if not line.lstrip().startswith("-"):
                        raise _layout_refused(self.path, self.shape)
                    self.dash, self.first_item = line.index("-"), line
                for each in (*held, line):
                    kind = self._kind(each, ended)
                    ended = kind == AFTER
                    items += kind == ITEM
                    yield kind, each
                held.clear()
        if items != self.shape.count or held:
            raise _layout_refused(self.path, self.shape)

    def _kind(self, line: str, ended: bool) -> int:
        if ended:
            return AFTER
        if not _content(line):
            return GAP
        if _indent(line) == self.dash and line.lstrip().startswith("-"):
            return ITEM
        return AFTER if _indent(line) <= self.dash else INSIDE


def _window(path: Path, shape: Shape, text: str) -> Iterator[Any]:
    """The entries of an edited stretch, read with the ``subscribers:`` line before it."""
    try:
        yield from text_entries(text, path)
    except InputError:
        raise _mismatch(path, shape) from None


class _Digest:
    """How many values, and a digest of their text: many entries compared in flat memory."""

    def __init__(self) -> None:
        self.count = 0
        self.hash = hashlib.blake2b(digest_size=32)

    def add(self, value: Any) -> None:
        self.count += 1
        self.hash.update(repr(value).encode("utf-8", "surrogatepass") + b"\0")

    def same(self, other: _Digest) -> bool:
        return (self.count, self.hash.digest()) == (other.count, other.hash.digest())


class _Append:
    """New entries after the last entry's last line (after ``subscribers:`` when it has
    none); blank and comment lines after that line stay after the new entries."""

    def __init__(self, path: Path, shape: Shape, given: Iterable[dict[str, str]]) -> None:
        self.path, self.shape, self.given = path, shape, given
        self.walk = _Walk(path, shape)
        self.expected, self.read = _Digest(), _Digest()
        self.size = shape.stat[1] if shape.stat is not None else 0
        self.key = ""  # the 'subscribers:' line, read with each stretch
        self.last_checked = shape.last is None

    def write(self, out: IO[bytes]) -> None:
        walk, count = self.walk, self.shape.count
        if walk.bom:
            out.write(BOM)
        window: list[str] = []  # the last entry, the new ones, the rest: read in pieces
        held: list[str] = []  # blank and comment lines in the last entry, not yet written
        last = ""  # the line the new entries follow
        items = 0
        added = False
        for kind, line in walk.lines():
            if kind == KEY:
                if not count:  # 'subscribers: []' becomes the block's first line
                    written = len(line.encode("utf-8"))
                    comment = line.split("#", 1)[1] if "#" in line else ""
                    tail = f"  #{comment.rstrip(chr(13) + chr(10))}" if comment else ""
                    line = f"{' ' * _indent(line)}subscribers:{tail}{walk.newline}"
                    self.size += len(line.encode("utf-8")) - written
                self.key = line
                out.write(line.encode("utf-8"))
                if not count:
                    self._add(out, window)
                    added = True
                continue
            items += kind == ITEM
            if count and items == count and not added:  # in the last entry
                if kind == GAP:
                    held.append(line)
                    continue
                if kind == AFTER:
                    self._close(out, window, last)
                    added = True
                else:
                    last = line
                self._flush(out, window, held)
                window.append(line)
                out.write(line.encode("utf-8"))
                continue
            if added:
                window.append(line)
            out.write(line.encode("utf-8"))
        if not added:
            self._close(out, window, last)
            self._flush(out, window, held)
        self._check(window)
        if not self.read.same(self.expected):
            raise _mismatch(self.path, self.shape)

    def walk_only(self, out: IO[bytes]) -> None:
        for _, line in self.walk.lines():
            out.write(line.encode("utf-8"))

    @staticmethod
    def _flush(out: IO[bytes], window: list[str], held: list[str]) -> None:
        for line in held:
            out.write(line.encode("utf-8"))
        window.extend(held)
        held.clear()

    def _close(self, out: IO[bytes], window: list[str], last: str) -> None:
        if last and not last.endswith(("\n", "\r")):  # the file's last line: end it
            out.write(self.walk.newline.encode("utf-8"))
            window[-1] += self.walk.newline
            self.size += len(self.walk.newline)
        self._add(out, window)

    def _add(self, out: IO[bytes], window: list[str]) -> None:
        walk, plain = self.walk, self.shape.count > 0 and self.shape.plain
        key_col = walk.dash + 2
        if walk.first_item:  # as the first entry has it: "- email" or "-   email"
            rest = walk.first_item[walk.dash + 1:]
            key_col = walk.dash + 1 + max(1, len(rest) - len(rest.lstrip(" ")))
        for row in self.given:
            bad = [k for k in row if not FIELD_KEY.fullmatch(k)]
            if bad:
                raise _unusable(self.path, None, f"'{shorten(bad[0])}' cannot be a key of a "
                                "list entry", "use lowercase letters, digits and '_'")
            self.expected.add(row["email"] if plain and set(row) == {"email"} else
                              {k: v for k, v in row.items() if v})
            for line in _entry(walk.dash, key_col, plain, row, walk.newline):
                data = line.encode("utf-8")
                self.size += len(data)
                out.write(data)
                window.append(line)
            if self.size > LIST_MAX_BYTES:
                raise _unusable(self.path, None, f"the list would pass {LIST_MAX_BYTES:,} "
                                "bytes", "use a CSV list for this many readers")
            if len(window) >= _PIECE_LINES:  # a long import is read back a piece at a time
                self._check(window)

    def _check(self, window: list[str]) -> None:
        """Read a stretch back (from an item's start: each parses as in the file)."""
        got = _window(self.path, self.shape, self.key + "".join(window))
        window.clear()
        if not self.last_checked:
            if self.shape.last is None or next(got, None) != self.shape.last[1]:
                raise _mismatch(self.path, self.shape)
            self.last_checked = True
        for entry in got:
            self.read.add(entry)


class _Remove:
    """Each deleted entry's lines, from its first to its last that is not blank or a
    comment; the stretch from the kept entry before it to the next kept one is read again."""

    def __init__(self, path: Path, shape: Shape, gone: dict[int, Entry | None]) -> None:
        self.path, self.shape, self.gone = path, shape, gone
        self.walk = _Walk(path, shape)
        self.lines: list[int] = []

    def write(self, out: IO[bytes]) -> None:
        walk, gone = self.walk, self.gone
        if walk.bom:
            out.write(BOM)
        key = ""
        kept: list[str] = []  # the lines so far of the last kept entry
        window: list[str] | None = None  # open from a kept entry over deleted ones
        windows: list[tuple[Entry | None, str]] = []
        before: Entry | None = None
        held: list[str] = []  # blank and comment lines of a deleted entry: kept if last
        index = -1
        skipping = False
        for number, (kind, line) in enumerate(walk.lines(), start=1):
            if kind == KEY:
                key = self._key_line(line) if len(gone) == self.shape.count else line
                out.write(key.encode("utf-8"))
                continue
            if kind == ITEM:
                index += 1
                if index in gone:
                    self.lines.append(number)
                    if window is None:
                        window, before = [*kept], gone[index]
                    self._flush(out, window, held)  # the last deleted entry's gaps stay
                    skipping = True
                    continue
                skipping = False
                self._flush(out, window, held)
                if window is not None:  # the stretch ends at the next kept entry
                    windows.append((before, key + "".join(window)))
                    window = None
                kept = [line]
                out.write(line.encode("utf-8"))
                continue
            if skipping:
                if kind == INSIDE:  # the deleted entry goes on: so do the gaps before
                    held = []
                    continue
                if kind == GAP:
                    held.append(line)
                    continue
                skipping = False  # AFTER
                self._flush(out, window, held)
            elif index >= 0:
                kept.append(line)
            if window is not None:
                window.append(line)
            out.write(line.encode("utf-8"))
        self._flush(out, window, held)
        if window is not None:
            windows.append((before, key + "".join(window)))
        for entry, text in windows:
            if list(_window(self.path, self.shape, text)) != ([] if entry is None else
                                                               [entry[1]]):
                raise _mismatch(self.path, self.shape)

    @staticmethod
    def _flush(out: IO[bytes], window: list[str] | None, held: list[str]) -> None:
        for line in held:
            out.write(line.encode("utf-8"))
        if window is not None:
            window.extend(held)
        held.clear()

    def _key_line(self, line: str) -> str:
        """An empty block would be null: say it is an empty sequence."""
        comment = line.split("#", 1)[1].rstrip("\r\n") if "#" in line else ""
        return (f"{' ' * _indent(line)}subscribers: []"
                f"{'  #' + comment if comment else ''}{self.walk.newline}")


def _entry(dash: int, key_col: int, plain: bool, row: dict[str, str],
           newline: str) -> list[str]:
    pad = " " * dash
    if plain and set(row) == {"email"}:
        return [f"{pad}- {_scalar(row['email'])}{newline}"]
    out = []
    for n, (key, value) in enumerate((k, v) for k, v in row.items() if v):
        lead = f"{pad}-{' ' * (key_col - dash - 1)}" if n == 0 else " " * key_col
        out.append(f"{lead}{key}: {_scalar(value)}{newline}")
    return out
