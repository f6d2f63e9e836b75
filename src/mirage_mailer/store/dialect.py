"""One set of SQL for both backends: the connection surface the mixins see, and the few
rewrites that turn the store's SQLite-flavoured SQL into PostgreSQL's.

The mixins write SQL once, in the common subset of both dialects (``ON CONFLICT DO NOTHING``,
``count(CASE ...)``, aliased subqueries), with SQLite's ``?``/``?N`` placeholders. What SQLite
accepts but PostgreSQL spells differently is rewritten here, once per distinct text (cached):

* ``?`` and ``?N`` become ``$1``, ``$2``, ... in order of appearance, and the parameters are
  reordered to match, so a parameter used twice is sent twice and one not used is not sent
  (PostgreSQL cannot type a parameter the statement never mentions);
* ``x IS NOT y`` (SQLite's null-safe inequality) becomes ``x IS DISTINCT FROM y``, which
  SQLite understands only from 3.39 on (Ubuntu 22.04's Python has 3.37): ``IS NOT NULL``,
  ``IS NOT TRUE`` and ``IS NOT DISTINCT FROM`` stay as they are;
* ``temp.name`` (SQLite's temporary schema) becomes ``pg_temp.name``.

String literals, quoted names and ``--`` comments are left alone. ``INSERT OR IGNORE`` is
refused (write ``ON CONFLICT DO NOTHING``, which both run), so nothing is silently different.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any, Protocol

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class Cursor(Protocol):
    """What the mixins read from a statement: rows and the number of rows changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The statement surface both backends give the mixins (sqlite3's own names)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...


_TOKENS = re.compile(
    r"""(?P<skip>'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*)"""
    r"|\?(?P<number>\d*)"
    r"|(?P<isnot>\bIS\s++NOT\s++)(?!NULL\b|TRUE\b|FALSE\b|UNKNOWN\b|DISTINCT\b)"
    r"|(?<![\w.\"])(?P<temp>temp\.)"
    r"|(?P<orverb>\bINSERT\s+OR\s+\w+)",
    re.IGNORECASE,
)


@lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, tuple[int, ...] | None]:
    """PostgreSQL's text of ``sql`` and the order of its parameters (indexes into the
    caller's sequence; None: as given, for plain ``?`` placeholders in order)."""
    order: list[int] = []
    highest = 0
    numbered = False

    def swap(match: re.Match[str]) -> str:
        nonlocal highest, numbered
        if match.group("skip") is not None:
            return match.group(0)
        if match.group("isnot") is not None:
            return "IS DISTINCT FROM "
        if match.group("temp") is not None:
            return "pg_temp."
        if match.group("orverb") is not None:
            raise ValueError(f"{match.group(0)!r} is SQLite only: write ON CONFLICT DO NOTHING")
        number = match.group("number")
        if number:
            numbered = True
            index = int(number)
        else:
            index = highest + 1
        highest = max(highest, index)
        order.append(index - 1)
        return f"${len(order)}"

    text = _TOKENS.sub(swap, sql)
    if not numbered and order == list(range(len(order))):
        return text, None
    return text, tuple(order)


def arrange(order: tuple[int, ...] | None, parameters: Sequence[Any]) -> Sequence[Any]:
    """The parameters in the order of ``translate``'s placeholders."""
    if order is None:
        return parameters
    return [parameters[i] for i in order]


def arrange_many(order: tuple[int, ...] | None,
                 seq: Iterable[Sequence[Any]]) -> Iterable[Sequence[Any]]:
    if order is None:
        return seq
    return ([params[i] for i in order] for params in seq)
