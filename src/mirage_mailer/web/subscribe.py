"""Double opt-in sign-up: the form, the confirmation message, and the confirmation link.

Consent is recorded with the exact text and version shown, the time, the list and the source;
the confirmation link proves the address is the person's own. Pages never say whether an
address was already subscribed (that would leak who reads the newsletter).

The link opens a page with one button: only its POST confirms. Mail scanners open (GET,
HEAD) every link in a message, and someone who posts another person's address to the form
must not get it confirmed, least of all the address of someone who unsubscribed. The
person's own confirmation is fresh, explicit consent: it lifts an earlier unsubscription (the
store records a ``resubscribed`` event). Sign-ups are rate-limited per mailbox and per client.
What is recorded, and how, is ``services.signup``'s; this module owns the pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mirage_mailer.project.config import Settings
from mirage_mailer.project.lists import find_list
from mirage_mailer.services.signup import Confirmed, confirmation_target
from mirage_mailer.services.signup import confirm as confirm_sign_up
from mirage_mailer.services.signup import sign_up as record_sign_up
from mirage_mailer.util.addresses import check_address
from mirage_mailer.util.errors import InputError
from mirage_mailer.util.headersafe import header_problem
from mirage_mailer.util.langs import check_language, normalise_language
from mirage_mailer.web import languages
from mirage_mailer.web.confirmation import send_confirmation
from mirage_mailer.web.context import WebContext, web_context
from mirage_mailer.web.csrf import FIELD
from mirage_mailer.web.forms import check_forgery, read_form, text
from mirage_mailer.web.i18n import N_, set_language, supported
from mirage_mailer.web.ratelimit import mailbox_key
from mirage_mailer.web.respond import language, respond, translator
from mirage_mailer.web.unsubscribe import mask

_LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_NAME = 200
CONSENT_VALUES = ("yes", "on")


@dataclass(frozen=True)
class SignUp:
    email: str
    name: str | None
    lang: str


def list_exists(settings: Settings, name: str) -> bool:
    if not _LIST_NAME.match(name):  # never a path: no '/', no leading '.'
        return False
    try:
        find_list(settings.lists_dir, name, origin=settings.path, line=None)
    except InputError:
        return False
    return True


def _list_name(request: Request) -> str:
    name = str(request.path_params["list_name"])
    if not list_exists(web_context(request).settings, name):
        raise HTTPException(404, N_("There is no newsletter list of that name here. Check "
                                    "the address of the page."))
    return name


def _same(message: str) -> str:
    return message


def check_sign_up(form: FormData, settings: Settings, gettext: Callable[[str], str] = _same,
                  ) -> tuple[SignUp | None, dict[str, str]]:
    """The sign-up, or the problems to show next to each field (in ``gettext``'s language)."""
    _ = gettext
    errors: dict[str, str] = {}
    raw_email = text(form, "email").strip()
    email = raw_email
    if not raw_email:
        errors["email"] = _("Enter your e-mail address.")
    else:
        email, bad = check_address(raw_email)
        if bad or header_problem(email):
            errors["email"] = _("This is not a valid e-mail address.")
    name = " ".join(text(form, "name").split())
    if len(name) > MAX_NAME:
        errors["name"] = _("Keep the name under %(max)d characters.") % {"max": MAX_NAME}
    elif header_problem(name):
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


def _form(request: Request, list_name: str, *, values: dict[str, str], errors: dict[str, str],
          status: int = 200) -> Response:
    ctx = web_context(request)
    settings = ctx.settings
    action = request.url.path
    _ = translator(request)
    title = _("Subscribe to the %(name)s newsletter") % {"name": settings.project.name}
    return respond(
        request, "subscribe.html.j2", title=title,
        status=status, list_name=list_name, action=action, csrf_field=FIELD,
        csrf=ctx.csrf.issue(action), consent_text=settings.web.consent_text,
        languages=languages.choices(settings, ctx.catalogue.languages()), values=values,
        errors=errors)


def _offered_language(request: Request) -> str:
    """The newsletter language the form proposes: the reader's, when the project offers it."""
    ctx = web_context(request)
    settings = ctx.settings
    page = language(request)
    codes = [code for code, _label in languages.choices(settings, ctx.catalogue.languages())]
    return next((code for code in codes if supported(code) == page), settings.project.language)


def show(request: Request) -> Response:
    list_name = _list_name(request)
    return _form(request, list_name, errors={},
                 values={"email": "", "name": "", "lang": _offered_language(request)})


def _record(request: Request, list_name: str, sign_up: SignUp) -> bool:
    ctx = web_context(request)
    return record_sign_up(ctx.settings, ctx.signer, list_name, sign_up.email,
                          name=sign_up.name, lang=sign_up.lang)


def _client(request: Request) -> str:
    """The visitor's address (the forwarded one behind ``serve --proxy-headers``)."""
    return request.client.host if request.client is not None else "unknown"


def _over_limit(request: Request, ctx: WebContext, email: str) -> Response | None:
    """A polite page when this client or this mailbox asked too often, else None (counted)."""
    limits = ctx.limits
    client = _client(request)
    _ = translator(request)
    if not limits.per_client.allow(client):
        wait = limits.per_client.retry_after(client)
        return respond(request, "subscribe_limited.html.j2", title=_("Too many sign-ups"),
                       status=429, headers={"Retry-After": str(wait)}, per_client=True,
                       email=email, minutes=max(1, wait // 60))
    if not limits.per_mailbox.allow(mailbox_key(email)):
        return respond(request, "subscribe_limited.html.j2", title=_("Check your mailbox"),
                       per_client=False, email=email, minutes=0)
    return None


async def subscribe(request: Request) -> Response:
    list_name = await run_in_threadpool(_list_name, request)
    form = await read_form(request)
    check_forgery(request, form)
    ctx = web_context(request)
    settings = ctx.settings
    _ = translator(request)
    sign_up, errors = check_sign_up(form, settings, _)
    if sign_up is None:
        values = {"email": text(form, "email").strip(), "name": text(form, "name").strip(),
                  "lang": text(form, "lang").strip() or _offered_language(request)}
        return await run_in_threadpool(
            lambda: _form(request, list_name, values=values, errors=errors, status=400))
    limited = _over_limit(request, ctx, sign_up.email)
    if limited is not None:
        return limited
    pending = await run_in_threadpool(_record, request, list_name, sign_up)
    task = None
    if pending:  # a confirmed, still receiving address gets nothing: the page stays the same
        # The message speaks the newsletter language chosen, where there is a catalog for it.
        mail_lang = supported(sign_up.lang) or language(request)
        task = BackgroundTask(send_confirmation, settings, ctx.signer, ctx.base_url,
                              list_name=list_name, email=sign_up.email, name=sign_up.name,
                              lang=mail_lang)
    return respond(request, "subscribe_sent.html.j2", title=_("Check your mailbox"),
                   email=sign_up.email, background=task)


BAD_CONFIRM = N_("This confirmation link is not valid. Copy the whole link from the message, "
                 "or subscribe again.")
NO_SIGN_UP = N_("This confirmation link does not match a sign-up (it may have been erased). "
                "Subscribe again.")


def _confirm_token(request: Request) -> tuple[str, str]:
    """(list, subject id) of a genuine confirmation token, else a 400 page."""
    found = web_context(request).verify("confirm", str(request.path_params["token"]))
    if found is None:
        raise HTTPException(400, BAD_CONFIRM)
    return found


def show_confirm(request: Request) -> Response:
    """GET (and HEAD): a page with one button; reads the store, changes nothing."""
    list_name, subject = _confirm_token(request)
    ctx = web_context(request)
    target = confirmation_target(ctx.settings, list_name, subject)
    set_language(request, target.lang)
    if target.address is None:
        raise HTTPException(400, NO_SIGN_UP)
    action = request.url.path
    _ = translator(request)
    return respond(request, "confirm.html.j2", title=_("Confirm your subscription"),
                   noindex=True, list_name=list_name, action=action, csrf_field=FIELD,
                   csrf=ctx.csrf.issue(action))


def _confirm(request: Request, list_name: str, subject: str) -> Confirmed:
    """The confirmation after the person's own POST, or a 400 page when there is no sign-up."""
    done = confirm_sign_up(web_context(request).settings, list_name, subject)
    set_language(request, done.lang)
    if not isinstance(done, Confirmed):
        raise HTTPException(400, NO_SIGN_UP)
    return done


async def confirm(request: Request) -> Response:
    """POST from the page's button (CSRF field): confirms; idempotent."""
    list_name, subject = _confirm_token(request)
    form = await read_form(request)
    check_forgery(request, form)
    done = await run_in_threadpool(_confirm, request, list_name, subject)
    _ = translator(request)
    return respond(request, "confirmed.html.j2", title=_("Subscription confirmed"), noindex=True,
                   list_name=list_name, masked=mask(done.address), lifted=done.lifted,
                   suppressed=done.suppressed)


ROUTES: list[BaseRoute] = [
    Route("/subscribe/{list_name}", show, methods=["GET"]),
    Route("/subscribe/{list_name}", subscribe, methods=["POST"]),
    Route("/confirm/{token}", show_confirm, methods=["GET"]),
    Route("/confirm/{token}", confirm, methods=["POST"]),
]
