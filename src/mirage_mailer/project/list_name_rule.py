"""What a list name may be, said where a name breaks it: the rule, and the file to rename.

Why: a list name is a file name in ``lists/`` and nothing more (never a path), so it is held
to ASCII letters, digits, ``.``, ``_`` and ``-``. Officers name files as their system lets
them (``Partners 2026.csv``, ``συνεργάτες.csv``): the message must state that rule and, where
such a file exists, say what to rename it to, not "give the name without folder or
extension", which they did.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from mirage_mailer.util.errors import display_path, shorten

LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a file in lists/, nothing more
LIST_SUFFIXES = (".yaml", ".yml", ".csv")
RULE = "a list name has only ASCII letters, digits, '.', '_' and '-'"
_OTHERS = re.compile(r"[^A-Za-z0-9._-]+")


def name_problem(name: str, lists_dir: Path | None) -> tuple[str, str]:
    """(message, hint) for a name ``LIST_NAME`` refuses; ``lists_dir`` (when known) is
    searched for a file of that name, which the hint then says to rename."""
    shown = shorten(name)
    found = unusable_file(lists_dir, name) if lists_dir is not None else None
    if found is None:
        return (f"list name '{shown}' is not a file name in lists/",
                f"give the file's name without folder or extension, e.g. 'list: subscribers' "
                f"for lists/subscribers.csv; {RULE}")
    return f"list name '{shown}' {why_not(name)}", rename_hint(found)


def why_not(name: str) -> str:
    """What in ``name`` breaks the rule, in a user's words."""
    if not name:
        return "is empty"
    if len(name) > 100:
        return "is longer than 100 characters"
    if not name.isascii():
        return "has letters outside ASCII, which a list name cannot have"
    if " " in name:
        return "has a space, which a list name cannot have"
    if not name[0].isalnum():
        return f"starts with '{name[0]}', which a list name cannot"
    bad = _OTHERS.search(name)
    return f"has '{bad[0] if bad else name}', which a list name cannot have"


def rename_hint(path: Path) -> str:
    """Rename ``path`` (a list file whose name breaks the rule) to what, and use which name."""
    better = suggested(path.stem)
    if better is None:
        return (f"rename {display_path(path)} to a name of ASCII letters, digits, '.', '_' "
                f"and '-', such as lists/partners{path.suffix}, and use that name")
    return (f"rename {display_path(path)} to {display_path(path.with_name(better + path.suffix))}"
            f" and use the name '{better}'; {RULE}")


def suggested(name: str) -> str | None:
    """``name`` made a list name (accents dropped, each run of other characters a '-'), or
    None when nothing of it is left (a name in Greek letters, say)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    better = _OTHERS.sub("-", ascii_name).strip("-._")[:100]
    return better if LIST_NAME.match(better) and any(c.isalnum() for c in better) else None


def unusable_file(lists_dir: Path, name: str) -> Path | None:
    """The file lists/<name>.csv|.yaml|.yml, when there is one."""
    try:
        return next((p for p in sorted(lists_dir.iterdir()) if p.stem == name
                     and p.suffix.lower() in LIST_SUFFIXES and p.is_file()), None)
    except OSError:
        return None


def unusable_files(lists_dir: Path) -> list[Path]:
    """The list files in ``lists_dir`` whose names break the rule: no command reads them."""
    try:
        return sorted(p for p in lists_dir.iterdir() if p.suffix.lower() in LIST_SUFFIXES
                      and not p.name.startswith(".")  # hidden on purpose
                      and not LIST_NAME.match(p.stem) and p.is_file())
    except OSError:
        return []
