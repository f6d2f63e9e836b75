"""Per-recipient slots: markers rendered once into each language's output, filled per message.

Heavy work (Markdown, Jinja2, CSS inlining) runs once per issue and language and leaves
``__MM_<name>__`` markers where a recipient's values go; filling them is a string join.
Markers are plain word characters so that Jinja2, lxml, premailer and text wrapping all pass
them through untouched: a field whose name is not plain ASCII words (``Société``, ``a__b``)
gets its slot name hex-encoded. Filters, tests and ``{% if %}`` on fields run per recipient
(``fragments``); ``leftover_markers`` is the guard that no marker ever reaches a message.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from jinja2 import StrictUndefined
from markupsafe import Markup

_NAME = r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*"  # no "__" inside: that ends the marker
SLOT_RE = re.compile(rf"__MM_({_NAME})__")
_PLAIN = re.compile(_NAME)
_ANY_MARKER = re.compile(r"__mm_\w*", re.IGNORECASE)  # what is left of one a filter changed
MARKER_TEXT = _ANY_MARKER
BUILTIN = ("unsubscribe_url", "view_online_url", "email", "name", "greeting")
RECIPIENT = "recipient"
FRAGMENT_PREFIX = "frag_"  # slots filled by rendering a fragment (``fragments``): HTML already


@functools.lru_cache(maxsize=4096)
def field_slot(name: str) -> str:
    """The slot name of list column ``name``: ``field_<name>``, hex-encoded unless plain."""
    if _PLAIN.fullmatch(name):
        return f"field_{name}"
    return "fieldx_" + name.encode("utf-8", "surrogatepass").hex()


class Blank(str):
    """An empty recipient value: falsy like '', and missing for ``default`` (an empty cell
    means 'no organisation', not 'an organisation called nothing')."""

    __slots__ = ()


def slot(name: str) -> Markup:
    return Markup(f"__MM_{name}__")


class RecipientSlots:
    """What templates see as ``recipient``: each known field renders as its slot.

    Unknown fields raise AttributeError, which Jinja2's StrictUndefined turns into an error
    naming the template line, instead of an empty string in 10,000 messages.
    """

    _mm_recipient = True

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
            return slot(field_slot(name))
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


def leftover_markers(text: str, known: Iterable[str]) -> list[str]:
    """Markers in ``text`` that filling would not replace: slots with names outside
    ``known``, and the remains of a marker a template changed (``__mm_name__``)."""
    chunks, names = split_slots(text)
    allowed = set(known)
    left = [f"__MM_{name}__" for name in names if name not in allowed]
    left += [m.group(0) for chunk in chunks for m in _ANY_MARKER.finditer(chunk)]
    return list(dict.fromkeys(left))


class MirageUndefined(StrictUndefined):
    """StrictUndefined whose message names the recipient fields the lists really have."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        if getattr(type(obj), "_mm_recipient", False):  # RecipientSlots, RecipientValues
            known = ", ".join(sorted({"email", "name", "greeting"} | obj._fields))
            return f"recipient has no field '{self._undefined_name}' (known: {known})"
        return str(super()._undefined_message)
