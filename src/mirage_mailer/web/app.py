"""The subscriber-facing web app: ``create_app(settings)`` for ``serve`` and the tests.

Routes live in one module per concern (archive, unsubscribe, subscribe, plus the engagement
and report routes); this module wires them to the shared state, the error pages and the
outer guard (security headers and the body limit on every response, 500s included).
"""

from __future__ import annotations

import http.client
import logging
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Scope

from mirage_mailer.project.config import Settings
from mirage_mailer.store.errors import StoreError, StoreUnavailable
from mirage_mailer.store.guard import check_kept
from mirage_mailer.util.errors import is_busy
from mirage_mailer.web import (
    archive_routes,
    engagement_routes,
    report_routes,
    subscribe,
    unsubscribe,
)
from mirage_mailer.web.context import WebContext, web_context
from mirage_mailer.web.guard import Guard, ReaderError
from mirage_mailer.web.held import HeldRetry
from mirage_mailer.web.i18n import N_, negotiate, request_language
from mirage_mailer.web.links import Links
from mirage_mailer.web.logged import logged_path
from mirage_mailer.web.pages import error_html, gettext, html
from mirage_mailer.web.respond import links_for

log = logging.getLogger(__name__)


class MirageApp(Starlette):
    """Starlette with ``Guard`` outside everything, ServerErrorMiddleware included."""

    def __init__(self, *, routes: Sequence[BaseRoute], settings: Settings, **kwargs: Any) -> None:
        super().__init__(routes=routes, **kwargs)
        # Starlette's slash redirect builds its Location from the Host header: 'GET /u/<t>/'
        # with 'Host: evil.example' sent the token there. Routes list the slash forms the
        # links and docs use (/issues/<id>/, /subscription/<lang>/); any other is a 404.
        self.router.redirect_slashes = False
        self.settings = settings

    def build_middleware_stack(self) -> ASGIApp:
        project = self.settings.project

        def refuse(exc: HTTPException, scope: Scope) -> ASGIApp:
            header = Headers(scope=scope).get("accept-language")
            lang = negotiate([], header, project.language)
            return html(error_html(exc.status_code, _detail(exc, lang), links=Links("/"),
                                   site=project, lang=lang),
                        status=exc.status_code, headers={"Vary": "Accept-Language"}, lang=lang)

        return Guard(super().build_middleware_stack(),
                     max_body_bytes=self.settings.web.max_body_bytes, refuse=refuse)


SERVE_REFUSED = ("a new store would answer every unsubscribe link 'not valid', and what it took "
                 "in would be lost when the backup is restored; serve did not start")
TRY_LATER = N_("Please try again later.")
RETRY_AFTER_SECONDS = 60  # a lock held by a send or a backup usually frees within a minute


def _detail(exc: HTTPException, lang: str) -> str:
    """Our own words in ``lang`` (details are msgids); Starlette's defaults ("Not Found")
    leave the page's title to speak."""
    if isinstance(exc, ReaderError):
        return gettext(lang, exc.message) % exc.params if exc.params else gettext(
            lang, exc.message)
    if exc.detail == http.client.responses.get(exc.status_code):
        return ""
    return gettext(lang, exc.detail)


def _error_page(request: Request, status: int, detail: str, lang: str,
                headers: Mapping[str, str] | None = None) -> Response:
    body = error_html(status, detail, links=links_for(request),
                      site=web_context(request).settings.project, lang=lang)
    return html(body, status=status, headers={"Vary": "Accept-Language", **(headers or {})},
                lang=lang)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    lang = request_language(request, web_context(request).settings.project.language)
    return _error_page(request, exc.status_code, _detail(exc, lang), lang, exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """A bug: log it for the operator, show a plain apology (never a traceback)."""
    log.error("error answering %s %s", request.method, logged_path(request), exc_info=exc)
    lang = request_language(request, web_context(request).settings.project.language)
    return _error_page(request, 500, gettext(lang, TRY_LATER), lang)


async def store_unavailable(request: Request, exc: Exception) -> Response:
    """The tracking store cannot answer now (locked by another process, server gone): a fault
    of the moment, not a bug, so one log line, and a 503 the client may retry. Nothing was
    recorded (a write rolls back whole), and the page does not pretend it was."""
    if not isinstance(exc, StoreError) and not is_busy(exc):
        return await server_error(request, exc)  # a bug in SQL: logged in full, once
    log.warning("cannot answer %s %s now: %s", request.method, logged_path(request), exc)
    lang = request_language(request, web_context(request).settings.project.language)
    detail = str(getattr(request.state, "unavailable_detail", TRY_LATER))
    return _error_page(request, 503, gettext(lang, detail), lang,
                       {"Retry-After": str(RETRY_AFTER_SECONDS)})


async def client_left(request: Request, exc: Exception) -> Response:
    """The client closed the connection before its body was complete: its right, not a bug
    (it was a 500 with a traceback in the log). Nobody is left to read the answer."""
    log.info("client left before its request to %s %s was complete", request.method,
             logged_path(request))
    return Response(status_code=400)


def create_app(settings: Settings, *, local_base: str | None = None) -> Starlette:
    """The app; ``local_base`` is the address ``serve`` listens on (``http://host:port``),
    which links use when ``tracking.base_url`` is not set.

    A project that has sent and lost its store does not start (``StoreError``, exit 2): a
    new empty store would answer every genuine unsubscribe link "not valid" (providers do
    not retry), and what it took in would be lost when the backup is put back. A store lost
    while serving is refused per request instead (``store_access``): unsubscribes are held.
    A store that only cannot answer now (locked, a server out of reach) is served as ever."""
    with suppress(StoreUnavailable):  # each request asks again, and holds unsubscribes
        check_kept(settings.tracking.database, settings.state_dir, SERVE_REFUSED)
    ctx = WebContext.load(settings, local_base)
    routes: list[BaseRoute] = [
        *archive_routes.ROUTES,
        *unsubscribe.ROUTES,
        *subscribe.ROUTES,
        *engagement_routes.ROUTES,
        *report_routes.ROUTES,
    ]
    held = HeldRetry(settings, ctx.stores)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        held.start()  # unsubscribes held while the store was busy: recorded once it answers
        try:
            yield
        finally:
            held.stop()

    app = MirageApp(routes=routes, settings=settings, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, StoreError: store_unavailable,
                                        ClientDisconnect: client_left,
                                        sqlite3.OperationalError: store_unavailable,
                                        Exception: server_error})
    app.state.ctx = ctx
    return app
