"""Web origins (``scheme://host[:port]``) as browsers write them, and return links that can only
lead back to a site the project named.

One normal form for both sides of every comparison: the config's ``web.allowed_origins``, the
``Origin`` header a browser sends, and a ``return_url`` from a form. Lower-case scheme and host,
international host names in their ASCII (punycode) form, no default port: this is how a
browser serialises an origin, so ``https://Example.org:443/`` and the header
``https://example.org`` are the same site, and ``https://example.org.evil.net`` is not.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

MAX_URL = 2048  # a return address longer than this is not a page of a project's site
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
# Nothing a browser would have to clean up: no whitespace, controls, backslashes, non-ASCII.
_PLAIN = re.compile(r"^[\x21-\x7e]+$")
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*"
                   r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$|^\[[0-9a-f:.]+\]$")


def _ascii_host(host: str) -> str | None:
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    return ascii_host if _HOST.match(ascii_host) else None


def _origin_of(parts: SplitResult) -> str | None:
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in parts.netloc or not parts.hostname:
        return None
    hostname = parts.hostname
    host = f"[{hostname}]" if ":" in hostname else _ascii_host(hostname)
    if host is None or not _HOST.match(host):
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    suffix = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{suffix}"


def origin_of(url: str) -> str | None:
    """The normal origin of an http(s) URL or origin, or None when it is not one (another
    scheme, user info, no host, a bad port)."""
    try:
        return _origin_of(urlsplit(url.strip()))
    except ValueError:
        return None


def origin_problem(value: str) -> tuple[str, str] | None:
    """Why ``value`` is not an origin to allow in ``web.allowed_origins``, and what to write
    instead (None: it is one).

    Only https, except localhost and 127.0.0.1 for testing, as for ``tracking.base_url``; no
    path, query or fragment (an origin is a whole site), no wildcard (list each site)."""
    text = value.strip()
    example = "write each site as https://www.example.org"
    if "*" in text:
        return "has a wildcard", "list each site's address on its own line"
    try:
        parts = urlsplit(text)
    except ValueError:
        return "is not a web address", example
    if _origin_of(parts) is None or "://" not in text:
        return "is not a web address", example
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.endswith(("?", "#")):
        return "has a path", "give only the site: scheme, host and port, without the page"
    local = (parts.hostname or "").lower() in _LOCAL_HOSTS
    if parts.scheme.lower() != "https" and not local:
        return ("must start with https://",
                "plain http is allowed only for localhost or 127.0.0.1, for testing")
    return None


def safe_return_url(value: str, allowed: frozenset[str] | set[str]) -> str | None:
    """``value`` rebuilt from its parts when it is a page of one of the ``allowed`` origins,
    else None. Never an open redirect: the rebuilt link's origin is always one of them."""
    if not value or len(value) > MAX_URL or not _PLAIN.match(value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    origin = _origin_of(parts)
    if origin is None or origin not in allowed or not value.lower().startswith(
            f"{parts.scheme.lower()}://"):
        return None
    path = parts.path or "/"
    if not path.startswith("/"):
        return None
    query = f"?{parts.query}" if parts.query else ""
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{origin}{path}{query}{fragment}"


def site_label(origin: str) -> str:
    """How a person knows the site: its host name, international names in their own script."""
    host = urlsplit(origin).hostname or origin
    try:
        return host.encode("ascii").decode("idna")
    except UnicodeError:
        return host
