"""The one way routes answer with a page: the site layout in the request's language, with
the links, language and headers every page shares. State lives in ``context``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse

from mirage_mailer.web.context import web_context
from mirage_mailer.web.i18n import request_language, translations
from mirage_mailer.web.links import Links
from mirage_mailer.web.pages import html, render_page

PUBLIC_CACHE = "public, max-age=300"


def links_for(request: HTTPConnection) -> Links:
    """Links from the server's root (a reverse proxy may mount the app below a path)."""
    return Links(str(request.scope.get("root_path", "")).rstrip("/") + "/")


def language(request: HTTPConnection) -> str:
    """The language of this request's page (token or page language, Accept-Language,
    the project's)."""
    return request_language(request, web_context(request).settings.project.language)


def translator(request: HTTPConnection) -> Callable[[str], str]:
    """``gettext`` in the request's language; bind it to ``_`` so pybabel extracts calls."""
    return translations(language(request)).gettext


def respond(request: HTTPConnection, template: str, *, title: str, status: int = 200,
            headers: Mapping[str, str] | None = None, background: BackgroundTask | None = None,
            noindex: bool = False, **context: Any) -> HTMLResponse:
    """A page of the site layout in the request's language (``title`` already translated);
    ``noindex`` for pages behind personal links."""
    lang = language(request)
    body = render_page(template, links=links_for(request),
                       site=web_context(request).settings.project, title=title,
                       noindex=noindex, lang=lang, **context)
    extra = {"Vary": "Accept-Language", **(headers or {})}
    if noindex:
        extra["X-Robots-Tag"] = "noindex"
    return html(body, status=status, headers=extra, background=background, lang=lang)
