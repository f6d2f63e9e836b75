"""JSON written as it is produced: ``json.dumps(value, ensure_ascii=False, indent=...)`` in
pieces, where any iterator in ``value`` is read one item at a time and written as a list.

A report of 200,000 recipients built as one list and one string held both in memory at
once (half a gigabyte); the pieces here never hold more than one item. The text is the
same, byte for byte, as ``json.dumps`` of the materialised value: a JSON string never holds
a raw line break, so indenting a piece means indenting each of its lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import chain
from typing import Any

_SCALAR = json.JSONEncoder(ensure_ascii=False).encode


def iter_json(value: Any, *, indent: int = 1, level: int = 0) -> Iterator[str]:
    """The pieces of ``json.dumps(value, ensure_ascii=False, indent=indent)``; ``level`` is
    the depth ``value`` sits at in an enclosing document. Keys are strings."""
    inner = "\n" + " " * (indent * (level + 1))
    close = "\n" + " " * (indent * level)
    if isinstance(value, dict):
        if not value:
            yield "{}"
        elif all(isinstance(item, _SCALARS) for item in value.values()):  # a row: one piece
            yield "{" + ",".join(inner + _SCALAR(key) + ": " + _SCALAR(item)
                                 for key, item in value.items()) + close + "}"
        else:
            for n, (key, item) in enumerate(value.items()):
                yield ("{" if n == 0 else ",") + inner + _SCALAR(key) + ": "
                yield from iter_json(item, indent=indent, level=level + 1)
            yield close + "}"
    elif isinstance(value, (list, tuple, Iterator)):
        items = iter(value)
        first = next(items, _END)
        if first is _END:
            yield "[]"
            return
        for n, item in enumerate(chain((first,), items)):
            yield ("[" if n == 0 else ",") + inner
            yield from iter_json(item, indent=indent, level=level + 1)
        yield close + "]"
    else:
        yield _SCALAR(value)


_END = object()
_SCALARS = (str, int, float, bool, type(None))
