"""Signed per-recipient tokens for unsubscribe, view-online, confirmation, open and click links.

A token is ``<scope>.<subject-id>.<signature>``: the subject id is a keyed hash of the address
(so the address never appears in a URL and ids cannot be enumerated), the signature is
HMAC-SHA256 over (purpose, issue, subject id). The server finds the address by its id.

A click token's signature also covers the target URL, which travels beside it (``?u=``): the
redirector only ever sends people to a URL that we signed for that issue and reader, so it can
never serve as an open redirect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from mirage_mailer.errors import InputError, Problem

PURPOSES = ("unsubscribe", "view", "confirm", "open")
CLICK = "click"
_ID_BYTES = 12
_SIG_BYTES = 16
_SUBJECT_RE = re.compile(r"[A-Za-z0-9_-]+")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def load_secret(state_dir: Path, secret_env: str | None) -> bytes:
    """The signing key: from the named environment variable, else ``.mirage/secret`` (0600)."""
    if secret_env:
        value = os.environ.get(secret_env)
        if not value:
            raise InputError(
                Problem(
                    "mirage.yaml",
                    None,
                    f"tracking.secret_env names {secret_env}, which is not set",
                    f"export {secret_env}=<a long random string>, or remove secret_env to "
                    "use .mirage/secret",
                )
            )
        return value.encode("utf-8")
    path = state_dir / "secret"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        return None


class Signer:
    """Makes and checks tokens ``<scope>.<subject-id>.<signature>`` with one key.

    The scope is the issue id (or list name for confirmations), base64url-encoded so any id
    survives in a URL path; it is not secret. The subject id hides the address.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._scopes: dict[str, str] = {}

    def subject_id(self, address: str) -> str:
        digest = hmac.digest(self._key, b"id\x00" + address.strip().lower().encode(), "sha256")
        return _b64(digest[:_ID_BYTES])

    def _signature(self, purpose: str, scope: str, subject: str) -> str:
        msg = "\x00".join((purpose, scope, subject)).encode("utf-8")
        return _b64(hmac.digest(self._key, msg, "sha256")[:_SIG_BYTES])

    def make(self, purpose: str, scope: str, address: str) -> str:
        return self.make_for_subject(purpose, scope, self.subject_id(address))

    def make_for_subject(self, purpose: str, scope: str, subject: str) -> str:
        """A token for a subject id already computed (one keyed hash per recipient)."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown token purpose {purpose!r}")
        scope_b64 = self._scopes.get(scope)
        if scope_b64 is None:
            scope_b64 = self._scopes.setdefault(scope, _b64(scope.encode("utf-8")))
        return f"{scope_b64}.{subject}.{self._signature(purpose, scope, subject)}"

    def clicks(self, scope: str) -> ClickSigner:
        """Click tokens for one issue; the HMAC state of the shared prefix is computed once."""
        return ClickSigner(self._key, scope)

    def verify_click(self, token: str, url: str) -> tuple[str, str] | None:
        """(scope, subject id) when ``token`` was made for exactly ``url``, else None."""
        parsed = _parse(token)
        if parsed is None or "\x00" in url:
            return None
        scope, subject, signature = parsed
        expected = ClickSigner(self._key, scope).signature(subject, url)
        if not hmac.compare_digest(expected, signature):
            return None
        return scope, subject

    def verify(self, purpose: str, token: str) -> tuple[str, str] | None:
        """(scope, subject id) when the token is genuine for this purpose, else None."""
        parsed = _parse(token)
        if parsed is None or purpose == CLICK:
            return None
        scope, subject, signature = parsed
        expected = self._signature(purpose, scope, subject)
        if not hmac.compare_digest(expected, signature):
            return None
        return scope, subject


def _parse(token: str) -> tuple[str, str, str] | None:
    """(scope, subject id, signature) of a well-formed token, else None."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    raw_scope = _unb64(parts[0])
    if raw_scope is None:
        return None
    try:
        scope = raw_scope.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in scope or not _SUBJECT_RE.fullmatch(parts[1]):
        return None
    return scope, parts[1], parts[2]


class ClickSigner:
    """Signs (``click``, issue, subject id, target URL) for one issue.

    The message is ``click NUL issue NUL subject NUL url``; neither the issue (checked when a
    token is parsed) nor the subject id (base64url) nor the URL (refused) may contain NUL, so
    no two tuples share a message. HMAC is incremental: the key and the ``click NUL issue NUL``
    prefix are absorbed once, and each link costs one copy, one update and one digest.
    """

    def __init__(self, key: bytes, scope: str) -> None:
        self.scope = scope
        self._scope_b64 = _b64(scope.encode("utf-8"))
        self._prefix = hmac.new(key, f"{CLICK}\x00{scope}\x00".encode(), hashlib.sha256)

    def signature(self, subject: str, url: str) -> str:
        mac = self._prefix.copy()
        mac.update(f"{subject}\x00{url}".encode())
        return _b64(mac.digest()[:_SIG_BYTES])

    def token(self, subject: str, url: str) -> str:
        if "\x00" in url:
            raise ValueError("a link target cannot contain NUL")
        return f"{self._scope_b64}.{subject}.{self.signature(subject, url)}"
