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
