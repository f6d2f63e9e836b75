"""YAML subscriber lists read as a stream of entries, in flat memory and C speed.

``yamlsrc``'s loader composes the whole node tree in pure Python to keep line numbers: fine
for a 2 KB config, but about 1 ms and several KB per list row (a 20,000-row list took 27 s
and 165 MB to validate). A list is one shape, ``subscribers:`` and a sequence of entries of
plain values, so it is read here from libyaml's events, one entry at a time, with the lines
the events carry.

The events path takes only what it can answer for exactly as ``yamlsrc`` does: plain and
quoted scalars without tags or anchors, entries that are an address or a mapping of single
values, every key once, nothing libyaml takes that PyYAML refuses (``_lenient``). Anything else
(an alias, a tag, a nested value, a repeated key, a control character, bytes that are not
UTF-8, a syntax error, a second document) hands the file to ``yamlsrc``'s loader, which skips
the entries already given and goes on with the same answers, problems and lines included,
that a list always had. Without libyaml
(``yaml.__with_libyaml__`` false) every list takes that loader.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

import yaml

from mirage_mailer.project.yamlsrc import (
    CONTROL,
    LIST_MAX_BYTES,
    LineDict,
    LineList,
    load_yaml_file,
    parse_yaml,
)
from mirage_mailer.util.errors import InputError, Problem, display_path

LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))  # as yamlsrc._TextLoader resolves them
_CHUNK = 1 << 16
_HEADER_COMMENT = re.compile(r"[|>][-+]?[0-9]?[-+]?#")

Entry = tuple[int, Any]  # (the entry's line, 1-based; str | None | LineDict | ...)


@dataclass
class Shape:
    """What an edit of the file needs to know, gathered while the entries are read: the line
    of ``subscribers:``, how many entries there are, where the first starts, the last one,
    whether every entry is a plain address; and the file as it was (``stat``), so that an
    edit can tell whether it changed since."""

    stat: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) when reading began
    key_line: int = 0
    count: int = 0
    first_line: int = 0
    last: Entry | None = None
    plain: bool = True
    complete: bool = False  # every entry was read

    def add(self, entry: Entry) -> None:
        if not self.count:
            self.first_line = entry[0]
        self.count += 1
        self.last = entry
        if not isinstance(entry[1], str):
            self.plain = False


def file_stat(path: Path) -> tuple[int, int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns


class _Unusual(Exception):
    """Something the events path leaves to ``yamlsrc``'s loader."""


def _not_a_list(path: Path, line: int) -> InputError:
    return InputError(Problem(display_path(path), line, "list must have 'subscribers:' with a "
                              "sequence of entries", "write '- email: someone@example.org' "
                              "lines"))


def entries(path: Path, shape: Shape | None = None) -> Iterator[Entry]:
    """Every entry of the list's ``subscribers:`` with its line; raises ``InputError`` when
    the file cannot be used, as ``yamlsrc`` words it (some entries may come before that)."""
    shape = shape if shape is not None else Shape()
    shape.stat = file_stat(path)
    given = 0
    if LIBYAML and shape.stat is not None and shape.stat[1] <= LIST_MAX_BYTES:
        try:
            with open(path, "rb") as raw:
                for entry in _events(_Text(raw), shape):
                    shape.add(entry)
                    yield entry
                    given += 1
            shape.complete = True
            return
        except (_Unusual, yaml.YAMLError, OSError, UnicodeError, ValueError, TypeError,
                RecursionError):
            pass  # the loader below says what it is, or reads what the events path does not
    for entry in islice(_loaded(path, shape), given, None):
        shape.add(entry)
        yield entry
    shape.complete = True


def text_entries(text: str, path: Path) -> Iterator[Any]:
    """The entries of a list held as text (a stretch of an edited file), as ``entries``
    reads a file; none when the text is not a list; ``InputError`` as ``yamlsrc`` words it."""
    given = 0
    if LIBYAML and not CONTROL.search(text) and not _lenient(text):
        try:
            for _, entry in _events(text, Shape()):
                yield entry
                given += 1
            return
        except (_Unusual, yaml.YAMLError, ValueError, TypeError, RecursionError):
            pass
    data = parse_yaml(text, path, text_values=True)
    if isinstance(data, LineDict) and isinstance(data.get("subscribers"), LineList):
        yield from islice(data["subscribers"], given, None)


