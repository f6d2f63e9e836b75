"""The address every link is built from (``tracking.base_url``, ``archive --base-url``).

Links are the base plus a path (``<base>/u/<token>``, ``<base>/issues/<id>/``), so the base
must be a site and at most a path. After a query or a fragment, the appended path is no path:
``https://x.org#top/u/<token>`` one-click-posts to ``/`` and nobody can unsubscribe. A space
or a character a URL cannot carry unescaped breaks the List-Unsubscribe header and the
links in the message. So each of them is refused with the fix, before anything is sent.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from mirage_mailer.project.config_checks import has_userinfo
from mirage_mailer.project.origins import origin_of

_LOCAL_HOSTS = ("localhost", "127.0.0.1")
# RFC 3986: unreserved, sub-delims, ':' '@' '/' and percent escapes; nothing else unescaped.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
EXAMPLE = "https://news.example.org"


def base_url_problem(url: str, *, http_anywhere: bool = False) -> tuple[str, str] | None:
    """What makes ``url`` unusable as the base of links, and the fix; None when it is usable.

    Plain http only for localhost or 127.0.0.1 (testing), unless ``http_anywhere``. The
    message never holds the URL: the caller echoes it, redacted."""
    if has_userinfo(url):
        return ("holds a user name or password",
                "remove them: every reader would see them in the links")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return ("contains a space or a control character",
                "remove it, or write a space in a path as %20")
    if not url.isascii():
        return ("contains characters a link cannot carry as they are",
                f"write it as {_ascii_form(url)}")
    if "?" in url or "#" in url:
        return ("has a query (?...) or a fragment (#...): links built from it would lose "
                "their path", f"remove everything from the '?' or '#' on, e.g. {EXAMPLE}")
    try:
        parts = urlsplit(url)
        scheme, hostname = parts.scheme.lower(), parts.hostname
        parts.port  # noqa: B018 - raises for a port that is not 0-65535
    except ValueError:
        return "is not a web address", f"check the host and the port, e.g. {EXAMPLE}:8443"
    local = hostname in _LOCAL_HOSTS
    if scheme != "https" and not (scheme == "http" and (local or http_anywhere)):
        return ("must be an https:// URL",
                "plain http is allowed only for localhost or 127.0.0.1, for testing")
    if not hostname or origin_of(url) is None or "://" not in url:
        return "is not a web address", f"write the server's address, e.g. {EXAMPLE}"
    if _BAD_ESCAPE.search(parts.path):
        return ("has a '%' without two hex digits after it", "write a '%' itself as %25")
    odd = sorted({ch for ch in parts.path if not _URL_CHARS.match(ch)})
    if odd:
        return (f"contains {' '.join(odd)}, which a link cannot carry unescaped",
                f"percent-encode it ({odd[0]} is {quote(odd[0], safe='')}), or remove it")
    return None


def _ascii_form(url: str) -> str:
    """``https://bücher.example/ä`` -> ``https://xn--bcher-kva.example/%C3%A4``."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").encode("idna").decode("ascii")
        port = f":{parts.port}" if parts.port else ""
    except (ValueError, UnicodeError):
        return f"an ASCII address, e.g. {EXAMPLE}"
    path = quote(parts.path, safe="/%:@!$&'()*+,;=-._~")
    return f"{parts.scheme}://{host}{port}{path}"
