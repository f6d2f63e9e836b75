"""CSV records with the line each one starts on, for messages that name the line to fix."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator


def numbered(reader: Iterator[list[str]], next_line: Callable[[], int],
             fail: Callable[[int, csv.Error], Exception]) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each record; a record may span lines (a quoted newline), so
    its line is asked of ``next_line`` before it is read. A malformed record raises
    ``fail(line, error)`` instead of the csv module's message without a line."""
    while True:
        start = next_line()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise fail(start, exc) from None
        yield start, cells
