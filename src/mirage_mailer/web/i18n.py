"""The reader's language for every page and mail of the web side, from gettext catalogs.

The catalogs are the ``.po`` files under ``data/locale/<lang>/LC_MESSAGES/messages.po``
(Babel extracts the ``.pot``; translators use Poedit, Weblate...). They are compiled in
memory when first needed, so no generated ``.mo`` file is shipped or can go stale.

The language of a request: the one its token or page knows (the subscriber's, the issue's),
else the best of ``Accept-Language`` that has a catalog, else the project's language when it
has one, else English (the source strings).
"""

from __future__ import annotations

import gettext as _gettext
import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from io import BytesIO

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from starlette.requests import HTTPConnection

from mirage_mailer.util.langs import base_language

log = logging.getLogger(__name__)

SOURCE = "en"  # the language of the msgids
DOMAIN = "messages"
SCOPE_KEY = "mirage.lang"  # a route that knows the reader's language puts it here
_TAG = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$|^\*$")
_MAX_TAGS = 32  # an Accept-Language longer than this is not a browser's


def N_(message: str) -> str:
    """Marks a string for extraction (a pybabel keyword); it is translated where shown."""
    return message


def _locale_dir() -> resources.abc.Traversable:
    return resources.files("mirage_mailer").joinpath("data", "locale")


@lru_cache(maxsize=1)
def catalog_languages() -> frozenset[str]:
    """English (the source) and every language with a ``messages.po``."""
    found = {SOURCE}
    for entry in _locale_dir().iterdir():
        if entry.joinpath("LC_MESSAGES", f"{DOMAIN}.po").is_file():
            found.add(entry.name)
    return frozenset(found)


@lru_cache(maxsize=16)
def translations(lang: str) -> _gettext.NullTranslations:
    """The compiled catalog of ``lang`` (cached); English and unknown: the source strings."""
    if lang == SOURCE or lang not in catalog_languages():
        return _gettext.NullTranslations()
    po = _locale_dir().joinpath(lang, "LC_MESSAGES", f"{DOMAIN}.po")
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=lang, domain=DOMAIN)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def supported(code: str | None) -> str | None:
    """The catalog language for a language code (``fr-CH`` -> ``fr``), or None."""
    if not code:
        return None
    base = base_language(code)
    return base if base in catalog_languages() else None


def default_language(project_language: str) -> str:
    """The project's language when it has a catalog, else English (what the pages are in)."""
    return supported(project_language) or SOURCE


def parse_accept_language(header: str) -> list[str]:
    """Language tags of an ``Accept-Language`` header, most wanted first (RFC 9110 q-values;
    ``q=0`` means "not this one"; equal weights keep their order)."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:_MAX_TAGS]):
        tag, *params = (part.strip() for part in item.split(";"))
        if not tag or not _TAG.match(tag):
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = -1.0
        if 0.0 < weight <= 1.0:
            weighted.append((-weight, position, tag))
    return [tag for _weight, _position, tag in sorted(weighted)]


def negotiate(preferred: Iterable[str | None], accept_language: str | None,
              project_language: str) -> str:
    """The first of ``preferred`` that has a catalog, else the best match of the header,
    else the project's language (or English)."""
    for code in preferred:
        found = supported(code)
        if found is not None:
            return found
    for tag in parse_accept_language(accept_language or ""):
        if tag == "*":
            break  # "anything": the project's own language is as good as any
        found = supported(tag)
        if found is not None:
            return found
    return default_language(project_language)


def set_language(conn: HTTPConnection, code: str | None) -> None:
    """Remember the language a token or page knows, for this request's page (and errors)."""
    found = supported(code)
    if found is not None:
        conn.scope[SCOPE_KEY] = found


def request_language(conn: HTTPConnection, project_language: str) -> str:
    """The language of this request's page: see the module docstring."""
    return negotiate([conn.scope.get(SCOPE_KEY)], conn.headers.get("accept-language"),
                     project_language)
