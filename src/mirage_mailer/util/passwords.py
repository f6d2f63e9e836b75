"""Password hashes for the report's HTTP basic auth: ``pbkdf2_sha256$<iterations>$<salt>$<hash>``.

The hash lives in an environment variable (``web.report_password_hash_env``), never in
mirage.yaml; ``mirage-mailer hash-password`` makes one. Salt and hash are standard base64.
Standard library only: ``hashlib.pbkdf2_hmac`` and a constant-time comparison.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
MIN_ITERATIONS = 1_000
MAX_ITERATIONS = 10_000_000  # a hash in the environment must not make every request hang
_SALT_BYTES = 16


class BadHash(ValueError):
    """The stored hash is not ``pbkdf2_sha256$<iterations>$<salt>$<hash>``."""


def hash_password(password: str, *, iterations: int = ITERATIONS,
                  salt: bytes | None = None) -> str:
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}")
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "$".join((ALGORITHM, str(iterations), base64.b64encode(salt).decode("ascii"),
                     base64.b64encode(digest).decode("ascii")))


def parse_hash(encoded: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, digest); raises ``BadHash`` with what is wrong."""
    parts = encoded.strip().split("$")
    if len(parts) != 4 or parts[0] != ALGORITHM:
        raise BadHash(f"expected {ALGORITHM}$<iterations>$<salt>$<hash>")
    if not parts[1].isdigit() or not MIN_ITERATIONS <= int(parts[1]) <= MAX_ITERATIONS:
        raise BadHash(f"iterations must be a number from {MIN_ITERATIONS} to {MAX_ITERATIONS}")
    try:
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadHash("salt and hash must be base64") from exc
    if not salt or len(digest) != hashlib.sha256().digest_size:
        raise BadHash("salt is empty or the hash is not 32 bytes")
    return int(parts[1]), salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; raises ``BadHash`` for a malformed hash."""
    iterations, salt, digest = parse_hash(encoded)
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(candidate, digest)
