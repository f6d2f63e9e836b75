"""Opens and clicks (only with ``tracking.opens`` / ``tracking.clicks``): pixel and redirector.

``GET /o/<token>.gif`` records an open and always answers a 1x1 transparent GIF, whatever the
token: a reader's mail client never sees an error. ``GET /c/<token>?u=<target>`` redirects
only when the token's signature covers exactly that target for that issue and reader (see
``tokens.ClickSigner``), so the redirector can never be used as an open redirect; anything
else gets a 400 page and no redirect. Only GET records (HEAD and prefetching proxies that
use it do not count). With tracking switched off since the issue was sent, the pixel still
answers and signed links still redirect, but nothing is recorded.
"""

from __future__ import annotations

import base64
import logging
import re
import sqlite3
from html import escape

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mirage_mailer.services.htmlreport import PAGE_CSP, page
from mirage_mailer.store import StoreError
from mirage_mailer.web.context import WebContext, web_context
from mirage_mailer.web.i18n import request_language, translations

log = logging.getLogger(__name__)

# 1x1 transparent GIF89a (43 bytes), with a proper LZW end code.
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
NO_STORE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
}
_TARGET = re.compile(r"^https?://", re.I)


def _record(ctx: WebContext, issue: str, subject: str, kind: str, url: str | None) -> None:
    """Log the event; a busy or broken store must not cost the reader their page."""
    try:
        with ctx.store() as store:
            store.record_engagement(issue, subject, kind, url)
    except (StoreError, sqlite3.Error) as exc:
        log.warning("could not record %s for %s: %s", kind, issue, exc)


def open_pixel(request: Request) -> Response:
    ctx = web_context(request)
    found = ctx.verify("open", request.path_params["token"])
    if found is not None and ctx.settings.tracking.opens and request.method == "GET":
        _record(ctx, found[0], found[1], "opened", None)
    return Response(GIF, media_type="image/gif", headers=NO_STORE)


def bad_link(request: Request) -> Response:
    """A 400 page in the reader's language (Accept-Language: the token is not genuine)."""
    ctx = web_context(request)
    lang = request_language(request, ctx.settings.project.language)
    _ = translations(lang).gettext
    body = page(_("Link not valid"), "<h1>" + escape(_("This link is not valid")) + "</h1><p>"
                + escape(_("It may have been altered or cut short. Open the link from the "
                           "newsletter again, or copy it completely.")) + "</p>")
    body = body.replace('<html lang="en">', f'<html lang="{lang}">', 1)
    return Response(body, status_code=400, media_type="text/html; charset=utf-8",
                    headers={**NO_STORE, "Content-Security-Policy": PAGE_CSP,
                             "Referrer-Policy": "no-referrer", "Content-Language": lang,
                             "Vary": "Accept-Language"})


def click(request: Request) -> Response:
    ctx = web_context(request)
    targets = request.query_params.getlist("u")
    if len(targets) != 1 or not _TARGET.match(targets[0]):
        return bad_link(request)
    url = targets[0]
    found = ctx.verify_click(request.path_params["token"], url)
    if found is None:
        return bad_link(request)
    if ctx.settings.tracking.clicks and request.method == "GET":
        _record(ctx, found[0], found[1], "clicked", url)
    # no-referrer: the target must not learn the token-bearing URL the reader came through.
    return RedirectResponse(url, status_code=302,
                            headers={**NO_STORE, "Referrer-Policy": "no-referrer"})


ROUTES: list[BaseRoute] = [
    Route("/o/{token}.gif", open_pixel, methods=["GET"], name="engagement_open"),
    Route("/c/{token}", click, methods=["GET"], name="engagement_click"),
]
