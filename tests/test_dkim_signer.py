"""The DKIM signer against an independent verifier (dkimpy) and its canonicalisation.

dkimpy gets the public key from a stubbed DNS answer, so nothing leaves the machine. Every
accepting test has a tampering twin that must fail: a verifier that says yes to everything
would not pass these.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st

from mirage_mailer.compose.dkim import (
    DkimSigner,
    PrivateKey,
    canonical_body,
    canonical_header,
    split_message,
)

DOMAIN, SELECTOR = "example.org", "news2026"
MESSAGE = (b"From: Project <news@example.org>\nSubject: Hello  there\n\tfolded\n"
           b"To: Reader <reader@example.net>\nDate: Mon, 30 Nov 2026 10:00:00 +0000\n"
           b"Message-ID: <1@example.org>\nList-Id: News <news.example.org>\n"
           b"List-Unsubscribe: <https://example.org/u/abc>,\n <mailto:info@example.org>\n"
           b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\nMIME-Version: 1.0\n\n"
           b"Hello \t world  \n\n.a line with a dot\n\n\n")


@functools.cache
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def dns_for(key: PrivateKey, name: str = f"{SELECTOR}._domainkey.{DOMAIN}."
            ) -> Callable[..., bytes]:
    """A resolver answering the one TXT record a verifier asks for."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)
    else:
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)

    def answer(qname: bytes, timeout: int = 5) -> bytes:
        return record if qname.decode() == name else b""

    return answer


def verify(message: bytes, key: PrivateKey, domain: str = DOMAIN,
           selector: str = SELECTOR) -> bool:
    """dkimpy's verdict, with ``key``'s public half at ``selector._domainkey.domain``."""
    return bool(dkim.verify(message, dnsfunc=dns_for(key, f"{selector}._domainkey.{domain}.")))


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_signature_verifies_and_tampering_breaks_it(newline: bytes) -> None:
    key = rsa_key()
    message = MESSAGE.replace(b"\n", newline)
    signed = DkimSigner(DOMAIN, SELECTOR, key).sign(message)
    assert signed.endswith(message) and signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256")
    assert (b"\r\n" in signed) == (newline == b"\r\n")  # the message's own line endings
    assert verify(signed, key)
    assert verify(signed.replace(b"\n", b"\r\n") if newline == b"\n" else signed, key)
    for old, new in ((b"world", b"World"), (b"Hello  there", b"Hello  Here"),
                     (b"reader@example.net", b"other@example.net"),
                     (b"/u/abc", b"/u/abd"), (b"One-Click", b"One-click")):
        assert signed.count(old) == 1
        assert not verify(signed.replace(old, new), key), old


@pytest.mark.parametrize("added", [b"Subject: Another subject", b"From: evil@example.com",
                                   b"Reply-To: evil@example.com",
                                   b"List-Unsubscribe: <https://evil.example.com/>"])
def test_an_added_header_breaks_the_oversigned_signature(added: bytes) -> None:
    key = rsa_key()
    signed = DkimSigner(DOMAIN, SELECTOR, key).sign(MESSAGE)
    assert verify(signed, key)
    tampered = signed.replace(b"\n\nHello", b"\n" + added + b"\n\nHello", 1)
    assert not verify(tampered, key)


def test_a_header_that_is_not_signed_may_be_added() -> None:
    """The counter-test of the one above: relays add Received:, which must not break it."""
    key = rsa_key()
    signed = DkimSigner(DOMAIN, SELECTOR, key).sign(MESSAGE)
    assert verify(b"Received: from a by b; Mon, 30 Nov 2026 10:00:01 +0000\n" + signed, key)


def test_signed_headers_cover_what_providers_require() -> None:
    signed = DkimSigner(DOMAIN, SELECTOR, rsa_key()).sign(MESSAGE)
    headers, _, _ = split_message(signed)
    tags = dict(part.strip().split("=", 1) for part in
                b" ".join(canonical_header(headers[0][1]).split()).decode()
                .partition(":")[2].split(";") if part.strip())
    names = [n.strip() for n in tags["h"].split(":")]
    for name in ("from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
                 "list-unsubscribe-post", "mime-version"):
        assert name in names, name
    assert names.count("from") == 2 and names.count("subject") == 2  # oversigned
    assert (tags["a"], tags["c"], tags["d"], tags["s"]) == ("rsa-sha256", "relaxed/relaxed",
                                                            DOMAIN, SELECTOR)


def test_ed25519_signature_verifies_and_tampering_breaks_it() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    signed = DkimSigner(DOMAIN, SELECTOR, key).sign(MESSAGE)
    assert b"a=ed25519-sha256" in signed
    assert verify(signed, key)
    assert not verify(signed.replace(b"world", b"wOrld"), key)


def test_wrong_key_in_dns_fails() -> None:
    signed = DkimSigner(DOMAIN, SELECTOR, rsa_key()).sign(MESSAGE)
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert not verify(signed, other)


def test_the_cached_constant_headers_follow_a_change() -> None:
    """The once-per-language header hash is keyed by the headers' bytes: a message whose
    From or Subject differs from the previous one is hashed anew, never with a stale state."""
    key = rsa_key()
    signer = DkimSigner(DOMAIN, SELECTOR, key)
    first = signer.sign(MESSAGE)
    second = signer.sign(MESSAGE.replace(b"Hello  there", b"Bonjour"))
    third = signer.sign(MESSAGE.replace(b"reader@example.net", b"other@example.net"))
    assert verify(first, key) and verify(second, key) and verify(third, key)
    assert signer.constant_hashes == 2  # the third (another To) reused the first's state


def test_constant_headers_are_hashed_once_per_language() -> None:
    signer = DkimSigner(DOMAIN, SELECTOR, rsa_key())
    for n in range(5):
        signer.sign(MESSAGE.replace(b"reader@", f"reader{n}@".encode())
                    .replace(b"<1@", f"<{n}@".encode()))
    assert signer.constant_hashes == 1
    signer.sign(MESSAGE.replace(b"MIME-Version: 1.0", b"MIME-Version: 1.0\n"
                                b"Content-Language: fr"))
    assert signer.constant_hashes == 2


def test_empty_and_blank_bodies() -> None:
    key = rsa_key()
    signer = DkimSigner(DOMAIN, SELECTOR, key)
    for body in (b"", b"\n", b"  \n\t\n", b"x"):
        assert verify(signer.sign(b"From: a@example.org\nSubject: s\n\n" + body), key), body


_TEXT = st.text(alphabet=st.sampled_from(list("ab. \t=-")) | st.sampled_from(["\n"]),
                max_size=60)


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_body_canonicalisation_matches_dkimpy(text: str) -> None:
    # as received: CRLF line endings, ending with CRLF (SMTP DATA always does)
    wire = (text + "\n").encode().replace(b"\n", b"\r\n")
    assert canonical_body(wire) == Relaxed.canonicalize_body(wire)
    assert canonical_body(wire.replace(b"\r\n", b"\n")) == Relaxed.canonicalize_body(wire)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["Subject", "From", "X-Y"]), _TEXT)
def test_header_canonicalisation_matches_dkimpy(name: str, value: str) -> None:
    folded = value.replace("\n", "\r\n ").encode()
    ours = canonical_header(name.encode() + b":" + folded)
    [(theirs_name, theirs_value)] = Relaxed.canonicalize_headers([(name.encode(), folded)])
    assert ours == theirs_name + b":" + theirs_value
