"""YAML loading that remembers line numbers, so every problem can say ``path:line``.

PyYAML's safe constructor drops the marks; this loader keeps them on the mappings and
sequences it builds (``LineDict.key_line``, ``LineList.item_line``) and reports duplicate keys,
which plain ``safe_load`` silently overwrites.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mirage_mailer.errors import Collector, InputError, Problem, display_path


class LineDict(dict[Any, Any]):
    """A mapping that knows the line of itself and of each key (1-based)."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[Any, int] = {}

    def key_line(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A sequence that knows the line of itself and of each item (1-based)."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.item_lines: list[int] = []

    def item_line(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _Loader(yaml.SafeLoader):
    duplicates: list[tuple[Any, int]]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result:
            loader.duplicates.append((key, line))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList()
    result.line = node.start_mark.line + 1
    for item in node.value:
        result.append(loader.construct_object(item, deep=True))
        result.item_lines.append(item.start_mark.line + 1)
    return result


def _construct_timestamp_as_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    """Keep dates as text: we parse them ourselves, with time zones and clear errors."""
    return str(loader.construct_scalar(node))


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp_as_text)


def parse_yaml(text: str, path: Path, *, first_line: int = 1) -> Any:
    """Parse YAML text; syntax errors and duplicate keys become ``InputError`` with a line."""
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = (mark.line + first_line) if mark else None
        reason = exc.problem or exc.context or "invalid YAML"
        raise InputError(
            Problem(
                display_path(path),
                line,
                f"YAML syntax error: {reason}",
                "check indentation, colons and quotes on this line",
            )
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(Problem(display_path(path), None, f"YAML error: {exc}")) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        problems = [
            Problem(
                display_path(path),
                line + first_line - 1,
                f"duplicate key '{key}'",
                "keep only one of them",
            )
            for key, line in loader.duplicates
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


def read_text(path: Path) -> str:
    """Read UTF-8 text (with or without BOM); unreadable files become one clear problem."""
    try:
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
                "save the file as UTF-8 (in a spreadsheet: 'CSV UTF-8')",
            )
        ) from None


def load_yaml_file(path: Path) -> Any:
    """Read and parse one YAML file."""
    return parse_yaml(read_text(path), path)


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
                f"unknown key '{prefix}{key}'",
                f"known keys here: {known}",
            )
    for key in sorted(required - set(data)):
        problems.add(path, data.line, f"missing required key '{prefix}{key}'", f"add '{key}:'")
