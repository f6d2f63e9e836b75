"""CSV cells a spreadsheet shows as text: the one rule for every CSV this program writes.

A list row, a web sign-up's name or a relay's answer is typed by someone else; a cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to Excel and
LibreOffice (``=HYPERLINK(...)`` sends the sheet's data away when clicked). OWASP's advice
("CSV Injection") is to write such a cell with a leading ``'``, which spreadsheets read as
"this is text" and do not show. ``subscribers import`` takes the ``'`` off again
(``unquote``), so an export imports back unchanged. JSON output is never altered.
"""

from __future__ import annotations

from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTED = tuple("'" + start for start in FORMULA_STARTS)


def safe_cell(value: object) -> object:
    """``value`` as a cell: text that starts like a formula gets a leading ``'``; numbers,
    which this program wrote itself, and ``None`` (an empty cell) are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def safe_row(values: Iterable[object]) -> list[object]:
    return [safe_cell(value) for value in values]


def unquote(cell: str) -> str:
    """A cell ``safe_cell`` protected, back to what it was; any other cell as it is."""
    return cell[1:] if cell.startswith(_QUOTED) else cell
