"""Stateless CSRF protection: a hidden form field ``<time>.<HMAC(time, form path)>``.

No cookies and no server-side session: the site sets no cookie at all (GDPR, and the RFC 8058
one-click answer must not set one). The field proves the form was served by this site for
this path within ``max_age``; ``cross_site`` adds the browser's own word (Origin and
Sec-Fetch-Site) so a page elsewhere cannot post a form it fetched on a visitor's behalf.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.requests import Request

from mirage_mailer.web.i18n import N_

FIELD = "csrf"
MAX_AGE = 4 * 3600  # a person may leave a form open for a while
_CLOCK_SKEW = 60


class CsrfTokens:
    def __init__(self, secret: bytes, *, max_age: int = MAX_AGE,
                 clock: Callable[[], float] = time.time) -> None:
        # A key of its own, so a CSRF field can never double as a link token.
        self._key = hmac.new(secret, b"mirage-mailer csrf v1", hashlib.sha256).digest()
        self.max_age = max_age
        self._clock = clock

    def _sign(self, stamp: str, action: str) -> str:
        mac = hmac.new(self._key, f"{stamp}\x00{action}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode("ascii")

    def issue(self, action: str) -> str:
        """A field value for a form that posts to ``action`` (a URL path)."""
        stamp = str(int(self._clock()))
        return f"{stamp}.{self._sign(stamp, action)}"

    def problem(self, value: str | None, action: str) -> str | None:
        """None when ``value`` is a genuine, fresh field for ``action``; else what is wrong and
        what to do (a msgid: the error page translates it)."""
        if not value:
            return N_("The form did not carry its security field. Reload the page and send the "
                      "form again.")
        stamp, _, signature = value.partition(".")
        # Bytes: compare_digest refuses non-ASCII text with a TypeError (a 500, not an answer).
        if (not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12
                or not hmac.compare_digest(signature.encode("utf-8"),
                                           self._sign(stamp, action).encode("ascii"))):
            return N_("The form's security field is not valid. Reload the page and send the "
                      "form again.")
        age = self._clock() - int(stamp)
        if age > self.max_age or age < -_CLOCK_SKEW:
            return N_("The form has expired. Reload the page and send the form again.")
        return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def cross_site(request: Request, base_url: str | None) -> bool:
    """True when the browser says the form was posted from another site."""
    fetch_site = request.headers.get("sec-fetch-site", "").lower()
    if fetch_site == "cross-site":
        return True
    if fetch_site == "same-origin":
        # Chromium sends "Origin: null" with same-origin form posts under our
        # "Referrer-Policy: no-referrer"; Sec-Fetch-Site is the browser's own word for it.
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return False  # non-browser clients and older browsers; the CSRF field still applies
    allowed = {_origin(str(request.url))}
    if base_url:
        allowed.add(_origin(base_url))
    return origin.lower() not in allowed  # "null" (sandboxed or privacy contexts) included
