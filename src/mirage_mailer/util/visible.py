"""Text from outside (a relay's reply) made safe to keep and to show: one line, no control.

A relay chooses the words of its replies. Printed raw, ``ESC ] 0 ; ... BEL`` retitles the
officer's terminal and ``ESC [ 31 m`` recolours it (worse sequences exist), and a CR or LF
splits the one-line error into lines that look like ours. So every control and format
character (Unicode categories C*, and the line and paragraph separators) becomes a visible
escape such as ``\\x1b``; the lines of a multi-line reply are joined with a space.
"""

from __future__ import annotations

import unicodedata

_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: str) -> str:
    """``text`` on one line, every control or format character shown as an escape."""
    if text.isprintable():  # the usual reply: nothing to do
        return text
    lines = (line.strip(" \t\r") for line in text.strip().split("\n"))
    joined = " ".join(line for line in lines if line).replace("\t", " ")
    return "".join(_escape(c) if unicodedata.category(c) in _HIDDEN else c for c in joined)
