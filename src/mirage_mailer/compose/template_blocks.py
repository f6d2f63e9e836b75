"""Where an unclosed ``{% if %}`` opens: Jinja2 notices only at the end of the file (or at the
next ``{% endfor %}``), far from the line the officer has to fix.

A small scan of the template's block tags with Jinja2's own lexer, a stack of the tags that
need an end tag, and the first mismatch: the innermost block still open is the unclosed one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import jinja2

# Tags that take an end tag. ``set`` only in its block form ({% set x %}...{% endset %}).
PAIRED = frozenset({"if", "for", "block", "macro", "call", "filter", "with", "autoescape",
                    "set", "trans"})
_END_TAG = re.compile(r"Encountered unknown tag 'end(\w+)'")


def block_tags(source: str) -> Iterator[tuple[int, str]]:
    """(line, tag name) of every ``{% ... %}`` that opens or closes a block, in order."""
    tag: tuple[int, str] | None = None
    assignment = False
    waiting = False  # after {%, before the tag's name
    for line, kind, value in jinja2.Environment().lex(source):
        if kind == "block_begin":
            tag, assignment, waiting = None, False, True
        elif waiting and kind == "name":
            tag, waiting = (line, value), False
        elif kind == "operator" and value == "=":
            assignment = True
        elif kind == "block_end" and tag is not None:
            name = tag[1]
            opens = name in PAIRED and not (name == "set" and assignment)
            if opens or (name.startswith("end") and name[3:] in PAIRED):
                yield tag
            tag = None


def unclosed_block(source: str, message: str) -> tuple[int, str] | None:
    """(line, words) for a block never closed or an end tag closing nothing, when Jinja2's
    ``message`` is about one; None otherwise (a typo in a tag name keeps Jinja2's words)."""
    end = _END_TAG.match(message)
    if not (message.startswith("Unexpected end of template") or (end and end[1] in PAIRED)):
        return None
    stack: list[tuple[int, str]] = []
    try:
        for line, name in block_tags(source):
            if name in PAIRED:
                stack.append((line, name))
                continue
            opener = name[3:]
            if not stack:
                return line, f"this {{% {name} %}} has no {{% {opener} %}} to close: delete it"
            if stack[-1][1] != opener:
                break
            stack.pop()
    except jinja2.TemplateSyntaxError:  # the lexer itself stumbled: Jinja2's words stand
        return None
    if not stack:
        return None
    line, name = stack[-1]
    return line, f"this {{% {name} %}} is never closed: add {{% end{name} %}}"
