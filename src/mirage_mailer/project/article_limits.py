"""Bounds on the Markdown of articles, checked before anything parses it.

Rendering an article is pure-Python Markdown (markdown-it-py), the nh3 cleaner (Rust, its
work grows with the square of raw HTML nesting) and inscriptis for the text part. Their cost
follows the number of Markdown elements, not bytes: a 0.2 MB table of 100,000 cells took
20 s, and some constructs cost the square of their count (markdown-it's smart quotes within
one paragraph: 20,000 unmatched quotes took 20 s). A clock cannot stop a C call, and a
budget measured after the fact only says the harm is done; so the work is kept small up
front. Every Markdown element needs a line break or one of a few marks (``* _ ` [ ] < > | !
& ~ \\ ' "``), so counting those bounds the elements, raw HTML nesting included, in one scan.

The limits are far above what a newsletter carries (the sample articles hold 16 to 50 marks;
this project's 140 KB design document 4,828) and keep the worst article at the limit to about
two seconds of CPU in two languages (10,000 list items or unmatched quotes, measured): a mail
longer than about 100 KB is cut off by Gmail before its end anyway, the EU disclaimer and the
unsubscribe link with it. Tables get their own count, since markdown-it gives a short row a
cell for every column (up to 65,536 cells from a few bytes), and raw HTML left open its own,
since html5ever reopens every open formatting element in each paragraph after it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from mirage_mailer.util.errors import Collector

if TYPE_CHECKING:
    from markdown_it.token import Token

MAX_BODY_CHARS = 100_000  # one article's body: about 15,000 words
MAX_MARKS = 10_000  # one article's Markdown marks (line breaks, table bars, ...)
MAX_TABLE_CELLS = 5_000  # columns x rows: a short row still gets every column's cell
MAX_OPEN_TAGS = 20  # raw HTML elements open at once (the cleaner reopens some per paragraph)
MAX_TAGS = 3 * MAX_MARKS  # tags in an article's clean HTML (Markdown makes ~2 a mark)
# what rendering an issue reads: every language shows every article, translated or not
MAX_ISSUE_CHARS = 2_000_000
MAX_ISSUE_MARKS = 10 * MAX_MARKS
MAX_ISSUE_CELLS = 10 * MAX_TABLE_CELLS
_MARKS = re.compile(r"[\n*_`\[\]<>|!&~\\'\"]")
_MARK_NAMES = {"\n": "line breaks", "|": "'|' (table cells)", "<": "'<' (HTML tags)",
               ">": "'>' (HTML tags or quotes)"}
_DELIMITER_ROW = frozenset("|-: \t>")  # a table's second row, also inside a quote
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*>")
# elements that never stay open (void), or that the next sibling closes (optional end tag)
_SHORT_LIVED = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr", "p", "li", "dt", "dd", "td", "th", "tr", "thead", "tbody",
    "tfoot", "option", "optgroup", "rb", "rt", "rtc", "rp", "colgroup", "caption", "html",
    "head", "body",
})
_HINT = ("a newsletter article needs far fewer: shorten it, split it into several articles, "
         "or link to the full text on the website")


def marks(body: str) -> int:
    """How many Markdown marks ``body`` holds (the unit of rendering work)."""
    return len(_MARKS.findall(body))


def table_cells(body: str) -> tuple[int, int]:
    """(cells of the Markdown tables in ``body``, index of the line where they pass
    ``MAX_TABLE_CELLS``, or -1): a table has as many columns as its delimiter row
    (``|---|---|``), every row gets them all, and its rows run to the next blank line."""
    lines = body.split("\n")
    total = 0
    passed = -1
    index = 1
    while index < len(lines):
        line = lines[index]
        if "|" not in line or "-" not in line or not set(line) <= _DELIMITER_ROW:
            index += 1
            continue
        columns = line.strip(" \t>").strip("|").count("|") + 1
        end = index + 1
        while end < len(lines) and lines[end].strip(" \t>"):
            end += 1
        total += columns * (end - index)  # the header row and the body rows
        if total > MAX_TABLE_CELLS and passed < 0:
            passed = index
        index = end
    return total, passed


def check_article_size(path: Path, body: str, body_line: int, problems: Collector) -> bool:
    """True when ``body`` is small enough to parse; else a problem naming its line."""
    if len(body) > MAX_BODY_CHARS:
        problems.add(path, body_line, f"the article's text is {len(body):,} characters long; "
                     f"at most {MAX_BODY_CHARS:,}", _HINT)
        return False
    found = list(_MARKS.finditer(body))
    if len(found) > MAX_MARKS:
        crossing = found[MAX_MARKS].start()
        line = body_line + body.count("\n", 0, crossing)
        most, _count = Counter(m.group() for m in found).most_common(1)[0]
        what = _MARK_NAMES.get(most, f"'{most}'")
        problems.add(path, line, f"the article's text holds {len(found):,} Markdown marks "
                     f"(line breaks and * _ ` [ ] < > | ! & ~ \\ ' \" characters), mostly "
                     f"{what}; at most {MAX_MARKS:,}, passed on this line", _HINT)
        return False
    cells, passed = table_cells(body)
    if cells > MAX_TABLE_CELLS:
        problems.add(path, body_line + passed - 1, f"the article's tables hold {cells:,} cells "
                     f"(columns x rows, up to the next blank line); at most "
                     f"{MAX_TABLE_CELLS:,}, passed by the table starting here",
                     "put a long table in a document on the website and link to it")
        return False
    return True


def check_open_tags(path: Path, tokens: Iterable[Token], body_line: int,
                    problems: Collector) -> None:
    """Raw HTML may leave at most ``MAX_OPEN_TAGS`` elements open at once: the HTML cleaner
    works harder the deeper the nesting (its time grows with the square of the depth), and
    reopens every formatting element left open (``<b>``, ``<i>``...) in each paragraph
    after it."""
    open_now: Counter[str] = Counter()
    depth = 0
    for block in tokens:
        line = body_line + (block.map[0] if block.map else 0)
        pieces = [block] if block.type == "html_block" else [
            child for child in block.children or () if child.type == "html_inline"]
        for piece in pieces:
            for match in _TAG.finditer(piece.content):
                name = match.group(2).lower()
                if name in _SHORT_LIVED:
                    continue
                if not match.group(1):
                    open_now[name] += 1
                    depth += 1
                elif open_now[name]:
                    open_now[name] -= 1
                    depth -= 1
                if depth > MAX_OPEN_TAGS:
                    shown = ", ".join(f"<{n}>" for n, c in open_now.most_common(4) if c)
                    problems.add(path, line, f"raw HTML leaves more than {MAX_OPEN_TAGS} "
                                 f"elements open at once here ({shown}...)",
                                 "close each tag you open (<b>...</b>), or write it in "
                                 "Markdown")
                    return


def bounded_html(path: Path, body_line: int, html: str, problems: Collector) -> str:
    """The article's clean HTML, or nothing (with a problem) when it holds far more tags
    than its Markdown could make: the cleaner reopened formatting tags left open."""
    tags = html.count("<")
    if tags <= MAX_TAGS:
        return html
    problems.add(path, body_line, f"the article's HTML grows to {tags:,} tags once cleaned; "
                 f"at most {MAX_TAGS:,}", "close each HTML tag you open (<b>...</b>): a "
                 "formatting tag left open is repeated in every paragraph after it")
    return ""


def check_issue_size(path: Path, line: int, bodies: Iterable[str], languages: int,
                     problems: Collector) -> None:
    """The articles every language shows, summed: the work of rendering the whole issue."""
    chars = count = cells = 0
    for body in bodies:
        chars += len(body)
        count += marks(body)
        cells += table_cells(body)[0]
    size = (f"{chars:,} characters; at most {MAX_ISSUE_CHARS:,}" if chars > MAX_ISSUE_CHARS
            else f"{count:,} Markdown marks; at most {MAX_ISSUE_MARKS:,}"
            if count > MAX_ISSUE_MARKS else
            f"{cells:,} table cells; at most {MAX_ISSUE_CELLS:,}" if cells > MAX_ISSUE_CELLS
            else "")
    if size:
        problems.add(path, line, f"the articles of this issue's {languages} language(s) "
                     f"hold {size} (each language shows every article, translated or not)",
                     "split the issue into several issues, or shorten its articles")
