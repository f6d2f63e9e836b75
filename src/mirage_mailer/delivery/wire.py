"""A message body in SMTP DATA wire format: CRLF line endings, dot-stuffed, ``.`` terminated.

aiosmtplib's ``data()`` normalises line endings and dot-stuffs every message with two regular
expression passes, about 0.33 ms for a 14 KB newsletter: close to half of what a whole SMTP
transaction costs on loopback. Our messages never contain a CR (headers are built by us, bodies
are quoted-printable or base64), and for CR-free bytes ``bytes.replace`` yields exactly the
same wire bytes some fifteen times faster. Anything with a CR goes aiosmtplib's way unchanged.
"""

from __future__ import annotations


def to_wire(data: bytes) -> bytes | None:
    """``data`` as sent after DATA, final ``.`` line included; None when it contains a CR.

    Byte for byte what aiosmtplib sends for the same input (a test compares them).
    """
    if b"\r" in data:
        return None  # lone CRs and mixed endings: leave them to aiosmtplib's normaliser
    wire = data.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
    if wire.startswith(b"."):
        wire = b"." + wire
    if not wire.endswith(b"\r\n"):
        wire += b"\r\n"
    return wire + b".\r\n"
