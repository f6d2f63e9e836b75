"""The report's password check, kept cheap for everyone but the password's owner.

Each check of a password costs a PBKDF2 (600,000 rounds: about 0.2 s of CPU), so a client that
sends wrong passwords in a loop could keep the server's cores busy. A client gets a few
checks (``ATTEMPTS`` per ``WINDOW``); then it is answered 429 at once, with no PBKDF2, until
its window ends. A right password clears its client's count and is remembered for
``REMEMBERED_FOR`` seconds, so the person reading the report does not pay the PBKDF2 on every
page. What is remembered is an HMAC of the credentials under a key made at start and never
stored, compared in constant time; never the password itself. The hash the password was
checked against is part of it, so a new hash in the environment forgets every remembered
credential at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable

from mirage_mailer.web.ratelimit import SlidingWindow, client_key

ATTEMPTS = 5  # password checks per client ...
WINDOW = 900.0  # ... per 15 minutes, unless one of them was right
REMEMBERED_FOR = 300.0  # a right password is not checked again for five minutes
MAX_REMEMBERED = 16  # credentials remembered at once (one report user: a few browsers)


class ReportGate:
    """Shared by the report pages of one app; safe to use from the thread pool."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._attempts = SlidingWindow(ATTEMPTS, WINDOW, clock)
        self._key = secrets.token_bytes(32)
        self._remembered: list[tuple[bytes, float]] = []  # (digest, until)
        self._lock = threading.Lock()

    def _digest(self, encoded: str, user: str, password: str) -> bytes:
        text = f"{encoded.strip()}\0{user}:{password}".encode("utf-8", "surrogatepass")
        return hmac.new(self._key, text, hashlib.sha256).digest()

    def remembered(self, encoded: str, user: str, password: str) -> bool:
        """True when these credentials were found right within ``REMEMBERED_FOR`` seconds
        against the same hash. Every remembered digest is compared, in constant time."""
        digest = self._digest(encoded, user, password)
        now = self._clock()
        with self._lock:
            self._remembered = [(kept, until) for kept, until in self._remembered if until > now]
            found = False
            for kept, _until in self._remembered:
                found |= hmac.compare_digest(kept, digest)
            return found

    def attempt(self, host: str) -> int:
        """Count one password check for the client at ``host``: 0 when it may have it, else
        the seconds until it may (not counted)."""
        key = client_key(host)
        with self._lock:
            if self._attempts.allow(key):
                return 0
            return self._attempts.retry_after(key)

    def right(self, host: str, encoded: str, user: str, password: str) -> None:
        """The credentials were right: clear the client's count and remember them."""
        digest = self._digest(encoded, user, password)
        with self._lock:
            self._attempts.forget(client_key(host))
            kept = [entry for entry in self._remembered if entry[0] != digest]
            kept.append((digest, self._clock() + REMEMBERED_FOR))
            self._remembered = kept[-MAX_REMEMBERED:]
