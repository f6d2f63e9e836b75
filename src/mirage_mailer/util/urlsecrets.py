"""URLs as messages may show them: without a login, and without a query or fragment.

A password pasted into a URL by mistake sits either before the host (``smtp://bob:pw@host``)
or in its query (``smtp://host?password=pw``, ``https://x.org/?token=...``). Messages end up
in cron logs, terminals and support tickets, so both are masked wherever a configured URL is
shown; the URL as written is still used to connect.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*:/*)[^/?#\s]*@")
# a query or fragment of a scheme://... URL, up to the end of the URL (space or quote)
_EXTRA = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s?#'\"]*)([?#])[^\s'\"]*")


def redact(text: str) -> str:
    """``smtp://bob:pw@host?password=x`` -> ``smtp://***@host?***``: no message ever prints
    a secret. Only ``scheme://`` URLs lose their query: ``maildir:out?x`` is a path."""
    return mask_query(_USERINFO.sub(r"\1***@", text))


def mask_query(text: str) -> str:
    """``scheme://host/x?a=b#c`` -> ``scheme://host/x?***``; the rest as written (for a URL
    whose login is known to hold no password, as a checked PostgreSQL URL)."""
    return _EXTRA.sub(r"\1\2***", text)


def has_userinfo(url: str) -> bool:
    """``scheme://user:pass@host``; a path with an @ in it (maildir:a@b) is no userinfo."""
    return _USERINFO.search(url) is not None and "://" in url.partition("@")[0]


def has_query_or_fragment(url: str) -> bool:
    """``scheme://host?...`` or ``scheme://host#...``: where a mistaken secret may sit."""
    return _EXTRA.search(url) is not None
