"""The archive as an Atom feed (feedgen): one entry per published issue, newest first.

Atom needs absolute, permanent ids and links, so they are built from ``tracking.base_url``
(the public address of the server), never from the address a request happened to use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from feedgen.feed import FeedGenerator

from mirage_mailer.config import Settings
from mirage_mailer.web.archive import Entry

CONTENT_TYPE = "application/atom+xml; charset=utf-8"


def atom_feed(settings: Settings, entries: list[Entry], base_url: str) -> bytes:
    project = settings.project
    base = base_url.rstrip("/")
    feed = FeedGenerator()
    feed.id(f"{base}/")
    feed.title(f"{project.name} newsletter")
    feed.subtitle(f"Every issue of the {project.name} newsletter, as sent.")
    feed.author({"name": project.name, "email": project.contact})
    feed.link(href=f"{base}/", rel="alternate", type="text/html")
    feed.link(href=f"{base}/feed.xml", rel="self", type="application/atom+xml")
    feed.language(project.language)
    feed.updated(max((e.published for e in entries), default=datetime.fromtimestamp(0, UTC)))
    for entry in entries:
        url = f"{base}/issues/{quote(entry.id)}/"
        item = feed.add_entry(order="append")
        item.id(url)
        item.title(entry.subject)
        item.link(href=url, rel="alternate", type="text/html")
        item.published(entry.published)
        item.updated(entry.published)
        item.summary(entry.summary)
    data: bytes = feed.atom_str(pretty=True)
    return data
