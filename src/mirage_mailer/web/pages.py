"""HTML pages from the Jinja2 templates in package data (``data/web``), autoescaped.

Every page, error pages included, extends one small layout: readable on a phone, labelled
forms, no scripts. Error pages never show a traceback or internal detail.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib import resources
from typing import Any

import jinja2
from starlette.background import BackgroundTask
from starlette.responses import HTMLResponse

from mirage_mailer.config import Project
from mirage_mailer.web.links import Links

log = logging.getLogger(__name__)

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("mirage_mailer", "data/web"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2", "xml")),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

ERROR_TITLES = {
    400: "This link or form is not valid",
    403: "This form cannot be accepted",
    404: "Page not found",
    405: "Not allowed here",
    413: "Too much data",
    429: "Too many requests",
    500: "Something went wrong on our side",
}


def render_text(template: str, /, **context: Any) -> str:
    """A template rendered to a string (pages, and the confirmation message parts)."""
    return _ENV.get_template(template).render(**context)


def render_page(template: str, /, *, links: Links, site: Project, title: str,
                noindex: bool = False, **context: Any) -> str:
    return render_text(template, links=links, site=site, title=title, noindex=noindex,
                       **context)


def html(body: str, *, status: int = 200, headers: Mapping[str, str] | None = None,
         background: BackgroundTask | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=headers, background=background)


def error_html(status: int, detail: str | None, *, links: Links, site: Project) -> str:
    title = ERROR_TITLES.get(status, "This request cannot be answered")
    try:
        return render_page("error.html.j2", links=links, site=site, title=title, status=status,
                           detail=detail or "", noindex=True)
    except Exception:  # the error page itself must never fail
        log.exception("cannot render the error page")
        return (f"<!DOCTYPE html><html lang=\"en\"><meta charset=\"utf-8\"><title>{status}</title>"
                f"<h1>{status}</h1><p>{title}.</p></html>")


def static_file(name: str) -> bytes:
    """A file of ``data/web/static`` (the site stylesheet)."""
    return resources.files("mirage_mailer").joinpath("data", "web", "static", name).read_bytes()
