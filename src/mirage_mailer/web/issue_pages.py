"""An issue as it was sent, but for everyone: no name, no address, no personal token.

A language the tracking store kept as sent (``services.as_sent``) is shown as its readers
got it, whatever the files say today: the funding statement of its programme, its articles,
its subject. Any other (an issue sent before the store kept it, a language not sent yet) is
rendered from the files (Markdown, Jinja2, CSS inlining) once per issue and language and
cached until a file of the issue, the templates, the lists or the config changes. A page is
then that HTML with the slots filled for "Dear reader" and the images pointed at static URLs.
Its "unsubscribe" link cannot be anyone's: it leads to the page that says how to unsubscribe.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from urllib.parse import quote

from mirage_mailer.compose.disclaimer import EMBLEM_CID, EMBLEM_FILE
from mirage_mailer.compose.fragments import LanguageFragments
from mirage_mailer.compose.images import InlineImage
from mirage_mailer.compose.message import fill
from mirage_mailer.compose.render import RenderedLanguage, emblem_bytes
from mirage_mailer.compose.strings import strings_for
from mirage_mailer.project.config import Settings
from mirage_mailer.services.as_sent import images_from
from mirage_mailer.services.loader import open_project, render, template_fields
from mirage_mailer.services.store_access import StoreAccess, access
from mirage_mailer.store import SentForm
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
    subject: str
    html: str  # untracked, recipient slots still in it
    images: tuple[InlineImage, ...]
    fragments: LanguageFragments | None = None  # recipient logic, when rendered today
    as_sent: bool = False  # the store's record of what readers got, not today's files

    @classmethod
    def rendered(cls, issue_id: str, languages: tuple[str, ...],
                 rendered: RenderedLanguage) -> IssueView:
        return cls(issue_id, rendered.lang, languages, rendered.subject,
                   rendered.untracked_html(), rendered.images, rendered.fragments)

    @classmethod
    def kept(cls, form: SentForm, languages: tuple[str, ...],
             emblem: InlineImage) -> IssueView:
        images = (*images_from(form.images), emblem)
        return cls(form.issue, form.lang, languages, form.subject, form.html, images,
                   as_sent=True)


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

    def __init__(self, settings: Settings, stores: StoreAccess | None = None) -> None:
        self.settings = settings
        self._stores = access(settings, stores)  # serve's kept connections, else one a call
        self._cache: dict[str, _Cached] = {}
        self._kept: dict[tuple[str, str], tuple[SentForm, IssueView]] = {}
        self._lock = threading.Lock()  # one render at a time: premailer is CPU-bound anyway

    def view(self, issue_id: str, lang: str | None = None) -> IssueView | None:
        """The language (default: the issue's) as sent where the store kept it, else
        rendered from today's files; None when the issue lacks it.

        Raises ``InputError`` when a language not kept no longer renders (a broken template
        or list). The caller has already checked that ``issue_id`` names a publishable
        issue folder."""
        kept = self._as_sent(issue_id)
        code = lang or (self.settings.project.language if kept else None)
        if kept and code in kept:
            return self._kept_view(kept[code], tuple(kept))
        return self._rendered_view(issue_id, lang)

    def _as_sent(self, issue_id: str) -> dict[str, SentForm]:
        with self._stores.existing(settle=False) as store:
            return store.as_sent(issue_id) if store is not None else {}

    def _kept_view(self, form: SentForm, languages: tuple[str, ...]) -> IssueView:
        key = (form.issue, form.lang)
        with self._lock:
            cached = self._kept.get(key)
            if cached is not None and cached[0] == form:
                return cached[1]
        view = IssueView.kept(form, languages, self._emblem())
        with self._lock:
            self._kept[key] = (form, view)
        return view

    @staticmethod
    def _emblem() -> InlineImage:
        """The EU emblem part: the package's own, the same in every message."""
        return InlineImage(EMBLEM_CID, EMBLEM_FILE, "image/png", emblem_bytes())

    def _rendered_view(self, issue_id: str, lang: str | None) -> IssueView | None:
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
            return IssueView.rendered(issue_id, cached.languages, cached.rendered[code])

    def image(self, view: IssueView, name: str) -> InlineImage | None:
        return next((i for i in view.images if image_name(i) == name), None)

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
        if view.fragments is not None:  # recipient logic, run for no one in particular
            view.fragments.fill(values)
        html = fill(view.html, values, html=True)
        emblem = links.asset(EMBLEM_FILE)  # the message's inline emblem, hosted here
        for image in view.images:
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
