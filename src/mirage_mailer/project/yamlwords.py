"""PyYAML's syntax errors in the words of someone who edits a config file by hand.

"expected <block end>, but found '<block mapping start>'" means nothing to a communications
officer; "this line is indented more than the one above" does. PyYAML's marks are often one
line late (an unclosed quote is found where the next one starts), so each rule also says which
line to show: the one where the mistake is, not where the parser gave up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class Words:
    line: int  # 0-based, in the text that was parsed
    message: str
    hint: str


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _content(lines: list[str], index: int) -> bool:
    text = lines[index].strip() if 0 <= index < len(lines) else ""
    return bool(text) and not text.startswith("#")


def _previous(lines: list[str], index: int) -> int | None:
    """The nearest line above ``index`` that holds YAML (not blank, not a comment)."""
    for before in range(min(index, len(lines)) - 1, -1, -1):
        if _content(lines, before):
            return before
    return None


_MORE = ("this line is indented more than the one above",
         "line it up with the line above, or put the value above in quotes")
_LESS = ("this line is indented less than the one above, but more than the key it belongs to",
         "line it up with the keys it belongs with")
_UNCLOSED_QUOTE = ("this quote is never closed", "end the value with the same quote mark")


def _opening_quote(text: str, closing: int) -> int | None:
    """Where the quoted value that ends at ``closing`` began (``"`` or ``'``)."""
    mark = text[closing]
    at = closing - 1
    while at >= 0:
        if text[at] == mark and (mark == "'" or text[at - 1: at] != "\\"):
            if mark == "'" and text[at - 1: at] == "'":  # '' is a quote inside single quotes
                at -= 2
                continue
            return at
        at -= 1
    return None


def _after_quote(text: str, index: int, line: int) -> Words | None:
    """Text found after a closing quote: an unclosed quote above, or words after a quote
    (or after a closing bracket)."""
    before = index - 1
    while before >= 0 and text[before] in " \t":
        before -= 1
    if before >= 0 and text[before] in "]}":
        return Words(line, f"text follows the closing '{text[before]}'",
                     "put the whole value in quotes")
    if before < 0 or text[before] not in "\"'":
        return None
    opening = _opening_quote(text, before)
    if opening is not None and text.count("\n", 0, opening) < line:
        return Words(text.count("\n", 0, opening), *_UNCLOSED_QUOTE)
    hint = "put the whole value in quotes"
    if opening is not None:
        end = text.find("\n", index)
        tail = re.split(r"\s#", text[before + 1: end if end >= 0 else len(text)], maxsplit=1)[0]
        value = (text[opening: before + 1] + tail).rstrip()
        other = "'" if text[before] == '"' else '"'
        if other not in value and "\\" not in value and len(value) <= 80:
            hint += f", like this: {other}{value}{other}"
    return Words(line, "text follows the closing quote", hint)


def _indentation(lines: list[str], mark: yaml.Mark, found: str, text: str) -> Words | None:
    line, index = mark.line, mark.index
    if line >= len(lines):
        return None
    if mark.column > _indent(lines[line]):  # stopped inside the line, not at its start:
        return _after_quote(text, index, line)  # the indentation is not what is wrong
    above = _previous(lines, line)
    here = _indent(lines[line])
    there = here if above is None else _indent(lines[above])
    if here > there:
        return Words(line, *_MORE)
    if here < there:
        return Words(line, *_LESS)
    if found == "'-'":
        return Words(line, "a '- ' list item where a key was expected",
                     "write 'key: value', or put the list under a key that ends with ':'")
    if found == "'<scalar>'":
        return _after_quote(text, index, line)
    return None


def _colon(lines: list[str], line: int, column: int) -> Words:
    """'mapping values are not allowed here': a second ': ' in a value, a line deeper than
    the value above it, or a key without ':' above."""
    above = _previous(lines, line)
    before = lines[line][:column] if line < len(lines) else ""
    if above is not None and ": " not in before and not before.rstrip().endswith(":"):
        if _indent(lines[line]) > _indent(lines[above]):
            return Words(line, *_MORE)
        prior = lines[above].strip()
        if (_indent(lines[line]) == _indent(lines[above]) and ":" not in prior
                and not prior.startswith("-")):
            return Words(above, "this line has no ':' after its key", "write 'key: value'")
    return Words(line, "a value contains ': '", "put the value in quotes")


def explain(exc: yaml.MarkedYAMLError, text: str) -> Words | None:
    """Plain words for the common PyYAML problems, or None (the caller shows PyYAML's)."""
    problem, context = exc.problem or "", exc.context or ""
    mark, opened = exc.problem_mark, exc.context_mark
    if mark is None:
        return None
    lines = text.splitlines()
    if problem.startswith("found character '\\t'"):
        start = lines[mark.line][: mark.column] if mark.line < len(lines) else ""
        if not start.strip():
            return Words(mark.line, "a tab is used for indentation", "indent with spaces only")
        return Words(mark.line, "a tab where YAML expects a space",
                     "use spaces, or put the value in quotes")
    if context.endswith("quoted scalar") and opened is not None:
        if "unknown escape" in problem:
            return Words(mark.line, "a backslash inside double quotes starts an escape",
                         "use single quotes, or write \\\\ for a backslash")
        return Words(opened.line, *_UNCLOSED_QUOTE)
    for kind, pair in (("flow sequence", "[]"), ("flow mapping", "{}")):
        if context.startswith(f"while parsing a {kind}") and opened is not None:
            return Words(opened.line, f"this '{pair[0]}' is never closed",
                         f"add the closing '{pair[1]}', or put the value in quotes")
    if problem == "mapping values are not allowed here":
        return _colon(lines, mark.line, mark.column)
    if context.startswith("while scanning a simple key") and opened is not None:
        return Words(opened.line, "this line has no ':' after its key", "write 'key: value'")
    if problem.startswith("expected <block end>, but found "):
        found = problem.removeprefix("expected <block end>, but found ")
        return _indentation(lines, mark, found, text)
    return None
