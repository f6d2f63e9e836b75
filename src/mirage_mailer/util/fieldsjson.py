"""A row's template fields as the tracking store keeps them (JSON text).

Here rather than in ``store/`` so that the list reader child (``project/list_worker.py``),
which may not import the store, writes it for rows bound for the store, beside their
checks, instead of the main process (a tenth of a first plan's main-thread time).
"""

from __future__ import annotations

import json

_FIELDS = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per row
_STRING = json.encoder.encode_basestring  # the string encoder _FIELDS uses (C when built)
encode_string = _STRING  # one value as ``fields_json`` writes it (list_columns' fast rows)


def fields_json(fields: dict[str, str]) -> str:
    """A row's template fields as the store keeps them: exactly ``_FIELDS``'s text.

    A dict of strings is written from its encoded keys and values directly; the encoder
    sets up its machinery anew on each call, which took two thirds of a row's 1.5 µs (once
    per list row when an issue is first planned). Anything else takes the encoder."""
    if not fields:
        return "{}"
    try:
        return "{" + ", ".join([f"{_STRING(k)}: {_STRING(v)}" for k, v in fields.items()]) + "}"
    except TypeError:  # a value that is not a string (the encoder's own rules apply)
        return _FIELDS(fields)


def stored_fields(fields: dict[str, str], text: str | None) -> str:
    """The fields text a row is stored with: ``text`` when the list reader already wrote it
    (``Subscriber.fields_text``, ``NewRecipient.fields_text``), else ``fields_json(fields)``."""
    return fields_json(fields) if text is None else text
