"""Signed per-recipient tokens for unsubscribe, view-online, confirmation, open and click links.

A token is ``<scope>.<subject-id>.<signature>``: the subject id is a keyed hash of the address
(so the address never appears in a URL and ids cannot be enumerated), the signature is
HMAC-SHA256 over (purpose, issue, subject id). The server finds the address by its id.

A click token's signature also covers the target URL, which travels beside it (``?u=``): the
redirector only ever sends people to a URL that we signed for that issue and reader, so it can
never serve as an open redirect.

Keys are at least 32 bytes. Rotation never drops a key: RFC 8058 links must work for as long as
the message exists, so earlier keys stay (after the current one) and are used to check tokens,
never to make them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirage_mailer.util.errors import InputError, Problem, display_path
from mirage_mailer.util.statedir import (
    DIR_MODE,
    FILE_MODE,
    SENT_MARKER,
    create_once,
    replace_atomically,
    tighten,
)
from mirage_mailer.util.statefault import state_write_error

PURPOSES = ("unsubscribe", "view", "confirm", "open")
CLICK = "click"
_ID_BYTES = 12
_SIG_BYTES = 16
_SUBJECT_RE = re.compile(r"[A-Za-z0-9_-]+")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(raw: bytes) -> str:
    """URL-safe base64 without padding, exactly ``base64.urlsafe_b64encode``'s text: the C
    encoder called directly, as that module's two Python frames were half the cost of a
    subject id (made once per list row when an issue is planned)."""
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode(
        "ascii")


def _hmac_states(key: bytes, prefix: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's inner and outer hashes (RFC 2104) after the padded key, the inner one
    also after ``prefix``: copying them per message is what ``hmac``'s own pure-Python
    path does, without its frames. ``hmac.digest`` set both up again on every call: a
    subject id, made once per row when an issue is planned, 1.48 -> 0.64 µs (a test
    compares both on keys shorter than, as long as and longer than the hash's block)."""
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\x00")
    inner = hashlib.sha256(key.translate(_IPAD))
    inner.update(prefix)
    return inner, hashlib.sha256(key.translate(_OPAD))


_IPAD = bytes(n ^ 0x36 for n in range(256))
_OPAD = bytes(n ^ 0x5C for n in range(256))
MIN_SECRET_BYTES = 32
NEW_SECRET = 'python3 -c "import secrets; print(secrets.token_urlsafe(48))"'
REPLACE_LOST = "mirage-mailer rotate-secret --replace-lost"


class Secret(bytes):
    """The current signing key (the bytes themselves) and the earlier keys kept for checking.

    A ``bytes`` subclass so that every caller that signs with "the secret" keeps doing so with
    the current key only, while ``Signer(secret)`` also accepts links made with the earlier
    ones. Its repr never shows a key.
    """

    earlier: tuple[bytes, ...]

    def __new__(cls, current: bytes, earlier: Sequence[bytes] = ()) -> Secret:
        made = super().__new__(cls, current)
        made.earlier = tuple(bytes(key) for key in earlier)
        return made

    def __repr__(self) -> str:
        return f"Secret(<{len(self)} bytes>, {len(self.earlier)} earlier)"

    __str__ = __repr__


@dataclass(frozen=True)
class Rotation:
    path: Path
    kept: int  # earlier keys still accepted for verification
    dropped: int  # keys too short to keep (anyone could forge links with them)


def _short(where: str, line: int | None, size: int, hint: str) -> InputError:
    what = "empty" if size == 0 else f"{size} bytes long"
    return InputError(Problem(
        where, line, f"the signing secret is {what}; at least {MIN_SECRET_BYTES} random bytes "
        "are needed, or anyone can forge unsubscribe and confirmation links", hint))


def _env_secret(secret_env: str) -> Secret:
    value = os.environ.get(secret_env)
    if value is None:
        raise InputError(Problem(
            "mirage.yaml", None, f"tracking.secret_env names {secret_env}, which is not set",
            f'export {secret_env}="$({NEW_SECRET})", or remove secret_env to use .mirage/secret'))
    keys = [key.encode("utf-8") for key in value.split()]
    hint = f'export {secret_env}="$({NEW_SECRET})"'
    if not keys:
        raise _short(f"environment variable {secret_env}", None, 0, hint)
    for number, key in enumerate(keys, start=1):
        if len(key) < MIN_SECRET_BYTES:
            where = f"environment variable {secret_env}" + (
                f" (key {number}: keys are separated by spaces)" if len(keys) > 1 else "")
            raise _short(where, None, len(key), hint if number == 1 else
                         "remove that key: links signed with it could be forged anyway")
    return Secret(keys[0], keys[1:])


