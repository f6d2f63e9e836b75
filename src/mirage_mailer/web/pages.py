"""HTML pages from the Jinja2 templates in package data (``data/web``), autoescaped.

Every page, error pages included, extends one small layout: readable on a phone, labelled
forms, no scripts. Error pages never show a traceback or internal detail. Templates speak
through Jinja2's i18n extension (``{% trans %}``, ``_()``); one environment per language, so
concurrent requests in different languages never share gettext callables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
from starlette.background import BackgroundTask
from starlette.responses import HTMLResponse

from mirage_mailer.project.config import Project
from mirage_mailer.util.pagetemplates import package_environment
from mirage_mailer.web.i18n import N_, SOURCE, translations
from mirage_mailer.web.links import Links

log = logging.getLogger(__name__)

ERROR_TITLES = {
    400: N_("This link or form is not valid"),
    403: N_("This form cannot be accepted"),
    404: N_("Page not found"),
    405: N_("Not allowed here"),
    408: N_("The request took too long"),
    413: N_("Too much data"),
    429: N_("Too many requests"),
    500: N_("Something went wrong on our side"),
    503: N_("Not available just now"),
}
OTHER_ERROR = N_("This request cannot be answered")


@lru_cache(maxsize=16)
def environment(lang: str) -> jinja2.Environment:
    """The template environment whose gettext is ``lang``'s catalog."""
    env = package_environment("data/web", extensions=["jinja2.ext.i18n"])
    env.policies["ext.i18n.trimmed"] = True  # msgids without the template's line breaks
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


def gettext(lang: str, message: str) -> str:
    """``message`` in ``lang`` (the msgid itself where there is no translation)."""
    return translations(lang).gettext(message) if message else message


def render_text(template: str, /, *, lang: str = SOURCE, **context: Any) -> str:
    """A template rendered to a string (pages, and the confirmation message parts)."""
    return environment(lang).get_template(template).render(lang=lang, **context)


def render_page(template: str, /, *, links: Links, site: Project, title: str,
                lang: str = SOURCE, noindex: bool = False, **context: Any) -> str:
    return render_text(template, links=links, site=site, title=title, noindex=noindex,
                       lang=lang, **context)


def html(body: str, *, status: int = 200, headers: Mapping[str, str] | None = None,
         background: BackgroundTask | None = None, lang: str | None = None) -> HTMLResponse:
    extra = dict(headers or {})
    if lang is not None:
        extra["Content-Language"] = lang
    return HTMLResponse(body, status_code=status, headers=extra, background=background)


def error_html(status: int, detail: str | None, *, links: Links, site: Project,
               lang: str = SOURCE) -> str:
    """The error page; ``detail`` is already in ``lang``."""
    title = gettext(lang, ERROR_TITLES.get(status, OTHER_ERROR))
    try:
        return render_page("error.html.j2", links=links, site=site, title=title, status=status,
                           detail=detail or "", noindex=True, lang=lang)
    except Exception:  # the error page itself must never fail
        log.exception("cannot render the error page")
        return (f"<!DOCTYPE html><html lang=\"{lang}\"><meta charset=\"utf-8\">"
                f"<title>{status}</title><h1>{status}</h1><p>{title}.</p></html>")


def static_file(name: str) -> bytes:
    """A file of ``data/web/static`` (the site stylesheet)."""
    return resources.files("mirage_mailer").joinpath("data", "web", "static", name).read_bytes()
