"""Which lists the public may join (``web.signup_lists``): the form on ``serve``, its posts,
the confirmation of a pending sign-up, the pasted snippet and the archive's "subscribe" links
all ask ``open_lists``.

Offices keep partner, board or press lists beside the public newsletter, so a list file is
not an invitation. With the key, exactly the lists it names take sign-ups. Without it, a
project with one list keeps taking sign-ups on it (every project made before the key); a
project with several takes none until the officer says which, and ``validate`` and ``serve``
say so (``closed_warning``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mirage_mailer.project.config_checks import describe
from mirage_mailer.project.issue_values import LIST_NAME
from mirage_mailer.project.lists import LIST_SUFFIXES, broken_list_link, list_names
from mirage_mailer.project.yamlsrc import LineDict, LineList
from mirage_mailer.util.errors import Collector, Problem, display_path, shorten

if TYPE_CHECKING:
    from mirage_mailer.project.config import Settings

KEY = "signup_lists"
EXAMPLE = "signup_lists: [subscribers]"


def read_signup_lists(sec: LineDict, path: Path, problems: Collector,
                      lists_dir: Path) -> tuple[str, ...] | None:
    """``web.signup_lists`` as written (None: the key is absent); each name must be a file
    in lists/, or the problem names its line."""
    value = sec.get(KEY)
    if KEY not in sec:
        return None
    items: list[tuple[str | None, object, int]]
    if isinstance(value, LineList):
        items = [(value.text(i), item, value.item_line(i)) for i, item in enumerate(value)]
    elif isinstance(value, str):
        items = [(value, value, sec.key_line(KEY))]
    else:
        problems.add(path, sec.key_line(KEY),
                     f"'web.{KEY}' must be a list of list names; you wrote {describe(value)}",
                     f"name the lists the public may join, e.g. {EXAMPLE}")
        return ()
    found: list[str] = []
    for written, item, line in items:
        name = (written or "").strip()
        if isinstance(item, dict | list) or not LIST_NAME.match(name):
            problems.add(path, line, f"'web.{KEY}' item {describe(item)} is not a list name",
                         "give the name without folder or extension, e.g. 'subscribers' for "
                         "lists/subscribers.csv")
        elif not any((lists_dir / f"{name}{suffix}").is_file() for suffix in LIST_SUFFIXES):
            if (broken := broken_list_link(lists_dir, name)) is not None:
                problems.add(path, line, f"'web.{KEY}' names list '{shorten(name)}': "
                             f"{broken[0]}", broken[1])
                continue
            problems.add(path, line, f"'web.{KEY}' names list '{shorten(name)}', which is not "
                         "a list file", f"create {display_path(lists_dir / name)}.csv or "
                         ".yaml, or remove the name")
        elif name not in found:
            found.append(name)
    return tuple(found)


def open_lists(settings: Settings) -> frozenset[str]:
    """The lists that take public sign-ups now (a list file removed since start is closed).

    The same work whatever list a request names: a closed list and an unknown one cannot be
    told apart by the answer or by its time."""
    if not settings.web.signup:
        return frozenset()
    present = list_names(settings.lists_dir)
    chosen = settings.web.signup_lists
    if chosen is None:
        return frozenset(present) if len(present) == 1 else frozenset()
    return frozenset(present).intersection(chosen)


def _line(settings: Settings) -> int:
    return settings.line_of.get(f"web.{KEY}") or settings.line_of.get("web") or 1


def closed_warning(settings: Settings) -> Problem | None:
    """Sign-up on, no ``web.signup_lists``, several lists: one line naming the key to set."""
    if not settings.web.signup or settings.web.signup_lists is not None:
        return None
    present = list_names(settings.lists_dir)
    if len(present) < 2:
        return None
    return Problem(display_path(settings.path), _line(settings),
                   f"the project has {len(present)} lists ({shorten(', '.join(present))}) and "
                   f"web.{KEY} is not set: no list takes public sign-ups",
                   f"add '{KEY}: [NAME, ...]' under 'web:' with the lists the public may "
                   "join", warning=True)


def closed_problem(settings: Settings, name: str) -> Problem:
    """Why ``name`` takes no public sign-ups (for ``signup-snippet``)."""
    where = display_path(settings.path)
    if settings.web.signup_lists is None:
        return Problem(where, _line(settings),
                       f"list '{shorten(name)}' takes no public sign-ups: web.{KEY} is not "
                       "set and the project has several lists",
                       f"if the public may join it, add '{KEY}: [{shorten(name)}]' under "
                       "'web:'")
    chosen = ", ".join(settings.web.signup_lists) or "none"
    return Problem(where, _line(settings),
                   f"list '{shorten(name)}' takes no public sign-ups (web.{KEY}: {chosen})",
                   f"add it to web.{KEY} if the public may join it")
