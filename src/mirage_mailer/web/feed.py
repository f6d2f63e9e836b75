"""The archive as an Atom feed (feedgen): one entry per published issue, newest first.

Atom needs absolute, permanent ids and links, so they are built from ``tracking.base_url``
(the public address of the server), never from the address a request happened to use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from feedgen.feed import FeedGenerator

from mirage_mailer.project.config import Settings
from mirage_mailer.web.archive import Entry
from mirage_mailer.web.i18n import default_language, translations

CONTENT_TYPE = "application/atom+xml; charset=utf-8"


def atom_feed(settings: Settings, entries: list[Entry], base_url: str, *,
              lang: str | None = None) -> bytes:
    """The feed; its own titles in ``lang`` (a catalog language; default: the project's)."""
    project = settings.project
    lang = lang or default_language(project.language)
    _ = translations(lang).gettext
    base = base_url.rstrip("/")
    feed = FeedGenerator()
    feed.id(f"{base}/")
    feed.title(_("%(name)s newsletter") % {"name": project.name})
    feed.subtitle(_("Every issue of the %(name)s newsletter, as sent.") % {"name": project.name})
    feed.author({"name": project.name, "email": project.contact})
    feed.link(href=f"{base}/", rel="alternate", type="text/html")
    feed.link(href=f"{base}/feed.xml", rel="self", type="application/atom+xml")
    feed.language(lang)
    feed.updated(max((e.published for e in entries), default=datetime.fromtimestamp(0, UTC)))
    for entry in entries:
        url = f"{base}/issues/{quote(entry.id)}/"
        item = feed.add_entry(order="append")
        item.id(url)
        item.title(entry.subject_in(lang))
        shown = entry.issue.pick_language(lang)
        page = url if shown == entry.issue.default_language else f"{url}{quote(shown)}/"
        item.link(href=page, rel="alternate", type="text/html")
        item.published(entry.published)
        item.updated(entry.published)
        item.summary(entry.summary_in(lang))
    data: bytes = feed.atom_str(pretty=True)
    return data
