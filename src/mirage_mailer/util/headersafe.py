"""Header values from outside, checked after RFC 2047 decoding; header lines built by hand.

A plain CR/LF check is not enough: ``=?utf-8?q?X=0D=0ASubject:_PWNED?=`` has no line break
until something decodes it, and the standard library's header folding does exactly that
before the CVE-2024-6923 fix (Python 3.11.7 is before it). So every value that comes from
outside (form fields, list rows, subjects) is checked after decoding its encoded words the way
a mail reader would, and the header bytes of our messages are made here, never by the
stdlib's folder: text holding ``=?`` or non-ASCII is always encoded by us, so no reader ever
decodes what we did not encode, and every line is asserted to hold no CR/LF but our folds.
Nothing here depends on the interpreter's patch level.
"""

from __future__ import annotations

import base64
import binascii
import re

from mirage_mailer.util.addresses import ascii_address, check_header_value

# C0 controls (TAB excepted), DEL, C1 controls and the Unicode line/paragraph separators:
# everything some decoder or ``str.splitlines`` would take for a line break; and lone
# surrogates, which no charset can encode.
_BREAKS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SURROGATES = re.compile("[\ud800-\udfff]")
# As permissive as the decoders that readers use (Python's ``email.header`` included). A
# word may lack its closing ``?=``: Python's header parser (policy.default) decodes
# ``=?utf-8?q?=0A...`` to the end of the header all the same.
_C0_BYTES = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
_ENCODED_WORD = re.compile(r"=\?([^?]*?)\?([bBqQ])\?(.*?)(?:\?=|$)")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")  # a phrase that needs no quoting
_QUOTABLE = re.compile(r"[\x20-\x7e]+")
# Characters that may stay literal in a Q-encoded word in any position (RFC 2047 5(3)).
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# Encoded text per word: a word stays <= 66 characters, so "Reply-To: " and one word fit in
# 76 (RFC 2047 allows 75 per word, RFC 5322 asks for lines under 78).
_WORD_TEXT = 66 - len("=?utf-8?q??=")
_LINE = 76
_LONG_WORD = 900  # an unbroken ASCII run this long is encoded so it can be split

HIDDEN_BREAK = ("contains an encoded word (=?...?=) that hides a line break or a control "
                "character, which would break the message headers")
UNDECODABLE = "contains an encoded word (=?...?=) that cannot be decoded"


class HeaderError(ValueError):
    """A value that would break a header block reached the builder: a missing check upstream."""


def _word_bytes(encoding: str, text: str) -> bytes | None:
    """The bytes an encoded word stands for, decoded as leniently as readers do."""
    raw = text.encode("utf-8", "surrogateescape")
    if encoding in "qQ":
        return _Q_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), raw.replace(b"_", b" "))
    raw = b"".join(raw.split())
    for padding in (b"", b"=", b"==", b"==="):
        try:
            return base64.b64decode(raw + padding, validate=False)
        except (binascii.Error, ValueError):
            continue
    return None


def _hides_break(charset: str, data: bytes) -> bool:
    """True when a reader could show ``data`` with a line break: decoded in its charset (RFC
    2231 language cut off), or byte for byte by a reader that does not know the charset.

    The byte view looks for C0 controls only (UTF-8 sequences hold C1 bytes); it refuses
    UTF-16 and UTF-32 words too, which nobody writes in a name or a subject.
    """
    if _C0_BYTES.search(data):
        return True
    try:
        shown = data.decode(charset.partition("*")[0] or "ascii", "replace")
    except (LookupError, ValueError, TypeError):  # unknown or odd codecs: the byte view holds
        return False
    return _BREAKS.search(shown) is not None or (
        "=?" in shown and _ENCODED_WORD.search(shown) is not None
        and header_problem(shown) is not None)


def header_problem(value: str) -> str | None:
    """None when ``value`` may go into a header, else why not (after RFC 2047 decoding)."""
    bad = check_header_value(value)
    if bad and bad.startswith("contains a line break"):
        return bad
    found = _BREAKS.search(value)
    if found:  # named, so the fix can say what to remove: a control character is no line break
        char = found[0]
        code = f"U+{ord(char):04X}"
        if "\ud800" <= char <= "\udfff":
            return surrogate_problem(char)
        if len(f"a{char}b".splitlines()) > 1:
            return f"contains a line break ({code}), which would break the message headers"
        return f"contains a control character ({code}), which has no place in a header"
    if "=?" not in value:
        return None
    for match in _ENCODED_WORD.finditer(value):
        data = _word_bytes(match[2], match[3])
        if data is None:
            return UNDECODABLE
        if _hides_break(match[1], data):
            return HIDDEN_BREAK
    return None


def surrogate_problem(value: str) -> str | None:
    """The words for a lone surrogate in ``value`` (None without one): half of a UTF-16
    pair, which a YAML escape such as ``\\uD800`` can make and no charset can encode."""
    found = _SURROGATES.search(value)
    if found is None:
        return None
    return (f"contains a lone surrogate (U+{ord(found[0]):04X}), a character no charset "
            "can encode")


