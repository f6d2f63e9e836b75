"""TLS relays for tests: trustme certificates for chosen names, and an ``SmtpSink`` whose
transcript says, for every STARTTLS, AUTH and MAIL, whether the link was already encrypted.

The transcript is what proves "no AUTH before TLS": aiosmtpd's handler hooks do not see
STARTTLS, and they see AUTH only after the server's own TLS check, which these relays turn off
(``auth_require_tls=False``) so that a client that tried would succeed, and be seen.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path
from typing import Any

import trustme

from support.smtp_sink import SmtpSink, _Server


class _TranscriptServer(_Server):
    sink: TranscriptSink

    def _note(self, verb: str) -> None:
        self.sink.transcript.append((self.connection, verb, self.secure))

    async def smtp_STARTTLS(self, arg: str) -> None:
        self._note("STARTTLS")
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        self._note("AUTH")
        await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg: str) -> None:
        self._note("MAIL")
        await super().smtp_MAIL(arg)


class TranscriptSink(SmtpSink):
    """An ``SmtpSink`` that keeps ``(connection, verb, encrypted)`` for STARTTLS, AUTH, MAIL."""

    server_class = _TranscriptServer

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transcript: list[tuple[int, str, bool]] = []

    def plaintext_auth(self) -> list[int]:
        """Connections on which AUTH arrived before the link was encrypted (should be none)."""
        return [conn for conn, verb, secure in self.transcript if verb == "AUTH" and not secure]


def server_context(ca: trustme.CA, *names: str, valid: str = "now") -> ssl.SSLContext:
    """A server context whose certificate, signed by ``ca``, names ``names``; ``valid``:
    "now", "expired" (ended yesterday) or "future" (starts tomorrow)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)
    if valid == "expired":
        cert = ca.issue_cert(*names, not_before=now - 60 * day, not_after=now - day)
    elif valid == "future":
        cert = ca.issue_cert(*names, not_before=now + day, not_after=now + 60 * day)
    else:
        cert = ca.issue_cert(*names)
    cert.configure_cert(context)
    return context


def write_ca(ca: trustme.CA, path: Path) -> Path:
    """The CA's certificate as the PEM file a project names in ``transport.ca_file``."""
    ca.cert_pem.write_to_path(str(path))
    return path
