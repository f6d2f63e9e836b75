"""Language codes: ISO 639-1 two-letter codes, optionally with a region (``pt-BR``).

Babel's CLDR data decides whether a code names a real language, and later formats dates in it.
"""

from __future__ import annotations

import re
from functools import lru_cache

import babel
from babel import Locale, UnknownLocaleError

from mirage_mailer.util import kept

_SHAPE = re.compile(r"^([a-zA-Z]{2})(?:[-_]([a-zA-Z]{2}|\d{3}))?$")


def normalise_language(code: str) -> str:
    """``PT_br`` -> ``pt-BR``; the form used in file names and the store."""
    match = _SHAPE.match(code.strip())
    if not match:
        return code.strip()
    lang, region = match.groups()
    return lang.lower() + (f"-{region.upper()}" if region else "")


@lru_cache(maxsize=256)
def babel_locale(code: str) -> Locale | None:
    try:
        return Locale.parse(normalise_language(code), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def check_language(code: str) -> str | None:
    """None when valid, else why not (for a ``path:line: ...`` message)."""
    if not isinstance(code, str) or not _SHAPE.match(code.strip()):
        return f"'{code}' is not a language code"
    if babel_locale(code) is None:
        return f"'{code}' is not a known language code"
    return None


def base_language(code: str) -> str:
    return normalise_language(code).split("-")[0]


def text_direction(code: str) -> str:
    """``rtl`` for a language written right to left (Arabic, Persian, Hebrew, Urdu...),
    else ``ltr``: from CLDR's character order (babel), so no list of ours goes stale.
    Kept by code (``util.kept``): the first in a process loads the locale's data."""
    def compute() -> str:
        locale = babel_locale(code)
        return "rtl" if locale is not None and locale.text_direction == "rtl" else "ltr"

    return str(_DIRECTIONS.get(code, compute))


_DIRECTIONS = kept.kind("text-direction", kept.library_stamp(babel),
                        lambda value: value in ("ltr", "rtl"))
