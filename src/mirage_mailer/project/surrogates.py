"""Lone surrogates in the text values of issue.yaml and front matter.

``"\\uD800"`` is a valid YAML escape, but the character it makes is half of a UTF-16 pair
that no charset can encode: a title holding one fails much later, while the message is
built, where it looked like a broken template. So every text value (and key) is checked
where it is written, with the words the subject's check uses (``headersafe``). An article
body cannot hold one: it is read as strict UTF-8, and Markdown turns ``&#xD800;`` into U+FFFD.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mirage_mailer.project.yamlsrc import LineDict, LineList
from mirage_mailer.util.errors import Collector
from mirage_mailer.util.headersafe import surrogate_problem

_HINT = "delete that \\u escape, half of a character's pair; write the character itself"


def check_surrogates(data: Any, path: Path, problems: Collector, *,
                     skip: frozenset[str] = frozenset()) -> bool:
    """Report every key and text value holding a lone surrogate, at its line; True if any.
    ``skip``: top-level keys another check already reads this way (``subject``)."""
    before = len(problems.problems)
    _walk(data, "", path, problems, skip)
    return len(problems.problems) > before


def _walk(data: Any, where: str, path: Path, problems: Collector,
          skip: frozenset[str]) -> None:
    if isinstance(data, LineDict):
        for key, value in data.items():
            name = f"{where}.{key}" if where else str(key)
            if not where and key in skip:
                continue
            _report(str(key), name, "key", data.key_line(key), path, problems)
            _report(value, name, "value", data.key_line(key), path, problems)
            _walk(value, name, path, problems, skip)
    elif isinstance(data, LineList):
        for index, item in enumerate(data):
            name = f"{where}[{index + 1}]"
            _report(item, name, "value", data.item_line(index), path, problems)
            _walk(item, name, path, problems, skip)


def _report(value: Any, name: str, part: str, line: int, path: Path,
            problems: Collector) -> None:
    bad = surrogate_problem(value) if isinstance(value, str) else None
    if bad:
        problems.add(path, line, f"'{name}' {'' if part == 'value' else 'key '}{bad}", _HINT)
