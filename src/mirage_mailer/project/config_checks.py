"""Typed, range-checked getters over one section of mirage.yaml, and secret-safe echoes.

A value that parses is not yet a value that works: ``rate_per_second: 1e-300`` waits forever,
``.nan`` compares false with everything, ``from: ''`` sends ``From: <>``. Every getter checks
type and a sane range and adds one problem in the officer's words instead of raising. Values
echoed back are shortened, and URLs lose their user name and password, query and fragment
(``util/urlsecrets.py``): messages end up in cron logs.
"""

from __future__ import annotations

import math
import re
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from mirage_mailer.project.origins import origin_of, origin_problem
from mirage_mailer.project.yamlsrc import LineDict, LineList
from mirage_mailer.util.envnames import RULE as ENV_NAME_RULE
from mirage_mailer.util.envnames import is_env_name
from mirage_mailer.util.errors import Collector, shorten
from mirage_mailer.util.headersafe import header_problem
from mirage_mailer.util.urlsecrets import has_query_or_fragment as has_query_or_fragment
from mirage_mailer.util.urlsecrets import has_userinfo as has_userinfo
from mirage_mailer.util.urlsecrets import redact as redact

MAX_TEXT = 1000  # characters of a one-line setting


def secret_in_query(problems: Collector, path: Path, line: int | None, key: str, url: str,
                    password_key: str) -> bool:
    """True, with one problem, when a login URL has a query or fragment: no SMTP or IMAP URL
    here uses one, so it is most likely a password pasted there (``?password=...``). The URL
    is echoed with it masked, and the fix names where the password goes instead."""
    if not has_query_or_fragment(url):
        return False
    problems.add(path, line, f"'{key}' '{shorten(redact(url))}' has a query (?...) or a "
                 "fragment (#...), which it does not use; what is written there is not shown, "
                 "as it may be a password",
                 f"remove everything from the '?' or '#' on, and put a password in the "
                 f"environment variable that '{password_key}' names; if a real password was "
                 "written here, change it")
    return True


