"""The transport as delivery sees it: where to connect, how to secure it, how fast to go.

Delivery's own input type, so that it reads no config: ``services.outbound`` builds it from
``project.config.Transport``. It holds no credentials (those come separately, already read),
only the names of nothing: URL, TLS, pacing and retry fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TransportSettings:
    url: str
    scheme: str  # maildir | smtp | smtps
    maildir: Path | None
    host: str
    port: int
    starttls: str  # always | auto | never
    concurrency: int
    rate_per_second: float | None
    rate_per_hour: float | None
    timeout: float
    max_attempts: int
    allow_plaintext_auth: bool
    ca_file: Path | None = None  # trust only this PEM bundle (a private CA)
    tls_insecure: bool = False  # encrypt, but check neither certificate nor host name
    name: str = ""  # with several relays, how the report shows this one: URL, no login


@dataclass(frozen=True)
class RelayTarget:
    """One relay of several (``transport.relays``): where and how fast, its login already
    read, and its share of the messages."""

    transport: TransportSettings  # this relay's URL, TLS mode, concurrency and rates
    credentials: tuple[str, str] | None
    credential_words: tuple[str, str]  # as ``deliver_all``'s: names, never values
    weight: int
