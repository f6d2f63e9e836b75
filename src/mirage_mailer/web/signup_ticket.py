"""The signed ticket that carries a sign-up from another site's form to this site's one button.

A form pasted into a project's own site is static HTML: it cannot carry a fresh CSRF field or
the time it was shown. So a post from an allowed site stores nothing and sends nothing; it gets
this site's page with one button, and the ticket in that page holds the checked sign-up, the
site it came from and when the page was made (milliseconds), all signed. Only the button's post
records the sign-up and mails the link, and only when it comes at least ``min_seconds`` after
the page: a robot that posts at once gets a polite page and nothing else. Nothing is kept on
the server between the two steps, so a robot that never comes back leaves no row behind.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum

MIN_SECONDS = 2.0  # reading one sentence and pressing a button takes a person longer
MAX_AGE = 3600.0  # a page left open longer starts again from the project's site
_CLOCK_SKEW = 60.0


@dataclass(frozen=True)
class Ticket:
    list_name: str
    email: str
    name: str | None
    lang: str
    origin: str  # the allowed site the form was posted from
    return_url: str | None  # a page of that site to go back to (already checked)
    issued_ms: int = 0


class Verdict(Enum):
    OK = "ok"
    TOO_FAST = "too fast"
    EXPIRED = "expired"
    INVALID = "invalid"


class SignUpTickets:
    def __init__(self, secret: bytes, *, min_seconds: float = MIN_SECONDS,
                 max_age: float = MAX_AGE, clock: Callable[[], float] = time.time) -> None:
        # A key of its own: a ticket can never pass as a CSRF field or a link token.
        self._key = hmac.new(secret, b"mirage-mailer sign-up ticket v1", hashlib.sha256).digest()
        self.min_seconds = min_seconds
        self.max_age = max_age
        self._clock = clock

    def _mac(self, body: bytes) -> str:
        digest = hmac.new(self._key, body, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def issue(self, ticket: Ticket) -> str:
        """The field value for ``ticket``, stamped now."""
        data = asdict(ticket) | {"issued_ms": int(self._clock() * 1000)}
        body = base64.urlsafe_b64encode(
            json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii"))
        return f"{body.decode('ascii').rstrip('=')}.{self._mac(body.rstrip(b'='))}"

    def read(self, value: str, list_name: str) -> tuple[Verdict, Ticket | None]:
        """The ticket in ``value`` for ``list_name`` and whether it may be used now."""
        body, _, mac = value.partition(".")
        if (not value.isascii() or len(value) > 8192 or not body
                or not hmac.compare_digest(mac.encode("ascii"),
                                           self._mac(body.encode("ascii")).encode("ascii"))):
            return Verdict.INVALID, None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            ticket = Ticket(**data)
        except (binascii.Error, ValueError, TypeError):
            return Verdict.INVALID, None
        if ticket.list_name != list_name or not isinstance(ticket.issued_ms, int):
            return Verdict.INVALID, None
        age = self._clock() - ticket.issued_ms / 1000
        if age < -_CLOCK_SKEW:
            return Verdict.INVALID, None
        if age > self.max_age:
            return Verdict.EXPIRED, ticket
        if age < self.min_seconds:
            return Verdict.TOO_FAST, ticket
        return Verdict.OK, ticket
