"""The one holder of the web app's state, kept on ``app.state.ctx``: settings, the token
signer, CSRF tokens, the archive's catalogue and page renderer, the sign-up limits, the
report's password gate, and this server's own address. Every route reaches it through
``web_context(request)``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from mirage_mailer.project.config import Settings
from mirage_mailer.services.signing import signing_secret
from mirage_mailer.store import Store
from mirage_mailer.util.tokens import Signer
from mirage_mailer.web.archive import Catalogue
from mirage_mailer.web.csrf import CsrfTokens
from mirage_mailer.web.issue_pages import IssueRenderer
from mirage_mailer.web.ratelimit import SignUpLimits
from mirage_mailer.web.report_gate import ReportGate
from mirage_mailer.web.signup_ticket import SignUpTickets
from mirage_mailer.web.stores import KeptStores

# Where ``serve`` listens by default; the app is told the real address when it is elsewhere.
DEFAULT_LOCAL_BASE = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    signer: Signer
    csrf: CsrfTokens
    catalogue: Catalogue
    renderer: IssueRenderer
    # the store for every route and every service it calls, the catalogue's included
    stores: KeptStores = field(repr=False, compare=False)
    local_base: str = DEFAULT_LOCAL_BASE  # this server's own address (no trailing slash)
    limits: SignUpLimits = field(default_factory=SignUpLimits)
    tickets: SignUpTickets | None = None  # sign-ups posted from allowed sites (load sets it)
    report_gate: ReportGate = field(default_factory=ReportGate)  # the report's password checks

    @classmethod
    def load(cls, settings: Settings, local_base: str | None = None) -> WebContext:
        """Everything the routes share, read once when the app is made (one secret read)."""
        key = signing_secret(settings)  # a lost key of a project that has sent: exit 2
        stores = KeptStores(settings)
        return cls(settings, Signer(key), CsrfTokens(key), Catalogue(settings, stores),
                   IssueRenderer(settings, stores), stores,
                   (local_base or DEFAULT_LOCAL_BASE).rstrip("/"), tickets=SignUpTickets(key))

    def store(self) -> AbstractContextManager[Store]:
        """A store for one request (``stores``: kept per worker thread on PostgreSQL)."""
        return self.stores.store()

    def verify(self, purpose: str, token: str) -> tuple[str, str] | None:
        """``Signer.verify`` for a token from a URL: anything not ASCII is simply not genuine
        (``hmac.compare_digest`` raises on non-ASCII text, which would be a 500)."""
        return self.signer.verify(purpose, token) if token.isascii() else None

    def verify_click(self, token: str, url: str) -> tuple[str, str] | None:
        """``Signer.verify_click``, with the same rule for non-ASCII tokens."""
        return self.signer.verify_click(token, url) if token.isascii() else None

    @property
    def base_url(self) -> str:
        """The public address for links; without ``tracking.base_url``, where serve listens."""
        return self.settings.tracking.base_url or self.local_base


def web_context(request: HTTPConnection) -> WebContext:
    """The app's ``WebContext`` (``create_app`` puts it on ``app.state.ctx``)."""
    ctx = request.app.state.ctx
    assert isinstance(ctx, WebContext)
    return ctx