def _file_keys(path: Path) -> list[tuple[int, bytes]]:
    """(line number, key) of each key line; blank lines and ``#`` comments are skipped."""
    found = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        key = line.strip()
        if key and not key.startswith(b"#"):
            found.append((number, key))
    return found


def load_secret(state_dir: Path, secret_env: str | None) -> Secret:
    """The signing keys: from the named environment variable, else ``.mirage/secret`` (0600).

    Either holds the current key first, then any earlier keys (one per line in the file,
    separated by whitespace in the variable), which are only ever used to check links that
    were sent before a rotation. A missing file is created with a new random key, safely when
    several commands start at once, but only in a project that has never sent: there a new
    key would break every link already sent, so it is refused (exit 2, ``lost_secret``).
    Keys under 32 bytes are refused (exit 2); no message ever shows a key.
    """
    if secret_env:
        return _env_secret(secret_env)
    path = state_dir / "secret"
    if not path.exists():
        refuse_lost(state_dir)
        try:
            create_once(path, secrets.token_urlsafe(48).encode("ascii") + b"\n")
        except OSError as exc:  # a full disk, a read-only .mirage/: nothing signed or sent
            raise state_write_error(exc, path, resumes=False) from None
    tighten(state_dir, DIR_MODE)
    tighten(path, FILE_MODE)
    return _file_secret(path)


def check_secret(state_dir: Path, secret_env: str | None) -> None:
    """``load_secret``'s checks, same messages, without writing anything (for ``validate``).

    The named environment variable is checked when ``tracking.secret_env`` is set, else
    ``.mirage/secret`` when it exists; a project without one is fine unless it has sent
    before (the first command that signs creates it). Raises ``InputError`` (exit 2) where
    ``load_secret`` would.
    """
    if secret_env:
        _env_secret(secret_env)
        return
    path = state_dir / "secret"
    if path.exists():
        _file_secret(path)
    else:
        refuse_lost(state_dir)


def secret_missing(state_dir: Path, secret_env: str | None) -> bool:
    """No key to read: no ``tracking.secret_env`` and no ``.mirage/secret`` file."""
    return not secret_env and not (state_dir / "secret").exists()


def refuse_lost(state_dir: Path) -> None:
    """Raise ``InputError`` (exit 2) when ``.mirage/secret`` is gone from a project that has
    sent (``.mirage/sent``): every List-Unsubscribe mailto and one-click link already sent
    was signed with it, and a new key would quietly turn each of them into a forgery."""
    if (state_dir / SENT_MARKER).exists():
        raise InputError(lost_secret(state_dir))


def lost_secret(state_dir: Path) -> Problem:
    path = display_path(state_dir / "secret")
    return Problem(
        path, None, "the signing secret is missing, but this project has sent before "
        f"({display_path(state_dir / SENT_MARKER)}): a new one would break the unsubscribe "
        "link in every message already sent, so nothing was signed or sent",
        f"restore {path} from a backup, or set tracking.secret_env to a variable that holds "
        f"it; to start over on purpose, links already sent then broken: {REPLACE_LOST}")


def _file_secret(path: Path) -> Secret:
    """The keys of an existing secret file; empty, short or unreadable ones refused."""
    where = display_path(path)
    hint = f"write a new one: {NEW_SECRET} > {where}"
    try:
        keys = _file_keys(path)
    except OSError as exc:
        raise InputError(Problem(where, None, f"cannot read the signing secret: "
                                 f"{exc.strerror or exc}", hint)) from None
    if not keys:
        raise _short(where, None, 0, hint)
    for number, key in keys:
        if len(key) < MIN_SECRET_BYTES:
            raise _short(where, number, len(key), hint if number == keys[0][0] else
                         "remove that line: links signed with it could be forged anyway")
    return Secret(keys[0][1], [key for _, key in keys[1:]])


