"""What every route needs, kept on ``app.state.ctx``: settings, the token signer, the store."""

from __future__ import annotations

from dataclasses import dataclass

from mirage_mailer.config import Settings
from mirage_mailer.store import Store
from mirage_mailer.tokens import Signer, load_secret


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    signer: Signer

    @classmethod
    def load(cls, settings: Settings) -> WebContext:
        key = load_secret(settings.state_dir, settings.tracking.secret_env)
        return cls(settings, Signer(key))

    def store(self) -> Store:
        """A store for one request (SQLite connections are cheap; WAL lets send run too)."""
        return Store(self.settings.tracking.database)

    def verify(self, purpose: str, token: str) -> tuple[str, str] | None:
        """``Signer.verify`` for a token from a URL: anything not ASCII is simply not genuine
        (``hmac.compare_digest`` raises on non-ASCII text, which would be a 500)."""
        return self.signer.verify(purpose, token) if token.isascii() else None

    def verify_click(self, token: str, url: str) -> tuple[str, str] | None:
        """``Signer.verify_click``, with the same rule for non-ASCII tokens."""
        return self.signer.verify_click(token, url) if token.isascii() else None

    @property
    def base_url(self) -> str:
        return self.settings.tracking.base_url or "http://127.0.0.1:8080"  # serve's default
