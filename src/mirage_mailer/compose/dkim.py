"""DKIM signatures (RFC 6376) on a message's final bytes: relaxed/relaxed canonicalisation,
rsa-sha256, or ed25519-sha256 (RFC 8463).

Pure: the key comes in already loaded (``services.dkim_keys``), nothing is read or written.

Why not ``dkim.sign`` from dkimpy: it does the RSA operation in pure Python and parses the
whole message each time; ``bench/dkim_cost.py`` measures both on the same messages. Here the
private-key operation is OpenSSL's (``cryptography``), and the header hash is cut in two:
``h=`` lists first the headers that are the same for every message of a language (From,
Subject, Content-Type, ...), whose SHA-256 state is computed once and ``.copy()``-ed per
message, then the per-recipient ones (To, Date, Message-ID, List-Unsubscribe). The body hash
is per message (the first per-recipient byte, the greeting, sits a few lines into the body),
but the canonical form of the body's constant runs is kept per language (``dkim_body``).

Oversigning (a name in ``h=`` once more than the message has it) makes a verifier fail the
signature if anyone adds that header later: a second From or Subject, a Reply-To or an
unsubscribe address of their own.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TypeAlias

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mirage_mailer.compose.dkim_body import SPACES, BodyHints, canonical_body

__all__ = ["DkimSigner", "PrivateKey", "canonical_body", "canonical_header", "split_message"]

PrivateKey: TypeAlias = RSAPrivateKey | Ed25519PrivateKey

# Signed when present, in this order: the per-run constants first (hashed once per language),
# then what changes from one recipient to the next.
CONSTANT_HEADERS = ("from", "reply-to", "subject", "mime-version", "content-type",
                    "content-language", "list-id", "list-unsubscribe-post")
RECIPIENT_HEADERS = ("to", "cc", "date", "message-id", "list-unsubscribe")
# Listed once more than present: nobody can add one of these without breaking the signature.
OVERSIGNED = ("from", "to", "subject", "reply-to", "list-unsubscribe", "list-unsubscribe-post")

_PREFIX_CACHE = 256  # constant-header hash states kept (languages x lists, in practice)


def algorithm_of(key: PrivateKey) -> str:
    return "ed25519-sha256" if isinstance(key, Ed25519PrivateKey) else "rsa-sha256"


def canonical_header(raw: bytes) -> bytes:
    """RFC 6376 3.4.2 relaxed: lower-case name, unfolded, runs of blanks as one space, none
    around the colon or at the end; CRLF-terminated."""
    name, _, value = raw.partition(b":")
    value = value.replace(b"\r", b"").replace(b"\n", b"").replace(b"\t", b" ")
    value = SPACES.sub(b" ", value).strip(b" ")
    return name.rstrip(b" \t").lower() + b":" + value + b"\r\n"


def split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes, bytes]:
    """(headers as (lower-case name, raw field with its folding), body, line ending)."""
    first = message.find(b"\n")
    newline = b"\r\n" if first > 0 and message[first - 1:first] == b"\r" else b"\n"
    end = message.find(newline + newline)
    if end < 0:
        head, body = message.rstrip(b"\r\n"), b""
    else:
        head, body = message[:end], message[end + 2 * len(newline):]
    headers: list[tuple[bytes, bytes]] = []
    for line in head.split(newline):
        if line[:1] in (b" ", b"\t") and headers:
            name, raw = headers[-1]
            headers[-1] = (name, raw + newline + line)
            continue
        name, colon, _ = line.partition(b":")
        if not colon or not name.strip():
            raise ValueError("not an RFC 5322 header line")
        headers.append((name.strip().lower(), line))
    return headers, body, newline


@lru_cache(maxsize=64)
def _fold_names(names: tuple[str, ...], newline: str) -> str:
    """``h=``'s names, folded after a colon before a line passes 76 characters (RFC 6376
    allows folding white space around the colons)."""
    lines = [""]
    for name in names:
        if lines[-1] and len(lines[-1]) + len(name) > 72:
            lines.append("")
        lines[-1] += name + ":"
    return f"{newline}  ".join(lines)[:-1]


class DkimSigner:
    """Adds one ``DKIM-Signature`` to each message; reusable for every message of a run,
    from one thread at a time (``presign`` gives it one worker)."""

    def __init__(self, domain: str, selector: str, key: PrivateKey, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.domain = domain
        self.selector = selector
        self.key = key
        self.algorithm = algorithm_of(key)
        self._clock = clock
        self._prefix: dict[tuple[bytes, ...], hashlib._Hash] = {}
        self.body = BodyHints()  # the builder's constant body runs (``learn``), if it tells
        self.constant_hashes = 0  # times the constant headers were hashed (once per language)
        self._head = (f"DKIM-Signature: v=1; a={self.algorithm}; c=relaxed/relaxed; "
                      f"d={domain}; s={selector};")

    def sign(self, message: bytes) -> bytes:
        """``message`` with a DKIM-Signature header in front, in the message's line endings."""
        headers, body, newline = split_message(message)
        body_hash = base64.b64encode(self.body.digest(body))
        constant, varying, names = self._select(headers)
        state = self._prefix.get(constant)
        if state is None:
            state = hashlib.sha256()
            self.constant_hashes += 1
            for raw in constant:
                state.update(canonical_header(raw))
            if len(self._prefix) >= _PREFIX_CACHE:
                self._prefix.clear()
            self._prefix[constant] = state
        digest = state.copy()
        for raw in varying:
            digest.update(canonical_header(raw))
        nl = newline.decode()
        field = (f"{self._head} t={int(self._clock())};{nl} h={_fold_names(tuple(names), nl)};{nl}"
                 f" bh={body_hash.decode()};{nl} b=").encode()
        digest.update(canonical_header(field)[:-2])  # itself with b= empty, no final CRLF
        signature = base64.b64encode(self._sign_digest(digest.digest()))
        folded = (newline + b" ").join(signature[i:i + 72] for i in range(0, len(signature), 72))
        return field + folded + newline + message

    def _select(self, headers: list[tuple[bytes, bytes]]
                ) -> tuple[tuple[bytes, ...], list[bytes], list[str]]:
        """The header instances ``h=`` picks (the last one of a name first, as verifiers
        do), split into the constant run and the per-recipient run, and ``h=`` itself."""
        found: dict[str, list[bytes]] = {}
        for key, raw in headers:
            found.setdefault(key.decode("ascii", "replace"), []).append(raw)
        names: list[str] = []
        constant: list[bytes] = []
        varying: list[bytes] = []
        for group, out in ((CONSTANT_HEADERS, constant), (RECIPIENT_HEADERS, varying)):
            for name in group:
                for raw in reversed(found.get(name, ())):
                    names.append(name)
                    out.append(raw)
        names.extend(OVERSIGNED)  # no instance left: each adds nothing to the hash
        return tuple(constant), varying, names

    def _sign_digest(self, digest: bytes) -> bytes:
        if isinstance(self.key, Ed25519PrivateKey):
            return self.key.sign(digest)  # RFC 8463: Ed25519 over the SHA-256 hash
        return self.key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
