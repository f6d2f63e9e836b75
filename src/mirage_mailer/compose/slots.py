"""Per-recipient slots: markers rendered once into each language's output, filled per message.

Heavy work (Markdown, Jinja2, CSS inlining) runs once per issue and language and leaves
``__MM_<name>__`` markers where a recipient's values go; filling them is a string join.
Markers are plain word characters so that Jinja2, lxml, premailer and text wrapping all pass
them through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from jinja2 import StrictUndefined
from markupsafe import Markup

SLOT_RE = re.compile(r"__MM_([A-Za-z0-9_]+?)__")
BUILTIN = ("unsubscribe_url", "view_online_url", "email", "name", "greeting")


def slot(name: str) -> Markup:
    return Markup(f"__MM_{name}__")


class RecipientSlots:
    """What templates see as ``recipient``: each known field renders as its slot.

    Unknown fields raise AttributeError, which Jinja2's StrictUndefined turns into an error
    naming the template line, instead of an empty string in 10,000 messages.
    """

    def __init__(self, fields: Iterable[str]) -> None:
        self._fields = frozenset(fields)

    def __repr__(self) -> str:
        return "recipient"

    def __getattr__(self, name: str) -> Markup:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in ("email", "name", "greeting"):
            return slot(name)
        if name in self._fields:
            return slot(f"field_{name}")
        raise AttributeError(name)

    def __getitem__(self, name: str) -> Markup:
        try:
            return self.__getattr__(name)
        except AttributeError:
            raise KeyError(name) from None


def split_slots(text: str) -> tuple[list[str], list[str]]:
    """'a__MM_x__b' -> (['a', 'b'], ['x']): static chunks around slot names."""
    parts = SLOT_RE.split(text)
    return parts[0::2], parts[1::2]


class MirageUndefined(StrictUndefined):
    """StrictUndefined whose message names the recipient fields the lists really have."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        if isinstance(obj, RecipientSlots):
            known = ", ".join(sorted({"email", "name", "greeting"} | obj._fields))
            return f"recipient has no field '{self._undefined_name}' (known: {known})"
        return str(super()._undefined_message)
