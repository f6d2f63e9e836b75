"""What a library derives from a text, kept from one run to the next, keyed by the text itself.

A send renders each language once, and the first render in a process pays for work whose
input is the same text every run: premailer and cssutils parsing the template's CSS and each
declaration block, the leftover ``<style>`` rules the disclaimer checks read, jinja2 compiling
the templates, babel loading locale data for a date or a writing direction (docs/design.md,
"Performance notes"). Each ``Kept`` keeps such results (what marshal writes: strings,
numbers, tuples and lists of them, code objects) in one file beside this module's byte code,
as ``util.classcode`` keeps compiled dataclass code: the key holds the whole input text, and
the file's header names the Python and the versions of the libraries that computed the
values, so a value is never stale, only missing.

Off until ``install`` (``__main__`` calls it: CLI processes only); nothing is written where
Python writes no byte code; a file from another Python or other library versions, or one that
cannot be read, counts as none and is replaced.
"""

from __future__ import annotations

import atexit
import importlib.util
import marshal
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mirage_mailer.util import marshal_file

MAX_ENTRIES = 1000  # a kind past its limit keeps only what its last run used
_MAGIC = importlib.util.MAGIC_NUMBER + (sys.implementation.cache_tag or "").encode()


def store_dir() -> Path | None:
    """This module's ``__pycache__`` (or ``PYTHONPYCACHEPREFIX``'s twin of it)."""
    try:
        return Path(importlib.util.cache_from_source(__file__)).parent
    except NotImplementedError:  # an interpreter without byte-code caching
        return None


def file_name(kind: str) -> str:
    """``kept.cpython-311.<kind>``: one file per Python, as byte code is."""
    return f"kept.{sys.implementation.cache_tag or 'python'}.{kind}"


class Kept:
    """One kind of kept value: ``get(key, compute)`` returns the stored value or computes it.

    ``version`` names whatever the values depend on besides the key (library versions, the
    options of the call); ``valid`` checks a value read from the file before it is trusted.
    """

    def __init__(self, kind: str, version: str,
                 valid: Callable[[Any], bool] = lambda value: True,
                 limit: int = MAX_ENTRIES) -> None:
        self.kind = kind
        self.limit = limit  # values kept: an edited template adds one each time
        self.header = _MAGIC + f" {kind} {version}\n".encode()
        self.valid = valid
        self.path: Path | None = None
        self.values: dict[Any, Any] = {}
        self.used: set[Any] = set()
        self.added = 0  # values this run computed
        self.reused = 0  # values found kept

    def open(self, directory: Path | None) -> None:
        """Read this kind's file in ``directory`` (None: keep nothing, compute every time)."""
        self.path = directory / file_name(self.kind) if directory is not None else None
        self.values = marshal_file.read(self.path, self.header) if self.path is not None else {}
        self.used.clear()
        self.added = self.reused = 0

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        """The value kept for ``key`` (a string or tuple of strings and numbers), else
        ``compute()``'s, kept for the next run when this kind is open."""
        value = self.find(key)
        if value is None:
            value = compute()
            self.put(key, value)
        return value

    def find(self, key: Any) -> Any:
        """The value kept for ``key``, or None (also for one ``valid`` refuses)."""
        if self.path is None:
            return None
        value = self.values.get(key)
        if value is None or not self.valid(value):
            return None
        self.reused += 1
        self.used.add(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        """Keep ``value`` for ``key`` (not when either is not a plain value)."""
        if self.path is None or value is None:
            return
        try:
            marshal.dumps((key, value))
        except ValueError:
            return
        self.values[key] = value
        self.used.add(key)
        self.added += 1

    def save(self) -> None:
        """Write the file when this run added a value (atomically: a rename)."""
        if not self.added or self.path is None or sys.dont_write_bytecode:
            return
        values = self.values if len(self.values) <= self.limit else {
            key: value for key, value in self.values.items() if key in self.used}
        marshal_file.write(self.path, self.header, values)  # read-only: every run computes



def library_stamp(*modules: Any) -> str:
    """Libraries' versions as installed: each one's ``__version__`` and its ``__init__``'s
    file stamp (a reinstall or an upgrade rewrites the file)."""
    stamps = []
    for module in modules:
        try:
            info = os.stat(module.__file__)
            stamp = f"{info.st_mtime_ns}:{info.st_size}"
        except (OSError, TypeError):
            stamp = "?"
        stamps.append(f"{module.__name__}={getattr(module, '__version__', '')}@{stamp}")
    return " ".join(stamps)


_KINDS: list[Kept] = []
_directory: Path | None = None
_installed = False


def kind(name: str, version: str, valid: Callable[[Any], bool] = lambda value: True,
         limit: int = MAX_ENTRIES) -> Kept:
    """A kind of kept value, opened at once when ``install`` already ran."""
    kept = Kept(name, version, valid, limit)
    _KINDS.append(kept)
    if _installed:
        kept.open(_directory)
    return kept


def install(directory: Path | None = None) -> None:
    """From now on every kind, made before or after, reads and writes its file in
    ``directory`` (default: ``store_dir()``); at exit, the files are written."""
    global _installed, _directory
    _directory = directory if directory is not None else store_dir()
    for kept in _KINDS:
        kept.open(_directory)
    if not _installed:
        atexit.register(save_all)
    _installed = True


def uninstall() -> None:
    """Keep nothing from now on (tests)."""
    global _installed, _directory
    _installed, _directory = False, None
    for kept in _KINDS:
        kept.open(None)


def save_all() -> None:
    for kept in _KINDS:
        kept.save()


def counts() -> dict[str, tuple[int, int]]:
    """Kind -> (values computed, values reused) in this process."""
    return {kept.kind: (kept.added, kept.reused) for kept in _KINDS}
