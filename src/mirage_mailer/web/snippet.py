"""The sign-up form to paste into the project's own site (``mirage-mailer signup-snippet``).

Plain HTML: labelled fields, ``lang`` on the form, ``autocomplete="email"``, the consent text
the built-in form shows, a link to the privacy notice, the trap field, and no script. It posts
to ``serve`` at ``tracking.base_url``, which accepts it only from ``web.allowed_origins``
(``signup_elsewhere``). Everything it needs is checked first: a snippet that the server would
refuse is never printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from mirage_mailer.project.config import Settings
from mirage_mailer.project.config_checks import has_userinfo, redact
from mirage_mailer.project.lists import find_list
from mirage_mailer.project.origins import safe_return_url
from mirage_mailer.project.signup_lists import closed_problem, open_lists
from mirage_mailer.services.signup import require_privacy_notice
from mirage_mailer.util.errors import InputError, Problem, display_path, shorten
from mirage_mailer.util.langs import check_language, normalise_language
from mirage_mailer.web.forms import HONEYPOT
from mirage_mailer.web.i18n import catalog_languages, supported
from mirage_mailer.web.pages import render_text
from mirage_mailer.web.signup_form import RETURN_FIELD, consent_language


@dataclass(frozen=True)
class Snippet:
    html: str
    warnings: list[Problem]


def _config_problem(settings: Settings, key: str, message: str, hint: str) -> InputError:
    line = settings.line_of.get(key) or settings.line_of.get(key.partition(".")[0]) or 1
    return InputError(Problem(display_path(settings.path), line, message, hint))


def _check_ready(settings: Settings) -> str:
    """The server's public address, once sign-up can work from another site."""
    web = settings.web
    if not web.signup:
        raise _config_problem(settings, "web.signup", "sign-up is off (web.signup: false)",
                              "set it to true to take sign-ups")
    require_privacy_notice(settings)
    if not settings.tracking.base_url:
        raise _config_problem(settings, "tracking",
                              "tracking.base_url is not set: the form posts to "
                              "'mirage-mailer serve' at that address",
                              "set it to the server's public https address")
    if not web.allowed_origins:
        raise _config_problem(settings, "web",
                              "web.allowed_origins is empty: the server refuses this form "
                              "from every other site",
                              "list the site that will carry the form under 'web:', e.g. "
                              "allowed_origins: [https://www.example.org]")
    return settings.tracking.base_url


def signup_snippet(settings: Settings, list_name: str, *, lang: str | None = None,
                   return_url: str | None = None) -> Snippet:
    """The form for ``list_name`` in ``lang`` (default: the project's language)."""
    base_url = _check_ready(settings)
    find_list(settings.lists_dir, list_name, origin=settings.lists_dir, line=None)
    if list_name not in open_lists(settings):  # serve would answer its posts with a 404
        raise InputError(closed_problem(settings, list_name))
    wanted = lang or settings.project.language
    if bad := check_language(wanted):
        raise InputError(Problem("--lang", None, f"{shorten(wanted)!r}: {bad}",
                                 "use an ISO 639-1 code such as en, fr or pt-BR"))
    wanted = normalise_language(wanted)
    warnings = []
    text_lang = supported(wanted)
    if text_lang is None:
        shipped = ", ".join(sorted(catalog_languages()))
        warnings.append(Problem("--lang", None, f"no translation of the form into {wanted}: "
                                "its labels are in English", f"translations: {shipped}",
                                warning=True))
        text_lang = "en"
    back = None
    if return_url:
        shown = shorten(redact(return_url))  # no command prints a password, even a mistaken one
        if has_userinfo(return_url):
            raise InputError(Problem("--return-url", None, f"{shown!r} holds a user name or "
                                     "password", "remove them: every reader would see them"))
        back = safe_return_url(return_url, frozenset(settings.web.allowed_origins))
        if back is None:
            raise InputError(Problem(
                "--return-url", None,
                f"{shown!r} is not a page of a site in web.allowed_origins",
                "give the address of the page that carries the form, on one of: "
                + ", ".join(settings.web.allowed_origins)))
    html = render_text(
        "subscribe_snippet.html.j2", lang=text_lang, site=settings.project,
        list_name=list_name, origins=settings.web.allowed_origins,
        action=f"{base_url}/subscribe/{quote(list_name)}", id=f"mirage-signup-{list_name}",
        consent_text=settings.web.consent_text, consent_lang=consent_language(settings),
        privacy_url=settings.web.privacy_url, honeypot=HONEYPOT, newsletter_lang=wanted,
        return_field=RETURN_FIELD, return_url=back)
    return Snippet(html, warnings)
