"""Where the tracking store lives: a SQLite file (the embedded default) or a PostgreSQL URL.

``tracking.database`` is a path unless it starts with ``postgresql://`` or ``postgres://``.
A password never sits in ``mirage.yaml``: libpq reads ``PGPASSWORD``, ``~/.pgpass`` or the
variable ``tracking.password_env`` names, so the URL kept here is safe to print.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from mirage_mailer.util.urlsecrets import mask_query

SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class PostgresUrl:
    """A PostgreSQL server and database, without any password (refused when parsed)."""

    url: str
    password_env: str | None = None  # the variable holding the password, if any

    def __str__(self) -> str:
        """How messages show it: its query (sslmode=..., perhaps a mistaken secret) masked."""
        return mask_query(self.url)

    def password(self) -> str | None:
        """The password from ``password_env`` (None: libpq's own PGPASSWORD or ~/.pgpass)."""
        if self.password_env is None:
            return None
        return os.environ.get(self.password_env) or None


Database = Path | PostgresUrl


def is_postgres(text: str) -> bool:
    return text.strip().lower().startswith(SCHEMES)


def parse_postgres(text: str, password_env: str | None = None) -> PostgresUrl:
    """The URL as written, checked: ``ValueError`` (its message says what is wrong) when it
    holds a password, in the authority or as a ``password=`` parameter, or is not a URL."""
    text = text.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise ValueError(f"is not a valid PostgreSQL URL ({exc})") from None
    if parts.password is not None or ":" in parts.netloc.rpartition("@")[0]:
        raise ValueError("holds a password")
    for key, _ in parse_qsl(parts.query):
        if key.lower() in ("password", "sslpassword"):
            raise ValueError(f"holds a password ({key.lower()}= parameter)")
    return PostgresUrl(text, password_env)


def describe(database: Database) -> str:
    """How messages name the store: the path, or the URL (which never holds a password)."""
    return str(database)
