"""The columns a reader's name is composed of, when a list has no ``name``: one definition
for every place that composes it (the CSV fast path ``list_columns``, the exact reader and
YAML lists in ``lists``, ``subscribers import``, and the greeting in ``compose.message``),
so the fast and the exact reader, and the greeting, never disagree.

Contact exports split the name: Mailchimp writes ``First Name`` / ``Last Name``, Brevo
(Sendinblue) ``FIRSTNAME`` / ``LASTNAME``, and ``PRENOM`` / ``NOM`` in a French account.
The columns are named as ``lists.column_name`` names them and are never renamed: each keeps
its own template field (``recipient.firstname`` stays what it was); they are only read.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

FIRST_NAMES = ("first_name", "firstname", "prenom", "prénom")
LAST_NAMES = ("last_name", "lastname", "nom")


@lru_cache(maxsize=64)
def name_columns(columns: tuple[str, ...]) -> tuple[str, ...]:
    """The first-name column, then the last-name one, of those ``columns`` has (the first
    of each kind, in the order above); cached, as every row of a list has the same keys."""
    return tuple(found for kind in (FIRST_NAMES, LAST_NAMES)
                 if (found := next((c for c in kind if c in columns), None)) is not None)


def composed_name(values: Mapping[str, str], columns: tuple[str, ...]) -> str | None:
    """First and last name joined, from ``name_columns``' columns; None when both are empty."""
    return " ".join(part for part in (values[c].strip() for c in columns) if part) or None


def first_name(fields: Mapping[str, str]) -> str:
    """The first name a greeting uses ("Bonjour Marie,"), or "" when the row has none."""
    for column in FIRST_NAMES:
        value = fields.get(column, "").strip()
        if value:
            return value
    return ""