def _loaded(path: Path, shape: Shape) -> Iterator[Entry]:
    """The loader's way: the whole file composed, then its entries."""
    data = load_yaml_file(path, LIST_MAX_BYTES, text_values=True)
    if not isinstance(data, LineDict) or not isinstance(data.get("subscribers"), LineList):
        raise _not_a_list(path, data.line if isinstance(data, LineDict | LineList) else 1)
    shape.key_line = data.key_line("subscribers")
    rows: LineList = data["subscribers"]
    for index, entry in enumerate(rows):
        yield rows.item_line(index), entry


def _lenient(text: str) -> bool:
    """Whether libyaml might take what PyYAML refuses: a BOM at a line start (libyaml skips
    it), a tab (PyYAML takes it only inside a quoted or block value), a block value's
    ``|``/``>`` with a comment right after it."""
    return "\ufeff" in text or "\t" in text or _HEADER_COMMENT.search(text) is not None


class _Text:
    """The file for libyaml as ``yamlsrc.read_text`` reads it (UTF-8, a BOM first at most)
    and with its control-character check, a chunk at a time."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.done = False
        self.tail = ""  # the end of the last chunk, for a header cut between two

    def read(self, size: int) -> str:
        if self.done:
            return ""
        data = self.raw.read(max(size, _CHUNK))
        text = self.decoder.decode(data, final=not data)  # UnicodeDecodeError: not UTF-8
        self.done = not data
        if CONTROL.search(text) or _lenient(self.tail + text):
            raise _Unusual
        self.tail = text[-4:]
        return text


def _events(stream: _Text | str, shape: Shape) -> Iterator[Entry]:
    from yaml import cyaml  # its CParser exists only with libyaml

    parser: Any = cyaml.CParser(stream)  # type: ignore[attr-defined,arg-type]
    try:
        get: Callable[[], Any] = parser.get_event
        get()  # StreamStartEvent
        start = get()
        if type(start) is not yaml.DocumentStartEvent or start.version or start.tags:
            raise _Unusual
        top = get()
        if type(top) is not yaml.MappingStartEvent or top.anchor or top.tag:
            raise _Unusual
        keys: set[str] = set()
        while type(event := get()) is not yaml.MappingEndEvent:
            key = _key(event)
            if key in keys:
                raise _Unusual
            keys.add(key)
            if key != "subscribers":
                _value(get())  # a single value, or the loader's case
                continue
            shape.key_line = event.start_mark.line + 1
            opened = get()
            if type(opened) is not yaml.SequenceStartEvent or opened.anchor or opened.tag:
                raise _Unusual
            yield from _items(get)
        if "subscribers" not in keys:
            raise _Unusual
        get()  # DocumentEndEvent
        if type(get()) is not yaml.StreamEndEvent:  # another document: the loader refuses
            raise _Unusual
    finally:
        parser.dispose()


def _items(get: Callable[[], Any]) -> Iterator[Entry]:
    scalar, mapping = yaml.ScalarEvent, yaml.MappingStartEvent
    mapping_end, sequence_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
    while True:
        event = get()
        kind = type(event)
        if kind is mapping:
            if event.anchor or event.tag:
                raise _Unusual
            entry = LineDict()
            entry.line = line = event.start_mark.line + 1
            lines = entry.key_lines
            while type(key_event := get()) is not mapping_end:
                key = _key(key_event)
                if key in entry:  # the loader names every repeated key of the file
                    raise _Unusual
                entry[key] = _value(get())
                lines[key] = key_event.start_mark.line + 1
            yield line, entry
        elif kind is scalar:
            yield event.start_mark.line + 1, _value(event)
        elif kind is sequence_end:
            return
        else:
            raise _Unusual


def _key(event: Any) -> str:
    """A key as the loader takes it: the text as written; never ``<<`` (a merge key)."""
    if type(event) is not yaml.ScalarEvent or event.anchor or event.tag or (
            not event.style and event.value == "<<"):
        raise _Unusual
    value: str = event.value
    return value


def _value(event: Any) -> str | None:
    """A single value as text as written; an empty plain value, ``~`` or ``null`` is none."""
    if type(event) is not yaml.ScalarEvent or event.anchor or event.tag:
        raise _Unusual
    value: str = event.value
    if event.style:
        return value
    if value in _NULLS:
        return None
    if value == "<<":
        raise _Unusual
    return value
