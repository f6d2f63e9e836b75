"""The one holder of the web app's state, kept on ``app.state.ctx``: settings, the token
signer, CSRF tokens, the archive's catalogue and page renderer, the sign-up limits, and this
server's own address. Every route reaches it through ``web_context(request)``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from mirage_mailer.project.config import Settings
from mirage_mailer.store import Store, StoreError, open_store
from mirage_mailer.util.database import PostgresUrl
from mirage_mailer.util.tokens import Signer, load_secret
from mirage_mailer.web.archive import Catalogue
from mirage_mailer.web.csrf import CsrfTokens
from mirage_mailer.web.issue_pages import IssueRenderer
from mirage_mailer.web.ratelimit import SignUpLimits
from mirage_mailer.web.signup_ticket import SignUpTickets

# Where ``serve`` listens by default; the app is told the real address when it is elsewhere.
DEFAULT_LOCAL_BASE = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    signer: Signer
    csrf: CsrfTokens
    catalogue: Catalogue
    renderer: IssueRenderer
    local_base: str = DEFAULT_LOCAL_BASE  # this server's own address (no trailing slash)
    limits: SignUpLimits = field(default_factory=SignUpLimits)
    tickets: SignUpTickets | None = None  # sign-ups posted from allowed sites (load sets it)
    # one PostgreSQL store per worker thread, kept across requests (``store``)
    _kept: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @classmethod
    def load(cls, settings: Settings, local_base: str | None = None) -> WebContext:
        """Everything the routes share, read once when the app is made (one secret read)."""
        key = load_secret(settings.state_dir, settings.tracking.secret_env)
        return cls(settings, Signer(key), CsrfTokens(key), Catalogue(settings),
                   IssueRenderer(settings), (local_base or DEFAULT_LOCAL_BASE).rstrip("/"),
                   tickets=SignUpTickets(key))

    @contextmanager
    def store(self) -> Iterator[Store]:
        """A store for one request. SQLite's connections are cheap (WAL lets send run too):
        one per request. A PostgreSQL connection costs a login (~8 ms): each worker thread
        keeps its own across requests, checked by a round trip first, so one the server
        dropped (a restart, an idle timeout) is replaced instead of failing every request."""
        database = self.settings.tracking.database
        if not isinstance(database, PostgresUrl):
            with open_store(database) as fresh:
                yield fresh
            return
        store = self._alive()
        try:
            yield store
        except BaseException:
            self._drop()  # whatever state the connection is in, the next request starts clean
            raise

    def _alive(self) -> Store:
        kept: Store | None = getattr(self._kept, "store", None)
        if kept is not None:
            try:
                kept.ping()
                return kept
            except StoreError:
                self._drop()
        store = open_store(self.settings.tracking.database)
        self._kept.store = store
        return store

    def _drop(self) -> None:
        kept: Store | None = getattr(self._kept, "store", None)
        self._kept.store = None
        if kept is not None:
            with suppress(Exception):  # a connection already broken has nothing to close
                kept.close()

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
