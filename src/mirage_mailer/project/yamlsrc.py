"""YAML loading that remembers line numbers, so every problem can say ``path:line``.

PyYAML's safe constructor drops the marks; this loader keeps them on the mappings and
sequences it builds (``LineDict.key_line``, ``LineList.item_line``) and reports duplicate keys,
which plain ``safe_load`` silently overwrites.

YAML 1.1 turns words into other things: ``no`` (Norwegian) into false, ``0123`` (a phone
number) into 83, ``1.10`` into 1.1. Settings want that (``concurrency: 4``), text does not,
so keys are always the text as written, a mapping or sequence also keeps the text as written
of each such value (``LineDict.text``), and lists are read with ``text_values=True``: every
value is the text as written, and only an empty value, ``~`` or ``null`` means none.

Our files are written by hand, so the loader refuses what no newsletter needs and what makes a
parser hang or crash: aliases (``*name``, the "billion laughs"), nesting deeper than
``MAX_DEPTH``, collections as keys, control characters, numbers too long to be real, and files
over a size limit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mirage_mailer.project.yamlwords import explain
from mirage_mailer.util.errors import Collector, InputError, Problem, display_path, shorten

MAX_DEPTH = 50
MAX_NUMBER_CHARS = 40  # a config number longer than this is a typo or an attack
CONFIG_MAX_BYTES = 256_000  # mirage.yaml, issue.yaml: about 2 KB each in real life
FRONT_MATTER_MAX_CHARS = 64_000  # the pure-Python parser needs ~1 s for 100 KB
ARTICLE_MAX_BYTES = 5_000_000
LIST_MAX_BYTES = 50_000_000  # YAML lists; CSV lists stream with a per-field limit
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")


class LineDict(dict[Any, Any]):
    """A mapping that knows the line of itself and of each key (1-based)."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[Any, int] = {}
        self.written: dict[Any, str] = {}  # key -> the text of a plain value YAML typed

    def key_line(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)

    def text(self, key: Any) -> str | None:
        """The value as text, as written: ``no``, not false; ``0123``, not 83 (None for a
        missing or null value, a mapping or a list)."""
        return _as_written(self.get(key), self.written.get(key))


