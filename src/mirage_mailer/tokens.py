"""Signed per-recipient tokens for unsubscribe, view-online and confirmation links.

A token is ``<subject-id>.<signature>``: the subject id is a keyed hash of the address (so
the address never appears in a URL and ids cannot be enumerated), the signature is
HMAC-SHA256 over (purpose, issue, subject id). The server finds the address by its id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from mirage_mailer.errors import InputError, Problem

PURPOSES = ("unsubscribe", "view", "confirm")
_ID_BYTES = 12
_SIG_BYTES = 16


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

    def subject_id(self, address: str) -> str:
        digest = hmac.new(self._key, b"id\x00" + address.strip().lower().encode(), "sha256")
        return _b64(digest.digest()[:_ID_BYTES])

    def _signature(self, purpose: str, scope: str, subject: str) -> str:
        msg = "\x00".join((purpose, scope, subject)).encode("utf-8")
        return _b64(hmac.new(self._key, msg, hashlib.sha256).digest()[:_SIG_BYTES])

    def make(self, purpose: str, scope: str, address: str) -> str:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown token purpose {purpose!r}")
        subject = self.subject_id(address)
        scope_b64 = _b64(scope.encode("utf-8"))
        return f"{scope_b64}.{subject}.{self._signature(purpose, scope, subject)}"

    def verify(self, purpose: str, token: str) -> tuple[str, str] | None:
        """(scope, subject id) when the token is genuine for this purpose, else None."""
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
        expected = self._signature(purpose, scope, parts[1])
        if not hmac.compare_digest(expected, parts[2]):
            return None
        return scope, parts[1]
