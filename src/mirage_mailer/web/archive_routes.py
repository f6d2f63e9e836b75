"""The public archive: index, issue pages, view-online links, Atom feed, static files.

These routes are synchronous on purpose: Starlette runs them in its thread pool, so reading
the store and rendering an issue (CPU-bound CSS inlining) never stalls the event loop.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from mirage_mailer.compose.disclaimer import EMBLEM_FILE
from mirage_mailer.compose.render import emblem_bytes
from mirage_mailer.project.signup_lists import open_lists
from mirage_mailer.util.errors import InputError
from mirage_mailer.web.archive import subscribe_links
from mirage_mailer.web.context import WebContext, web_context
from mirage_mailer.web.feed import CONTENT_TYPE, atom_feed
from mirage_mailer.web.i18n import N_, set_language
from mirage_mailer.web.issue_pages import IssueView
from mirage_mailer.web.languages import label
from mirage_mailer.web.pages import static_file
from mirage_mailer.web.respond import PUBLIC_CACHE, language, links_for, respond, translator

log = logging.getLogger(__name__)
STATIC_CACHE = "public, max-age=86400"
NOT_PUBLISHED = N_("There is no published issue at this address.")


def index(request: Request) -> Response:
    ctx = web_context(request)
    entries = ctx.catalogue.entries()
    _ = translator(request)
    return respond(request, "archive.html.j2", title=_("Newsletter archive"), entries=entries,
                   subscribe=subscribe_links(entries, links_for(request),
                                             open_lists(ctx.settings), language(request)),
                   label=label,
                   headers={"Cache-Control": PUBLIC_CACHE})


def subscription(request: Request) -> Response:
    """How to unsubscribe and subscribe: where the archive's copy of an issue links to for
    "unsubscribe" (a copy for no one cannot carry anyone's personal link)."""
    set_language(request, request.path_params.get("lang"))
    ctx = web_context(request)
    _ = translator(request)
    return respond(request, "subscription.html.j2", title=_("Manage your subscription"),
                   subscribe=subscribe_links(ctx.catalogue.entries(), links_for(request),
                                             open_lists(ctx.settings), language(request)),
                   headers={"Cache-Control": PUBLIC_CACHE})


def _view(ctx: WebContext, issue_id: str, lang: str | None) -> IssueView:
    try:
        view = ctx.renderer.view(issue_id, lang)
    except InputError as exc:
        log.error("issue %s cannot be rendered: %s", issue_id, exc)
        raise HTTPException(500, N_("This issue cannot be shown at the moment.")) from None
    if view is None:
        raise HTTPException(404, N_("This issue does not exist in that language."))
    return view


def _issue_response(request: Request, ctx: WebContext, view: IssueView,
                    headers: dict[str, str]) -> Response:
    """The issue in its language; its navigation bar in the reader's: the language the URL or
    token names, else Accept-Language, else the project's."""
    body = ctx.renderer.page(view, links_for(request), ui_lang=language(request))
    return HTMLResponse(body, headers={"Content-Language": view.lang,
                                       "Vary": "Accept-Language", **headers})


def issue_page(request: Request) -> Response:
    ctx = web_context(request)
    issue_id = str(request.path_params["issue_id"])
    lang = request.path_params.get("lang")
    if ctx.catalogue.entry(issue_id) is None:
        raise HTTPException(404, NOT_PUBLISHED)
    if lang is not None:
        set_language(request, str(lang))  # a 404 for a missing language speaks it if it can
    view = _view(ctx, issue_id, None if lang is None else str(lang))
    return _issue_response(request, ctx, view, {"Cache-Control": PUBLIC_CACHE})


def view_online(request: Request) -> Response:
    """The "view online" link of a message: the issue as published, for anyone."""
    ctx = web_context(request)
    found = ctx.verify("view", request.path_params["token"])
    if found is None:
        raise HTTPException(400, N_("This link is not valid. Copy the whole link from the "
                                    "message."))
    issue_id, subject = found
    with ctx.store() as store:
        known = store.resolve_subject(subject, issue_id) is not None
        wanted = store.recipient_lang(issue_id, subject)
    issue = ctx.catalogue.issue(issue_id)
    if ctx.catalogue.entry(issue_id) is None and (not known or issue is None):
        # Not published yet (a send still running): the link works for its recipient only.
        raise HTTPException(404, NOT_PUBLISHED)
    set_language(request, wanted)
    lang = issue.pick_language(wanted) if issue is not None and wanted else None
    view = _view(ctx, issue_id, lang)  # the reader's language, as in their message
    return _issue_response(request, ctx, view, {"X-Robots-Tag": "noindex"})


def feed(request: Request) -> Response:
    ctx = web_context(request)
    lang = language(request)
    data = atom_feed(ctx.settings, ctx.catalogue.entries(), ctx.base_url,
                     lang=lang)
    return Response(data, media_type=CONTENT_TYPE,
                    headers={"Cache-Control": PUBLIC_CACHE, "Content-Language": lang,
                             "Vary": "Accept-Language"})


def emblem(request: Request) -> Response:
    return Response(emblem_bytes(), media_type="image/png",
                    headers={"Cache-Control": STATIC_CACHE})


def stylesheet(request: Request) -> Response:
    return Response(static_file("site.css"), media_type="text/css",
                    headers={"Cache-Control": STATIC_CACHE})


def article_image(request: Request) -> Response:
    """Images of a published issue (its CID parts), at the URLs its page uses."""
    ctx = web_context(request)
    issue_id = str(request.path_params["issue_id"])
    if ctx.catalogue.entry(issue_id) is None:
        raise HTTPException(404, NOT_PUBLISHED)
    view = _view(ctx, issue_id, str(request.path_params["lang"]))
    image = ctx.renderer.image(view, str(request.path_params["name"]))
    if image is None:
        raise HTTPException(404, N_("There is no such image in this issue."))
    return Response(image.data, media_type=image.mime, headers={"Cache-Control": STATIC_CACHE})


ROUTES: list[BaseRoute] = [
    Route("/", index, methods=["GET"]),
    Route("/issues/{issue_id}", issue_page, methods=["GET"]),
    Route("/issues/{issue_id}/", issue_page, methods=["GET"]),
    Route("/issues/{issue_id}/{lang}", issue_page, methods=["GET"]),
    Route("/issues/{issue_id}/{lang}/", issue_page, methods=["GET"]),
    Route("/v/{token}", view_online, methods=["GET"]),
    Route("/subscription", subscription, methods=["GET"]),
    Route("/subscription/", subscription, methods=["GET"]),
    Route("/subscription/{lang}", subscription, methods=["GET"]),
    Route("/subscription/{lang}/", subscription, methods=["GET"]),
    Route("/feed.xml", feed, methods=["GET"]),
    Route(f"/static/{EMBLEM_FILE}", emblem, methods=["GET"]),
    Route("/static/site.css", stylesheet, methods=["GET"]),
    Route("/static/issues/{issue_id}/{lang}/{name}", article_image, methods=["GET"]),
]
