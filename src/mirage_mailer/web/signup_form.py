"""What both ways of signing up share: checking the fields, the form page, the limits, and the
accepted sign-up (recorded, then the confirmation mailed after the response).

The built-in form (``/subscribe/<list>`` on this site) and the form pasted into the project's
own site (``signup-snippet``) end in the same ``accept``: same checks, same limits, same page,
whether or not the address was already subscribed. What is recorded, and how, is
``services.signup``'s; the mail leaves through the one outbound path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mirage_mailer.project.config import DEFAULT_CONSENT, Settings
from mirage_mailer.project.lists import find_list
from mirage_mailer.project.origins import site_label
from mirage_mailer.project.signup_lists import open_lists
from mirage_mailer.services.signup import sign_up as record_sign_up
from mirage_mailer.util.addresses import check_address
from mirage_mailer.util.errors import InputError
from mirage_mailer.util.headersafe import header_problem
from mirage_mailer.util.langs import check_language, normalise_language
from mirage_mailer.web import languages
from mirage_mailer.web.confirmation import send_confirmation
from mirage_mailer.web.context import WebContext, web_context
from mirage_mailer.web.csrf import FIELD
from mirage_mailer.web.forms import HONEYPOT, text
from mirage_mailer.web.i18n import N_, supported
from mirage_mailer.web.links import LANG_PARAM
from mirage_mailer.web.ratelimit import Verdict
from mirage_mailer.web.respond import language, respond, translator

log = logging.getLogger(__name__)

_LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_NAME = 200
CONSENT_VALUES = ("yes", "on")
RETURN_FIELD = "return_url"
SIGNUP_OFF = N_("Sign-up is not open on this site. Write to the project to subscribe.")
NO_LIST = N_("There is no newsletter list of that name here. Check the address of the page.")


@dataclass(frozen=True)
class SignUp:
    email: str
    name: str | None
    lang: str


@dataclass(frozen=True)
class BackLink:
    """A "back to <site>" link on the thank-you page: always a page of an allowed site."""

    url: str
    label: str

    @classmethod
    def to(cls, url: str, origin: str) -> BackLink:
        return cls(url, site_label(origin))


def list_exists(settings: Settings, name: str) -> bool:
    if not _LIST_NAME.match(name):  # never a path: no '/', no leading '.'
        return False
    try:
        find_list(settings.lists_dir, name, origin=settings.path, line=None)
    except InputError:
        return False
    return True


def is_open(settings: Settings, name: str) -> bool:
    """``name`` takes public sign-ups (``web.signup_lists``); the same work for a list that
    is not open and for a name with no list file."""
    return name in open_lists(settings) and list_exists(settings, name)


def require_open(settings: Settings, name: str) -> None:
    """A 404 page unless ``name`` takes public sign-ups. A list that is not open gets the
    very page an unknown name gets, by the same path: nobody learns from the answer which
    internal lists exist."""
    if not settings.web.signup:
        raise HTTPException(404, SIGNUP_OFF)
    if not is_open(settings, name):
        raise HTTPException(404, NO_LIST)


def list_name(request: Request) -> str:
    """The list of a sign-up URL; a 404 page when sign-up is off or the list is not open."""
    name = str(request.path_params["list_name"])
    require_open(web_context(request).settings, name)
    return name


def _same(message: str) -> str:
    return message


def check_sign_up(form: FormData, settings: Settings, gettext: Callable[[str], str] = _same,
                  ) -> tuple[SignUp | None, dict[str, str]]:
    """The sign-up, or the problems to show next to each field (in ``gettext``'s language)."""
    _ = gettext
    errors: dict[str, str] = {}
    # A browser's text field cannot send CR or LF (HTML strips them): a raw line break is a
    # script's or an attack's, refused as an encoded one is, never folded away and mailed.
    # Spaces and tabs (a paste can bring a tab) are still trimmed and folded.
    posted = text(form, "email")
    raw_email = posted.strip()
    email = raw_email
    if not raw_email:
        errors["email"] = _("Enter your e-mail address.")
    else:
        email, bad = check_address(raw_email)
        if bad or header_problem(email) or header_problem(posted.replace("\t", " ")):
            errors["email"] = _("This is not a valid e-mail address.")
    raw_name = text(form, "name")
    name = " ".join(raw_name.split())
    if len(name) > MAX_NAME:
        errors["name"] = _("Keep the name under %(max)d characters.") % {"max": MAX_NAME}
    elif header_problem(name) or header_problem(raw_name.replace("\t", " ")):
        errors["name"] = _("The name contains characters that cannot be used (line breaks, "
                           "control characters, or an encoded word such as =?utf-8?q?...?=).")
    lang = text(form, "lang").strip() or settings.project.language
    if check_language(lang):
        errors["lang"] = _("Choose a language from the list.")
    if text(form, "consent") not in CONSENT_VALUES:
        errors["consent"] = _("Tick the box to give your consent; we cannot subscribe you "
                              "without it.")
    if errors:
        return None, errors
    return SignUp(email, name or None, normalise_language(lang)), {}


def offered_language(request: Request) -> str:
    """The newsletter language the form proposes: the reader's, when the project offers it."""
    ctx = web_context(request)
    settings = ctx.settings
    page = language(request)
    codes = [code for code, _label in languages.choices(settings, ctx.catalogue.languages())]
    asked = request.query_params.get(LANG_PARAM, "")  # the linking page's, even without a catalog
    if not check_language(asked) and normalise_language(asked) in codes:
        return normalise_language(asked)
    return next((code for code in codes if supported(code) == page), settings.project.language)


def consent_language(settings: Settings) -> str:
    """The language the consent text is written in: the project's, or English for the
    built-in text; forms mark it with ``lang`` where their page is in another language."""
    return "en" if settings.web.consent_text == DEFAULT_CONSENT else settings.project.language


def form_page(request: Request, name: str, *, values: dict[str, str], errors: dict[str, str],
              status: int = 200, return_url: str | None = None) -> Response:
    """The built-in form; ``return_url`` (already checked) rides along for the thank-you page."""
    ctx = web_context(request)
    settings = ctx.settings
    path = request.url.path  # GET and POST /subscribe/<list>: the form posts to itself,
    asked = request.query_params.get(LANG_PARAM)  # keeping the page's language (?lang=)
    action = f"{path}?{urlencode({LANG_PARAM: asked})}" if asked and supported(asked) else path
    _ = translator(request)
    title = _("Subscribe to the %(name)s newsletter") % {"name": settings.project.name}
    return respond(
        request, "subscribe.html.j2", title=title,
        status=status, list_name=name, action=action, csrf_field=FIELD,
        csrf=ctx.csrf.issue(path),
        consent_text=settings.web.consent_text, consent_lang=consent_language(settings),
        privacy_url=settings.web.privacy_url, honeypot=HONEYPOT, return_field=RETURN_FIELD,
        return_url=return_url,
        languages=languages.choices(settings, ctx.catalogue.languages()), values=values,
        errors=errors)


def form_values(request: Request, form: FormData) -> dict[str, str]:
    """What a person typed, to show again next to the problems."""
    return {"email": text(form, "email").strip(), "name": text(form, "name").strip(),
            "lang": text(form, "lang").strip() or offered_language(request)}


def client(request: Request) -> str:
    """The visitor's address (the forwarded one behind ``serve --proxy-headers``)."""
    return request.client.host if request.client is not None else "unknown"


def _over_limit(request: Request, ctx: WebContext, email: str) -> Response | None:
    """A polite page when this client or this mailbox asked too often, else None (counted)."""
    verdict, wait = ctx.limits.check(client(request), email)
    _ = translator(request)
    if verdict is Verdict.MAILBOX:
        return respond(request, "subscribe_limited.html.j2", title=_("Check your mailbox"),
                       per_client=False, email=email, minutes=0)
    if verdict is not Verdict.ALLOWED:  # this client's hour, or a flood of mailboxes
        return respond(request, "subscribe_limited.html.j2", title=_("Too many sign-ups"),
                       status=429, headers={"Retry-After": str(wait)}, per_client=True,
                       email=email, minutes=max(1, wait // 60))
    return None


def thank_you(request: Request, email: str, back: BackLink | None,
              background: BackgroundTask | None = None) -> Response:
    """"Check your mailbox": the same page for a new, a known and a robot's address."""
    _ = translator(request)
    return respond(request, "subscribe_sent.html.j2", title=_("Check your mailbox"),
                   email=email, back=back, background=background)


def _record(ctx: WebContext, name: str, sign_up: SignUp, source: str) -> str | None:
    return record_sign_up(ctx.settings, ctx.signer, name, sign_up.email, name=sign_up.name,
                          lang=sign_up.lang, source=source, stores=ctx.stores)


async def accept(request: Request, name: str, sign_up: SignUp, *, source: str,
                 back: BackLink | None) -> Response:
    """Within the limits: record the pending sign-up and mail the link after the response."""
    ctx = web_context(request)
    limited = _over_limit(request, ctx, sign_up.email)
    if limited is not None:
        return limited
    requested_at = await run_in_threadpool(_record, ctx, name, sign_up, source)
    task = None
    if requested_at is not None:  # a confirmed, still receiving address gets nothing: the
        # page stays the same. The message speaks the newsletter language chosen, where
        # there is a catalog for it.
        mail_lang = supported(sign_up.lang) or language(request)
        task = BackgroundTask(send_confirmation, ctx.settings, ctx.signer, ctx.base_url,
                              list_name=name, email=sign_up.email, requested_at=requested_at,
                              lang=mail_lang)
    return thank_you(request, sign_up.email, back, task)


def robot(request: Request, form: FormData, back: BackLink | None, why: str) -> Response:
    """A robot's post: the page a person would see, nothing stored, nothing sent."""
    log.info("sign-up for %s ignored: %s", request.url.path, why)
    return thank_you(request, text(form, "email").strip()[:254], back)
