"""A path the system cannot take as written (a name too long, a loop of links), said in one line.

Why here, once, and not where each path is first touched: paths come from ISSUE, --config,
--out, --to and a dozen keys of mirage.yaml and the issue files, and reach the system in
many places (resolve, exists, open, mkdir). ENAMETOOLONG and ELOOP never come from the
machine's state or from a bug, only from a name someone wrote (a pasted string, a typo, a
link pointing at itself), so the CLI's last resort maps them to an input mistake (exit 2):
the file, what is wrong, the fix. Every command and every future path is covered.
"""

from __future__ import annotations

import errno
import os
import re
import sys

from mirage_mailer.util.errors import InputError, Problem, shorten

NAME_MAX = 255  # bytes of one name on Linux, macOS and Windows file systems
PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP})


# Python before 3.13: Path.resolve() says a loop of links with a RuntimeError, not ELOOP
_OLD_LOOP = re.compile(r"^Symlink loop from '(.*)'$", re.DOTALL)


def as_path_mistake(exc: BaseException) -> OSError | None:
    """``exc`` as an ``OSError`` about a path as written (not about the disk or the code);
    None for anything else."""
    if isinstance(exc, OSError) and exc.errno in PATH_ERRNOS:
        return exc
    loop = _OLD_LOOP.match(str(exc)) if type(exc) is RuntimeError else None
    if loop:
        return OSError(errno.ELOOP, os.strerror(errno.ELOOP), loop.group(1))
    return None


def path_mistake(exc: OSError) -> InputError:
    """``exc`` as one line naming the path (below the current folder, relative to it;
    shortened: it may be thousands of characters)."""
    name = os.fsdecode(exc.filename) if isinstance(exc.filename, str | bytes) else None
    if name is not None:
        here = os.getcwd() + os.sep
        where = shorten(name.removeprefix(here) if name.startswith(here) else name)
    else:
        where = "mirage-mailer"
    if exc.errno == errno.ELOOP:
        return InputError(Problem(where, None, "is a loop of symbolic links",
                                  "point the link at a real file or folder, or remove it"))
    longest = max((len(part) for part in os.fsencode(name or "").split(b"/")), default=0)
    if longest > NAME_MAX:
        said = (f"has a name of {longest:,} bytes; a file or folder name may have at most "
                f"{NAME_MAX}")
    else:
        said = "is longer than the system takes for a path"
    return InputError(Problem(where, None, said,
                              "check the path given as an argument, --config, --out or in "
                              "mirage.yaml: it is likely pasted or mistyped"))


# A name a UTF-8 file (issue.yaml, an article) gives that the locale's encoding cannot hold
# (LANG=fr_FR.ISO-8859-1 and an article 'συνάντηση.md'): the system cannot even look the
# file up, so the name is said as such, not as "outside the folder" or "not found".
LOCALE_FIX = ("run mirage-mailer under a UTF-8 locale (set LANG, e.g. LANG=C.UTF-8 or "
              "LANG=fr_FR.UTF-8), or rename the file with letters of the locale")


def fits_locale(name: str) -> bool:
    """Can ``name`` be a file name under this locale (``sys.getfilesystemencoding()``)?"""
    try:
        os.fsencode(name)
    except UnicodeEncodeError:
        return False
    return True


def locale_name_said() -> str:
    """The end of the line for a name that does not fit the locale: which encoding."""
    return (f"cannot be a file name in this locale's encoding "
            f"({sys.getfilesystemencoding()})")