class LineList(list[Any]):
    """A sequence that knows the line of itself and of each item (1-based)."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.item_lines: list[int] = []
        self.written: dict[int, str] = {}  # index -> the text of a plain value YAML typed

    def item_line(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line

    def text(self, index: int) -> str | None:
        """The item as text, as written (see ``LineDict.text``)."""
        return _as_written(self[index], self.written.get(index))


def _as_written(value: Any, written: str | None) -> str | None:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, dict | list):
        return None
    return written if written is not None else str(value)


def _typed_plain(node: yaml.Node) -> str | None:
    """The source text of a plain scalar that YAML made something other than text."""
    if (isinstance(node, yaml.ScalarNode) and node.style is None
            and node.tag != "tag:yaml.org,2002:str"):
        return str(node.value)
    return None


class _Refused(Exception):
    """Something our YAML files never need, at a place in the file."""

    def __init__(self, mark: yaml.Mark | None, message: str, hint: str) -> None:
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else None
        self.message, self.hint = message, hint


class _Loader(yaml.SafeLoader):
    duplicates: list[tuple[Any, int, int]]  # key, its line, the line it was first at
    depth: int = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """No aliases, bounded depth: composing is recursive and aliases multiply."""
        mark: yaml.Mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            raise _Refused(mark, "YAML aliases (*name) are not allowed",
                           "write the value out in full")
        if self.depth >= MAX_DEPTH:
            raise _Refused(mark, f"YAML nested more than {MAX_DEPTH} levels deep",
                           "flatten the structure")
        self.depth += 1
        try:
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self.depth -= 1


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Refused(key_node.start_mark, "a list or mapping cannot be a key",
                           "keys are plain names followed by ':'")
        if key_node.tag == "tag:yaml.org,2002:merge":
            raise _Refused(key_node.start_mark, "merge keys (<<) are not allowed",
                           "write the keys out in full")
        # a key is a name as written: 'no:' (Norwegian) stays "no", never False
        key = (key_node.value if key_node.style is None
               else loader.construct_object(key_node, deep=True))
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise _Refused(key_node.start_mark, "a key must be a plain name",
                           "keys are plain names followed by ':'")
        line = key_node.start_mark.line + 1
        if key in result:
            loader.duplicates.append((key, line, result.key_lines[key]))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
        if (written := _typed_plain(value_node)) is not None:
            result.written[key] = written
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList()
    result.line = node.start_mark.line + 1
    for item in node.value:
        if (written := _typed_plain(item)) is not None:
            result.written[len(result)] = written
        result.append(loader.construct_object(item, deep=True))
        result.item_lines.append(item.start_mark.line + 1)
    return result


def _construct_timestamp_as_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    """Keep dates as text: we parse them ourselves, with time zones and clear errors."""
    return str(loader.construct_scalar(node))


def _construct_number(loader: _Loader, node: yaml.ScalarNode) -> Any:
    """Numbers of sane length only: a 5,000-digit integer is no setting (and int() refuses)."""
    if len(str(node.value)) > MAX_NUMBER_CHARS:
        raise _Refused(node.start_mark, f"number longer than {MAX_NUMBER_CHARS} characters",
                       "write a real value, or quote it if it is text")
    if node.tag.endswith(":int"):
        return loader.construct_yaml_int(node)
    return loader.construct_yaml_float(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp_as_text)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_number)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_number)


class _TextLoader(_Loader):
    """Every plain value is text as written; only an empty value, ``~`` or ``null`` is none
    (as YAML 1.2 has it). Merge keys stay recognised, to be refused."""


_TextLoader.yaml_implicit_resolvers = {}  # its own table, none of SafeLoader's
_TextLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_TextLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


def check_control_characters(text: str, path: Path, first_line: int = 1) -> None:
    """NUL and other control characters have no place in a config or an article."""
    match = CONTROL.search(text)
    if match:
        line = text.count("\n", 0, match.start()) + first_line
        raise InputError(Problem(display_path(path), line,
                                 f"control character U+{ord(match.group()):04X} in the file",
                                 "delete it; save the file as plain UTF-8 text"))


def parse_yaml(text: str, path: Path, *, first_line: int = 1, text_values: bool = False) -> Any:
    """Parse YAML text; syntax errors and duplicate keys become ``InputError`` with a line.
    ``text_values``: every plain value is the text as written (subscriber lists)."""
    check_control_characters(text, path, first_line)
    loader: _Loader | None = None
    try:
        loader = (_TextLoader if text_values else _Loader)(text)  # the reader checks
        # characters already here
        loader.duplicates = []
        data = loader.get_single_data()
    except _Refused as exc:
        line = None if exc.line is None else exc.line + first_line - 1
        raise InputError(Problem(display_path(path), line, exc.message, exc.hint)) from None
    except yaml.MarkedYAMLError as exc:
        words = explain(exc, text)
        if words is not None:
            raise InputError(Problem(display_path(path), words.line + first_line, words.message,
                                     words.hint)) from None
        mark = exc.problem_mark or exc.context_mark
        line = (mark.line + first_line) if mark else None
        reason = shorten(exc.problem or exc.context or "invalid YAML")
        raise InputError(
            Problem(
                display_path(path),
                line,
                f"YAML syntax error: {reason}",
                "check indentation, colons and quotes on this line",
            )
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(Problem(display_path(path), None, f"YAML error: {shorten(str(exc))}")
                         ) from None
    except (RecursionError, MemoryError, ValueError, TypeError) as exc:  # last line of defence
        raise InputError(Problem(display_path(path), None,
                                 f"YAML cannot be read: {shorten(str(exc) or type(exc).__name__)}",
                                 "simplify this file")) from None
    finally:
        if loader is not None:
            loader.dispose()
    if loader.duplicates:
        problems = [
            Problem(
                display_path(path),
                line + first_line - 1,
                f"key '{shorten(str(key))}' appears twice, also at line "
                f"{first + first_line - 1}",
                "keep only one of them",
            )
            for key, line, first in loader.duplicates
        ]
        raise InputError(problems)
    if first_line != 1:
        _shift_lines(data, first_line - 1)
    return data


def _shift_lines(data: Any, offset: int) -> None:
    if isinstance(data, LineDict):
        data.line += offset
        data.key_lines = {k: v + offset for k, v in data.key_lines.items()}
        for value in data.values():
            _shift_lines(value, offset)
    elif isinstance(data, LineList):
        data.line += offset
        data.item_lines = [v + offset for v in data.item_lines]
        for value in data:
            _shift_lines(value, offset)


def read_text(path: Path, max_bytes: int = CONFIG_MAX_BYTES) -> str:
    """Read UTF-8 text (with or without BOM); unreadable files become one clear problem."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(Problem(
                display_path(path), None,
                f"file is {size:,} bytes; the limit is {max_bytes:,}",
                "this is not a file you wrote by hand: check the path"))
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            Problem(display_path(path), None, "file not found", "create it or fix the path")
        ) from None
    except OSError as exc:
        raise InputError(
            Problem(display_path(path), None, f"cannot read file: {exc.strerror}")
        ) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            Problem(
                display_path(path),
                line,
                "not valid UTF-8",
                "save the file as UTF-8 (in your editor: 'Save with encoding', UTF-8)",
            )
        ) from None


def load_yaml_file(path: Path, max_bytes: int = CONFIG_MAX_BYTES, *,
                   text_values: bool = False) -> Any:
    """Read and parse one YAML file (``text_values``: see ``parse_yaml``)."""
    return parse_yaml(read_text(path, max_bytes), path, text_values=text_values)


def check_keys(
    data: LineDict,
    path: Path,
    *,
    allowed: set[str],
    required: set[str],
    problems: Collector,
    where: str = "",
    ignore: frozenset[str] = frozenset(),
) -> None:
    """Report unknown and missing keys of one mapping, each on its own line."""
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in allowed and str(key).lower() not in ignore:
            known = ", ".join(sorted(allowed))
            problems.add(
                path,
                data.key_line(key),
                f"unknown key '{shorten(prefix + str(key))}'",
                f"known keys here: {known}",
            )
    for key in sorted(required - set(data)):
        problems.add(path, data.line, f"missing required key '{prefix}{key}'", f"add '{key}:'")
