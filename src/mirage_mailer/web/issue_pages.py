"""An issue as it was sent, but for everyone: no name, no address, no personal token.

Rendering (Markdown, Jinja2, CSS inlining) runs once per issue and language and is cached
until a file of the issue, the templates, the lists or the config changes; a page is then the
cached HTML with the slots filled for "Dear reader" and the images pointed at static URLs.
Its "unsubscribe" link cannot be anyone's: it leads to the page that says how to unsubscribe.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from urllib.parse import quote

from mirage_mailer.compose.disclaimer import EMBLEM_CID, EMBLEM_FILE
from mirage_mailer.compose.images import InlineImage
from mirage_mailer.compose.message import fill
from mirage_mailer.compose.render import RenderedLanguage
from mirage_mailer.compose.strings import strings_for
from mirage_mailer.project.config import Settings
from mirage_mailer.services.loader import open_project, render, template_fields
from mirage_mailer.util.langs import text_direction
from mirage_mailer.web.archive import Fingerprint, fingerprint
from mirage_mailer.web.i18n import negotiate
from mirage_mailer.web.languages import label
from mirage_mailer.web.links import Links
from mirage_mailer.web.pages import render_text

_BODY = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


@dataclass(frozen=True)
class IssueView:
    """One language of one issue, rendered, with what its page needs around it."""

    issue_id: str
    lang: str
    languages: tuple[str, ...]
    lists: tuple[str, ...]
    rendered: RenderedLanguage


def image_name(image: InlineImage) -> str:
    """A file name unique within one rendered language (the CID's local part)."""
    return image.cid.split("@", 1)[0]


@dataclass
class _Cached:
    stamp: Fingerprint
    default: str
    languages: tuple[str, ...]
    lists: tuple[str, ...]
    rendered: dict[str, RenderedLanguage]


class IssueRenderer:
    """Renders issue pages for the server and the static archive; thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()  # one render at a time: premailer is CPU-bound anyway

    def view(self, issue_id: str, lang: str | None = None) -> IssueView | None:
        """The rendered language (default: the issue's), None when the issue lacks it.

        Raises ``InputError`` when the issue no longer renders (a broken template or list).
        The caller has already checked that ``issue_id`` names a publishable issue folder.
        """
        settings = self.settings
        folder = settings.issues_dir / issue_id
        stamp = fingerprint(folder, settings.templates, settings.lists_dir, settings.path)
        with self._lock:
            cached = self._cache.get(issue_id)
            if cached is None or cached.stamp != stamp:
                project = open_project(settings.path, folder)
                issue = project.issue
                cached = _Cached(stamp, issue.default_language, issue.languages,
                                 issue.lists, {})
                self._cache[issue_id] = cached
            code = lang or cached.default
            if code not in cached.languages:
                return None
            if code not in cached.rendered:
                project = open_project(settings.path, folder)
                cached.rendered.update(render(project, template_fields(project), languages=(code,)))
            return IssueView(issue_id, code, cached.languages, cached.lists,
                             cached.rendered[code])

    def image(self, view: IssueView, name: str) -> InlineImage | None:
        return next((i for i in view.rendered.images if image_name(i) == name), None)

    def page(self, view: IssueView, links: Links, *, nav: bool = True,
             ui_lang: str | None = None) -> str:
        """The page HTML: slots filled for no one in particular, images at static URLs; the
        navigation bar in ``ui_lang`` (default: the issue's language where it has a catalog)."""
        settings = self.settings
        strings = strings_for(view.lang, settings.project.name)
        values = {
            "unsubscribe_url": links.manage(view.lang),
            "view_online_url": links.issue(view.issue_id, view.lang),
            "greeting": strings["dear_reader"],
        }
        if view.rendered.fragments is not None:  # recipient logic, run for no one in particular
            view.rendered.fragments.fill(values)
        html = fill(view.rendered.untracked_html(), values, html=True)
        emblem = links.asset(EMBLEM_FILE)  # the message's inline emblem, hosted here
        for image in view.rendered.images:
            target = emblem if image.cid == EMBLEM_CID else links.asset(
                f"issues/{quote(view.issue_id)}/{quote(view.lang)}/{quote(image_name(image))}")
            html = html.replace(f"cid:{image.cid}", target)
        if nav:
            lang = ui_lang or negotiate([view.lang], None, settings.project.language)
            bar = render_text("issue_nav.html.j2", links=links, view=view, site=settings.project,
                              languages=[(code, label(code)) for code in view.languages],
                              lang=lang, dir=text_direction(lang))  # not the issue's
            html = _BODY.sub(lambda m: m.group(0) + bar, html, count=1)
        return html