def describe(value: Any) -> str:
    """What the officer wrote, as they wrote it (short, redacted), for 'you wrote ...':
    'four', 2.5, true, nothing, a list; never Python's type names."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value).replace("nan", ".nan").replace("inf", ".inf")  # YAML's words
        return shorten(_number_text(value) if isinstance(value, float) else str(value))
    return f"'{shorten(redact(str(value)))}'"


def _number_text(value: float) -> str:
    return f"{value:g}"


class Section:
    """Typed getters over one mapping that add a problem instead of raising."""

    def __init__(self, data: LineDict, path: Path, name: str, problems: Collector) -> None:
        self.data, self.path, self.name, self.problems = data, path, name, problems

    def line(self, key: str) -> int:
        return self.data.key_line(key)

    def _bad(self, key: str, expected: str, hint: str = "") -> None:
        self.problems.add(
            self.path,
            self.line(key),
            f"'{self.name}.{key}' must be {expected}; you wrote {self._wrote(key)}",
            hint,
        )

    def _wrote(self, key: str) -> str:
        """``no``, not false; ``010``, not 8: the officer's words, not YAML's reading."""
        value = self.data.get(key)
        written = self.data.written.get(key)
        if isinstance(value, bool | int | float) and written is not None:
            return shorten(written)
        return describe(value)

    def text(self, key: str, default: str | None = None, *, max_length: int = MAX_TEXT,
             yes_no_is_text: bool = False) -> str | None:
        """The value as written (``0123`` keeps its zero). A bare yes/no/true/false is text
        where only text makes sense (``yes_no_is_text``: a name, a language); elsewhere
        (a path, an address) it may mean "off", so it is refused with the quotes to add."""
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) and not yes_no_is_text:
            written = self.data.text(key)
            self._bad(key, "a string", f"put it in quotes if you mean the word: '{written}'")
            return default
        if not isinstance(value, str | int | float):
            self._bad(key, "a string")
            return default
        text = (self.data.text(key) or "").strip()
        bad = header_problem(text)
        if bad:
            self.problems.add(self.path, self.line(key), f"'{self.name}.{key}' {bad}",
                              "keep the value on one line")
            return default
        if len(text) > max_length:
            self.problems.add(self.path, self.line(key),
                              f"'{self.name}.{key}' is {len(text):,} characters long; at most "
                              f"{max_length:,}", "shorten it")
            return default
        return text

    def required_text(self, key: str, hint: str, *, yes_no_is_text: bool = False) -> str:
        """A string that must not be empty (``null`` and ``''`` included); a missing key is
        reported by ``check_keys`` already."""
        before = len(self.problems.problems)
        text = self.text(key, yes_no_is_text=yes_no_is_text)
        if not text and key in self.data and len(self.problems.problems) == before:
            self.problems.add(self.path, self.line(key), f"'{self.name}.{key}' is empty", hint)
        return text or ""

    def one_address(self, key: str, value: str, hint: str) -> bool:
        """False, with the problem, when ``value`` holds several addresses ('a@x, b@x', or
        'Name <a@x> <b@x>'): the mailbox parser would keep the first and drop the rest
        without a word."""
        found = [address for _, address in getaddresses([value]) if "@" in address]
        if len(found) < 2:
            return True
        self.problems.add(self.path, self.line(key), f"'{self.name}.{key}' holds "
                          f"{len(found)} addresses ({shorten(', '.join(found))}); it takes one",
                          hint)
        return False

    def env_name(self, key: str) -> str | None:
        """The *name* of an environment variable; a value that is no name is never echoed:
        it is most likely the secret itself."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not is_env_name(value.strip()):
            self.problems.add(self.path, self.line(key),
                              f"'{self.name}.{key}' must name an environment variable "
                              f"({ENV_NAME_RULE}); what is written there is not shown, as it "
                              "may be the secret itself",
                              "write the variable's name and put the value in that variable; "
                              "if a real password or key was written here, change it: it is "
                              "in mirage.yaml and its backups")
            return None
        return value.strip()

    def integer(self, key: str, default: int, *, minimum: int = 1,
                maximum: int | None = None) -> int:
        value = self.data.get(key, default)
        too_big = maximum is not None and isinstance(value, int) and value > maximum
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
            expected = (f"a whole number from {minimum} to {maximum}" if maximum is not None
                        else f"a whole number >= {minimum}")
            self._bad(key, expected)
            return default
        return value

    def number(self, key: str, default: float | None, *, minimum: float, maximum: float,
               nullable: bool = True) -> float | None:
        value = self.data.get(key, default)
        if value is None and nullable:
            return None
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or not minimum <= value <= maximum):
            expected = f"a number from {_number_text(minimum)} to {_number_text(maximum)}"
            self._bad(key, expected + (", or null for no limit" if nullable else ""))
            return default
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self._bad(key, "true or false")
            return default
        return value

    def choice(self, key: str, default: str, options: tuple[str, ...]) -> str:
        value = self.data.get(key, default)
        if value not in options:
            listed = ", ".join(options[:-1]) + " or " + options[-1]
            wrote = self._wrote(key)
            self.problems.add(self.path, self.line(key),
                              f"'{self.name}.{key}' must be {listed}; you wrote {wrote}")
            return default
        return str(value)

    def web_address(self, key: str, hint: str) -> str | None:
        """An https URL readers open (http only for localhost or 127.0.0.1, for testing)."""
        url = self.text(key)
        if not url:
            return None
        if has_userinfo(url):
            self.problems.add(self.path, self.line(key),
                              f"'{self.name}.{key}' {describe(url)} holds a user name or "
                              "password", "remove them: every reader would see them")
            return None
        if origin_of(url) is None or not re.match(r"^https?://", url,
                                                                        re.IGNORECASE):
            self.problems.add(self.path, self.line(key),
                              f"'{self.name}.{key}' {describe(url)} is not a web address",
                              hint + ", e.g. https://www.example.org/privacy")
            return None
        host = url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0].lower()
        if not url.lower().startswith("https://") and host not in ("localhost", "127.0.0.1"):
            self.problems.add(self.path, self.line(key),
                              f"'{self.name}.{key}' {describe(url)} must start with https://",
                              "plain http is allowed only for localhost or 127.0.0.1, for "
                              "testing")
            return None
        return url

    def origins(self, key: str) -> tuple[str, ...]:
        """A list of sites (``https://host[:port]``), each checked on its own line; their
        normal form, as browsers send it in the Origin header."""
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, LineList):
            self._bad(key, "a list of sites, one '- https://www.example.org' a line")
            return ()
        found: list[str] = []
        for index, item in enumerate(value):
            line = value.item_line(index)
            if not isinstance(item, str):
                self.problems.add(self.path, line,
                                  f"'{self.name}.{key}' item {index + 1} must be a web "
                                  f"address; you wrote {describe(item)}",
                                  "write it as https://www.example.org")
                continue
            bad = origin_problem(item)
            origin = origin_of(item)
            if bad is not None or origin is None:
                message, hint = bad or ("is not a web address", "")
                self.problems.add(self.path, line,
                                  f"'{self.name}.{key}' {describe(item)} {message}", hint)
                continue
            if origin not in found:
                found.append(origin)
        return tuple(found)
