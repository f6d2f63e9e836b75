"""The one way our own page templates (web pages, HTML reports) are loaded: from the package,
autoescaped, with undefined names an error, so no page can be built without escaping."""

from __future__ import annotations

from typing import Any

import jinja2


def package_environment(folder: str, **options: Any) -> jinja2.Environment:
    """An environment for the templates in ``mirage_mailer/<folder>``; ``options`` add to
    (never loosen) the shared settings, e.g. extensions or keep_trailing_newline."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("mirage_mailer", folder),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2", "xml")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        **options,
    )