def rotate_secret(state_dir: Path, secret_env: str | None, *,
                  replace_lost: bool = False) -> Rotation:
    """Put a new current key first in ``.mirage/secret``; the earlier ones stay for checking.

    Keys too short to be safe are dropped rather than kept. With ``tracking.secret_env`` the
    variable is the operator's to change, so this refuses and says how. A project that has
    sent and lost the file is refused like every command that signs, unless
    ``replace_lost`` says that starting over, links already sent broken, is meant;
    ``replace_lost`` refuses a file that is there (nothing to replace).
    """
    if secret_env:
        raise InputError(Problem(
            "mirage.yaml", None, f"the signing secret comes from {secret_env}, which "
            "mirage-mailer cannot change",
            f'set {secret_env} to a new key followed by the current one(s), separated by a '
            f'space: export {secret_env}="$({NEW_SECRET}) ${secret_env}"'))
    path = state_dir / "secret"
    if replace_lost and path.exists():
        raise InputError(Problem(
            display_path(path), None, "--replace-lost: the signing secret is there; it only "
            "replaces a lost one", "drop --replace-lost to rotate: the earlier keys are kept "
            "so links already sent keep working"))
    if not path.exists() and not replace_lost:
        refuse_lost(state_dir)
    earlier = [key for _, key in _file_keys(path)] if path.exists() else []
    kept = [key for key in earlier if len(key) >= MIN_SECRET_BYTES]
    new = secrets.token_urlsafe(48).encode("ascii")
    replace_atomically(path, b"\n".join([new, *kept]) + b"\n")
    return Rotation(path, len(kept), len(earlier) - len(kept))


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        return None


class Signer:
    """Makes tokens ``<scope>.<subject-id>.<signature>`` with the current key; checks them
    against the current and every earlier key, so links sent before a rotation keep working.

    The scope is the issue id (or list name for confirmations), base64url-encoded so any id
    survives in a URL path; it is not secret. The subject id hides the address; a token made
    before a rotation carries the subject id of its day, which is what the store kept for that
    recipient, so an old link finds the same row.
    """

    def __init__(self, key: bytes, earlier: Sequence[bytes] | None = None) -> None:
        self._key = bytes(key)
        if earlier is None:
            earlier = key.earlier if isinstance(key, Secret) else ()
        self._keys = (self._key, *(bytes(k) for k in earlier))
        self._scopes: dict[str, str] = {}
        self._subject_states = _hmac_states(self._key, b"id\x00")

    def subject_id(self, address: str) -> str:
        """HMAC-SHA256(key, "id\\0" + the lowercased address), exactly ``hmac.digest``'s,
        from the two padded-key states hashed once (``_hmac_states``)."""
        inner, outer = self._subject_states
        inner = inner.copy()
        inner.update(address.strip().lower().encode())
        outer = outer.copy()
        outer.update(inner.digest())
        return _b64(outer.digest()[:_ID_BYTES])

    @staticmethod
    def _signature(key: bytes, purpose: str, scope: str, subject: str) -> str:
        msg = "\x00".join((purpose, scope, subject)).encode("utf-8")
        return _b64(hmac.digest(key, msg, "sha256")[:_SIG_BYTES])

    def make(self, purpose: str, scope: str, address: str) -> str:
        return self.make_for_subject(purpose, scope, self.subject_id(address))

    def make_for_subject(self, purpose: str, scope: str, subject: str) -> str:
        """A token for a subject id already computed (one keyed hash per recipient)."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown token purpose {purpose!r}")
        scope_b64 = self._scopes.get(scope)
        if scope_b64 is None:
            scope_b64 = self._scopes.setdefault(scope, _b64(scope.encode("utf-8")))
        return f"{scope_b64}.{subject}.{self._signature(self._key, purpose, scope, subject)}"

    def clicks(self, scope: str) -> ClickSigner:
        """Click tokens for one issue; the HMAC state of the shared prefix is computed once."""
        return ClickSigner(self._key, scope)

    def verify_click(self, token: str, url: str) -> tuple[str, str] | None:
        """(scope, subject id) when ``token`` was made for exactly ``url``, else None."""
        parsed = _parse(token)
        if parsed is None or "\x00" in url:
            return None
        scope, subject, signature = parsed
        expected = [ClickSigner(key, scope).signature(subject, url) for key in self._keys]
        return (scope, subject) if _matches(expected, signature) else None

    def verify(self, purpose: str, token: str) -> tuple[str, str] | None:
        """(scope, subject id) when the token is genuine for this purpose, else None."""
        parsed = _parse(token)
        if parsed is None or purpose == CLICK:
            return None
        scope, subject, signature = parsed
        expected = [self._signature(key, purpose, scope, subject) for key in self._keys]
        return (scope, subject) if _matches(expected, signature) else None


def _matches(expected: list[str], signature: str) -> bool:
    """Constant-time comparison against every key's signature (bytes: any input is safe)."""
    given = signature.encode("utf-8", "surrogatepass")
    found = False
    for candidate in expected:
        found |= hmac.compare_digest(candidate.encode("ascii"), given)
    return found


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
