"""``archive --out DIR``: the archive as plain files, for any web host (or a USB stick).

The same templates and issue pages as the server, with relative links so the folder can live
at any address. Forms (subscribe, unsubscribe) need the server: static pages link to it at
``tracking.base_url`` when that is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mirage_mailer.compose.disclaimer import EMBLEM_CID, EMBLEM_FILE
from mirage_mailer.compose.render import emblem_bytes
from mirage_mailer.project.config import Settings
from mirage_mailer.project.signup_lists import open_lists
from mirage_mailer.util.writes import check_folder_path, writing
from mirage_mailer.web.archive import Catalogue, Entry, subscribe_links
from mirage_mailer.web.feed import atom_feed
from mirage_mailer.web.i18n import catalog_languages, default_language, negotiate, translations
from mirage_mailer.web.issue_pages import IssueRenderer, image_name
from mirage_mailer.web.languages import label
from mirage_mailer.web.links import Links
from mirage_mailer.web.pages import render_page, static_file


@dataclass
class Written:
    issues: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def write_archive(settings: Settings, out: Path, *, site_url: str) -> Written:
    """Write index.html, issues/<id>/[<lang>/]index.html, feed.xml and static/ under ``out``.

    ``site_url`` is where the folder will be published (absolute links of the feed). Raises
    ``InputError`` when a published issue no longer renders, before anything is written,
    and when ``out`` cannot be written.
    """
    check_folder_path(out, "the archive")
    catalogue = Catalogue(settings)
    renderer = IssueRenderer(settings)
    entries = catalogue.entries()
    top = Links("", static=True, server=settings.tracking.base_url)
    lang = default_language(settings.project.language)  # no reader to ask: the project's
    _ = translations(lang).gettext
    pages: dict[str, bytes] = {}
    for entry in entries:
        default = renderer.view(entry.id)
        assert default is not None  # the default language always exists
        pages[f"issues/{entry.id}/index.html"] = renderer.page(default, top.below(2)).encode()
        for code in default.languages:  # not ``lang``: the index below is in the project's
            view = renderer.view(entry.id, code)
            assert view is not None
            pages[f"issues/{entry.id}/{code}/index.html"] = renderer.page(
                view, top.below(3)).encode()
            for image in view.images:
                if image.cid != EMBLEM_CID:
                    pages[f"static/issues/{entry.id}/{code}/{image_name(image)}"] = image.data
    index = render_page("archive.html.j2", links=top, site=settings.project,
                        title=_("Newsletter archive"), entries=entries,
                        subscribe=subscribe_links(entries, top, open_lists(settings), lang),
                        label=label, lang=lang)
    pages["index.html"] = index.encode()
    pages.update(_subscription_pages(settings, entries, top))
    pages["feed.xml"] = atom_feed(settings, entries, site_url)
    pages[f"static/{EMBLEM_FILE}"] = emblem_bytes()
    pages["static/site.css"] = static_file("site.css")
    written = Written(issues=[entry.id for entry in entries])
    with writing(out, "the archive"):
        for name, data in sorted(pages.items()):
            path = out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.files.append(path)
    return written


def _subscription_pages(settings: Settings, entries: list[Entry],
                        top: Links) -> dict[str, bytes]:
    """subscription/[<lang>/]index.html: where the issues' "unsubscribe" links lead, in every
    language an issue links from (in its own language where there is a catalog)."""
    codes = {lang for entry in entries for lang in entry.issue.languages} | catalog_languages()
    pages: dict[str, bytes] = {}
    for code in [None, *sorted(codes)]:
        lang = negotiate([code], None, settings.project.language)
        links = top.below(1 if code is None else 2)
        title = translations(lang).gettext("Manage your subscription")
        body = render_page("subscription.html.j2", links=links, site=settings.project,
                           title=title, lang=lang,
                           subscribe=subscribe_links(entries, links, open_lists(settings),
                                                     code or lang))
        folder = "subscription/" if code is None else f"subscription/{code}/"
        pages[f"{folder}index.html"] = body.encode()
    return pages
