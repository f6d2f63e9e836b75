"""What the routes share, kept on ``app.state.mirage``, and the one way they answer with a page."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse

from mirage_mailer.web.archive import Catalogue
from mirage_mailer.web.context import WebContext
from mirage_mailer.web.csrf import CsrfTokens
from mirage_mailer.web.i18n import request_language, translations
from mirage_mailer.web.issue_pages import IssueRenderer
from mirage_mailer.web.links import Links
from mirage_mailer.web.pages import html, render_page
from mirage_mailer.web.ratelimit import SignUpLimits

PUBLIC_CACHE = "public, max-age=300"


@dataclass(frozen=True)
class WebState:
    ctx: WebContext
    csrf: CsrfTokens
    catalogue: Catalogue
    renderer: IssueRenderer
    limits: SignUpLimits = field(default_factory=SignUpLimits)


def web_state(request: HTTPConnection) -> WebState:
    state = request.app.state.mirage
    assert isinstance(state, WebState)
    return state


def links_for(request: HTTPConnection) -> Links:
    """Links from the server's root (a reverse proxy may mount the app below a path)."""
    return Links(str(request.scope.get("root_path", "")).rstrip("/") + "/")


def language(request: HTTPConnection) -> str:
    """The language of this request's page (token or page language, Accept-Language,
    the project's)."""
    return request_language(request, web_state(request).ctx.settings.project.language)


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
                       site=web_state(request).ctx.settings.project, title=title,
                       noindex=noindex, lang=lang, **context)
    extra = {"Vary": "Accept-Language", **(headers or {})}
    if noindex:
        extra["X-Robots-Tag"] = "noindex"
    return html(body, status=status, headers=extra, background=background, lang=lang)