def may_have_problem(value: str) -> bool:
    """False when ``header_problem(value)`` is surely None, in one scan instead of four: a
    value without ``=?`` has a problem only if ``_BREAKS`` matches, which covers every
    character ``check_header_value`` refuses. A list checks each row's values at once with
    this (a tenth of a row's check, before), and asks ``header_problem`` only when True."""
    return "=?" in value or _BREAKS.search(value) is not None


def _refuse_breaks(value: str) -> None:
    if _BREAKS.search(value):
        raise HeaderError(f"refusing a header value with a line break: {value[:40]!r}")


_Q_PIECES: dict[str, str] = {}  # char -> its Q encoding; per-recipient names repeat chars


def _q_piece(char: str) -> str:
    piece = "".join(chr(b) if b in _Q_SAFE else ("_" if b == 0x20 else f"={b:02X}")
                    for b in char.encode("utf-8"))
    if len(_Q_PIECES) < 20_000:
        _Q_PIECES[char] = piece
    return piece


def _q_words(value: str) -> list[str]:
    """``value`` as RFC 2047 Q-encoded UTF-8 words (<= 66 characters each), never splitting
    a character; safe in a phrase (display name) as well as in unstructured text."""
    words: list[str] = []
    current: list[str] = []
    size = 0
    for char in value:
        piece = _Q_PIECES.get(char) or _q_piece(char)
        if size + len(piece) > _WORD_TEXT and current:
            words.append("=?utf-8?q?" + "".join(current) + "?=")
            current, size = [], 0
        current.append(piece)
        size += len(piece)
    if current or not words:
        words.append("=?utf-8?q?" + "".join(current) + "?=")
    return words


def _b_words(value: str) -> list[str]:
    """``value`` as RFC 2047 B-encoded UTF-8 words: shorter for mostly non-Latin text."""
    words: list[str] = []
    current = b""
    limit = _WORD_TEXT // 4 * 3  # 39 bytes -> 52 base64 characters
    for char in value:
        data = char.encode("utf-8")
        if len(current) + len(data) > limit and current:
            words.append("=?utf-8?b?" + base64.b64encode(current).decode("ascii") + "?=")
            current = b""
        current += data
    if current or not words:
        words.append("=?utf-8?b?" + base64.b64encode(current).decode("ascii") + "?=")
    return words


def encoded_words(value: str) -> list[str]:
    """RFC 2047 words for ``value``: Q when mostly Latin (spam filters frown on Base64 text)."""
    wide = sum(1 for char in value if ord(char) > 0xFF)
    return _b_words(value) if wide * 3 > len(value) else _q_words(value)


def _fold(name: str, tokens: list[str]) -> bytes:
    """``Name: tok tok ...`` folded before a space to keep lines near 76; UTF-8 (RFC 6532)
    only where an address itself is international."""
    lines: list[str] = []
    line = f"{name}:"
    for index, token in enumerate(tokens):
        if index and line.strip() and len(line) + 1 + len(token) > _LINE and token:
            lines.append(line)
            line = " " + token
        else:
            line = f"{line} {token}"
    lines.append(line)
    out = "\n".join(lines) + "\n"
    if "\r" in out or out.count("\n") != out.count("\n ") + 1:
        raise HeaderError(f"header {name} would not be one folded line")
    return out.encode("utf-8")


def text_header(name: str, value: str) -> bytes:
    """An unstructured header (Subject ...): encoded when non-ASCII or holding ``=?``."""
    _refuse_breaks(value)
    words = value.split(" ")
    if (value.isascii() and "=?" not in value and value == value.strip()
            and max(len(w) for w in words) < _LONG_WORD):
        return _fold(name, words)
    return _fold(name, encoded_words(value))


def phrase(display: str) -> list[str]:
    """A display name as header tokens: atoms, a quoted string, or encoded words."""
    _refuse_breaks(display)
    if display.isascii() and "=?" not in display:
        if _ATOMS.fullmatch(display) and display == display.strip() and "  " not in display:
            atoms = display.split(" ")
            if max(len(atom) for atom in atoms) < _LONG_WORD:  # else it is encoded, to fold
                return atoms
        if _QUOTABLE.fullmatch(display) and len(display) < _LONG_WORD:
            return ['"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return encoded_words(display)


def mailbox_header(name: str, display: str | None, address: str) -> bytes:
    """``Name: Display <address>``, or ``Name: <address>`` without a display name.

    An international domain is written in A-labels (``ascii_address``): a domain cannot be
    an RFC 2047 word, and raw UTF-8 (RFC 6532) is for a non-ASCII local part only, which
    can travel only over SMTPUTF8 anyway."""
    address = ascii_address(address)
    _refuse_breaks(address)
    if any(c in address for c in "<>\" ,;") or not address:
        raise HeaderError(f"not a plain address: {address[:40]!r}")
    return _fold(name, [*(phrase(display) if display else []), f"<{address}>"])
