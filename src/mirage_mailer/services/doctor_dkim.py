"""The DKIM public key at ``<selector>._domainkey.<domain>``, checked against the private key
the project signs with: a published key that does not match makes every signature fail.

The key record is outside input: tags are parsed leniently (RFC 6376 3.6.1), the key is
decoded and loaded by ``cryptography``, and anything that does not load is one ``fail`` line.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mirage_mailer.services.doctor_dns import Check, Dns

MIN_RSA_BITS = 1024  # below: receivers ignore the signature (RFC 8301)
GOOD_RSA_BITS = 2048


def tags(text: str) -> dict[str, str]:
    """``k=v; k2=v2`` -> {k: v}; whitespace inside values removed (keys wrap in DNS)."""
    found: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            found.setdefault(name.strip().lower(), "".join(value.split()))
    return found


def dkim_check(dns: Dns, domain: str, selector: str, private_pem: bytes | None,
               key_source: str) -> Check:
    """One line for the key at ``selector._domainkey.domain``; ``private_pem`` None when the
    project's key cannot be read here (``key_source`` says where it was looked for)."""
    name = f"{selector}._domainkey.{domain}"
    topic = f"DKIM {name}"
    records = [t for t in dns.txt(name) if "p=" in t.replace(" ", "")]
    publish = (f"publish a TXT record at {name}: v=DKIM1; k=rsa; p=<the public key of "
               f"{key_source}>")
    if not records:
        return Check("fail", topic, "no DKIM key published: receivers cannot verify the "
                     "signature", publish)
    if len(records) > 1:
        return Check("fail", topic, f"{len(records)} key records: receivers pick one at "
                     "random", "keep exactly one TXT record there")
    values = tags(records[0])
    if values.get("v", "DKIM1") != "DKIM1":
        return Check("fail", topic, f"v={values['v']}: not a DKIM1 key record", publish)
    if not values.get("p"):
        return Check("fail", topic, "the key is revoked (empty p=)", publish)
    published, problem = _published_key(values)
    if published is None:
        return Check("fail", topic, problem, publish)
    size = published.key_size if isinstance(published, rsa.RSAPublicKey) else 0
    if size and size < MIN_RSA_BITS:
        return Check("fail", topic, f"an RSA key of {size} bits: receivers ignore it",
                     "make a 2048-bit key and publish it")
    if private_pem is None:
        return Check("warn", topic, f"published ({_kind(published)}), but the private key "
                     f"({key_source}) could not be read here to compare",
                     f"run doctor where {key_source} is available")
    mine, problem = _private_public(private_pem)
    if mine is None:
        return Check("fail", topic, f"the private key ({key_source}) {problem}",
                     "give the PEM private key that the published key belongs to")
    if _raw(mine) != _raw(published):
        return Check("fail", topic, f"the published key does not match the private key "
                     f"({key_source}): every signature will fail", publish)
    if values.get("t", "") and "y" in values["t"].split(":"):
        return Check("warn", topic, "matches, but t=y marks it as testing: receivers may "
                     "ignore failures", "remove t=y once signatures verify")
    if size and size < GOOD_RSA_BITS:
        return Check("warn", topic, f"matches; an RSA key of {size} bits is weak",
                     "move to a 2048-bit key")
    return Check("ok", topic, f"published and matches the private key ({_kind(published)})")


PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def _kind(key: PublicKey) -> str:
    return f"rsa {key.key_size} bits" if isinstance(key, rsa.RSAPublicKey) else "ed25519"


def _published_key(values: dict[str, str]) -> tuple[PublicKey | None, str]:
    kind = values.get("k", "rsa").lower()
    try:
        data = base64.b64decode(values["p"], validate=True)
    except (binascii.Error, ValueError):
        return None, "p= is not valid base64"
    if kind == "ed25519":
        try:
            return ed25519.Ed25519PublicKey.from_public_bytes(data), ""
        except ValueError:
            return None, "p= is not an ed25519 key"
    if kind != "rsa":
        return None, f"k={kind} is not a key type receivers know (rsa, ed25519)"
    try:
        key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return None, "p= is not an RSA public key"
    if not isinstance(key, rsa.RSAPublicKey):
        return None, "p= holds another kind of key than k= says"
    return key, ""


def _private_public(pem: bytes) -> tuple[PublicKey | None, str]:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None, "is not a PEM private key without a password"
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return public, ""
    return None, "is neither an RSA nor an ed25519 key"


def _raw(key: PublicKey) -> bytes:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
