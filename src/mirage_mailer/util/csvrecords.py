"""CSV records with the line each one starts on, for messages that name the line to fix;
and the one mistake the csv module reads without a word: a quote left open."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator

from mirage_mailer.util.errors import Problem

# A quoted cell may hold line breaks (a postal address, a note): such a row is a row problem
# (a line break cannot go into a header) and the rows around it are read as usual. A cell
# over this many lines is taken for a quote left open that a later stray quote closed: the
# rows it swallowed would vanish without a word. Refusing it costs no reader (that row could
# never be sent) and real multi-line cells (an address, a short note) stay far below it.
MAX_CELL_LINES = 20


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


def line_breaks(text: str) -> int:
    """Line ends as the csv module ends lines: ``\\r\\n``, ``\\n`` or a lone ``\\r``."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def quote_problem(where: str, cells: list[str], start: int, *,
                  at_end: bool) -> Problem | None:
    """Why a record that begins on line ``start`` cannot be read, or None when it can.

    ``at_end``: the file ended inside this record, which only a quote still open does (the
    csv module, when not strict, then ends the cell at the end of the file: every later row
    becomes part of this one and is neither sent nor recorded). Otherwise a quoted cell over
    ``MAX_CELL_LINES`` lines is refused. Callers ask only of records that ended the file or
    span that many lines: a cell's line breaks are raw in it, so the line its quote opens on
    is ``start`` plus the breaks of the cells before it."""
    line = last = start
    breaks = opened = 0  # the cell with the most line breaks, and where it opens
    for cell in cells:
        here = line_breaks(cell)
        if here > breaks:
            breaks, opened = here, line
        last = line
        line += here
    if at_end:
        return Problem(where, last, "a quote opens on this line and is never closed, so "
                       "every line after it would be read as one cell",
                       "close the quote where the value ends, or remove it")
    if breaks >= MAX_CELL_LINES:
        return Problem(where, opened, f"the quoted cell that opens on this line runs over "
                       f"{breaks + 1} lines, to line {opened + breaks} (at most "
                       f"{MAX_CELL_LINES} are taken: is its closing quote missing?)",
                       "close the quote where the value ends; a value with line breaks "
                       "cannot be sent anyway")
    return None


_SEPARATORS = {",": "a comma", ";": "a semicolon", "\t": "a tab"}


def row_width(columns: list[str]) -> int:
    """How many cells a row may fill: up to the header's last named column. A spreadsheet
    pads every line, the header too, with empty cells out to its widest row; those trailing
    unnamed columns hold nothing a row may put there."""
    return max((i + 1 for i, column in enumerate(columns) if column), default=0)


def extra_cells(cells: list[str], columns: list[str], width: int,
                delimiter: str) -> tuple[str, str] | None:
    """(message, hint) when a value sits beyond the header's last named column, else None.

    Such a value has no column to go to, and the values before it are in the wrong columns:
    an unquoted separator inside a value (``Dvořák, Antonín``, the most common hand-edited
    CSV mistake) moves every later value one column to the right, so the reader would be
    greeted by half their name and the last value dropped. Empty cells past the header (a
    separator at the end of the line, a spreadsheet's padding) move and drop nothing: they
    are fine, as fewer cells than the header are (the missing values are empty). Callers ask
    only of rows longer than ``width``."""
    values = len(cells)
    while values > width and not cells[values - 1].strip():
        values -= 1
    if values <= width:
        return None
    named = "named columns" if width < len(columns) else "columns"
    sep = _SEPARATORS.get(delimiter, f"'{delimiter}'")
    return (f"{values} values but the header has {width} {named}",
            f"put a value with {sep} in double quotes, or name the extra column in the header")
