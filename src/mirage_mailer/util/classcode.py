"""The code of the methods ``dataclasses`` writes for each class, kept from one run to the next.

Python 3.11 compiles every generated ``__init__``, ``__repr__`` and ``__eq__`` (and a frozen
class's ``__setattr__``, ``__delattr__`` and ``__hash__``) from source text as the class is
defined: about two thirds of the 1 to 1.7 ms each of the 75 classes a send imports costs
(3.12 does the same; 3.13 compiles one text per class holding all its methods). That text is
the same in every run, so its compiled code is too. ``install`` (called by
``__main__`` before anything else of ours is imported) keeps it in one marshal file beside
this module's byte code, keyed by the text itself, and hands ``dataclasses`` the stored code
instead of compiling again: the classes are built from exactly what a fresh compile gives.

Nothing is written where Python writes no byte code (``PYTHONDONTWRITEBYTECODE``, an install
it cannot write to); a file from another Python, or one that cannot be read, counts as none
and is replaced.
"""

from __future__ import annotations

import atexit
import builtins
import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import CodeType
from typing import Any

from mirage_mailer.util import marshal_file

MAX_TEXTS = 2000  # texts kept (the package has ~130 classes); past this, a run keeps its own
SUFFIX = ".classcode"
_HEADER = importlib.util.MAGIC_NUMBER + (sys.implementation.cache_tag or "").encode() + b"\n"


def store_path() -> Path | None:
    """Where this Python keeps the file: ``__pycache__`` (or ``PYTHONPYCACHEPREFIX``)."""
    try:
        pyc = importlib.util.cache_from_source(__file__)
    except NotImplementedError:  # an interpreter without byte-code caching
        return None
    return Path(pyc).with_suffix(SUFFIX)


class ClassCode:
    """Compiled method texts by text: those read from the file, and those this run added."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.codes: dict[str, CodeType] = _read(path) if path is not None else {}
        self.compiled = 0  # texts this run had to compile
        self.reused = 0  # texts found compiled
        self.used: set[str] = set()

    def exec(self, source: Any, globals: dict[str, Any] | None = None,
             locals: dict[str, Any] | None = None, /) -> None:
        """``exec`` as ``dataclasses`` calls it, with a text's code compiled once ever."""
        if isinstance(source, str):
            code = self.codes.get(source)
            if code is None:  # as exec(text) in dataclasses.py compiles it: no __future__ flags
                code = self.codes[source] = compile(source, "<string>", "exec",
                                                    dont_inherit=True)
                self.compiled += 1
            else:
                self.reused += 1
            self.used.add(source)
            source = code
        builtins.exec(source, globals, locals)

    def save(self) -> None:
        """Write the file when this run compiled anything (atomically: a rename)."""
        if not self.compiled or self.path is None or sys.dont_write_bytecode:
            return
        codes = self.codes if len(self.codes) <= MAX_TEXTS else {
            text: code for text, code in self.codes.items() if text in self.used}
        marshal_file.write(self.path, _HEADER, codes)  # read-only: every run compiles


def _read(path: Path) -> dict[str, CodeType]:
    """The stored codes, or none when any entry is not a text's code (a damaged file)."""
    codes = marshal_file.read(path, _HEADER)
    if not all(isinstance(k, str) and isinstance(v, CodeType) for k, v in codes.items()):
        return {}
    return codes


_installed: ClassCode | None = None


def install() -> ClassCode:
    """From now on, dataclasses in this process are built from stored code (once)."""
    global _installed
    if _installed is None:
        _installed = ClassCode(store_path())
        # dataclasses looks ``exec`` up in its module's globals before the builtins
        setattr(dataclasses, "exec", _installed.exec)  # noqa: B010
        atexit.register(_installed.save)
    return _installed
