"""Double opt-in sign-up: the form, the confirmation message, and the confirmation link.

Consent is recorded with the exact text and version shown, the time, the list and the source;
the confirmation link proves the address is the person's own. Pages never say whether an
address was already subscribed (that would leak who reads the newsletter).

The link opens a page with one button: only its POST confirms. Mail scanners open (GET,
HEAD) every link in a message, and someone who posts another person's address to the form
must not get it confirmed, least of all the address of someone who unsubscribed. The
person's own confirmation is fresh, explicit consent: it lifts an earlier unsubscription (the
store records a ``resubscribed`` event). Sign-ups are rate-limited per mailbox and per client.
What is recorded, and how, is ``services.signup``'s; this module owns the routes, the checks
and pages are ``signup_form``'s, and posts from the project's own site ``signup_elsewhere``'s.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mirage_mailer.project.origins import origin_of
from mirage_mailer.services.signup import Confirmed, confirmation_list, confirmation_target
from mirage_mailer.services.signup import confirm as confirm_sign_up
from mirage_mailer.web import signup_elsewhere
from mirage_mailer.web.context import web_context
from mirage_mailer.web.csrf import FIELD
from mirage_mailer.web.forms import check_forgery, honeypot_filled, read_form, text
from mirage_mailer.web.i18n import N_, set_language
from mirage_mailer.web.links import LANG_PARAM
from mirage_mailer.web.respond import respond, translator
from mirage_mailer.web.routing import page_and_form
from mirage_mailer.web.signup_form import (
    RETURN_FIELD,
    SIGNUP_OFF,
    accept,
    check_sign_up,
    form_page,
    form_values,
    is_open,
    list_name,
    offered_language,
    robot,
)
from mirage_mailer.web.unsubscribe import mask

log = logging.getLogger(__name__)


def _asked_language(request: Request) -> None:
    """``?lang=fr`` (the link from a French page): the form's page speaks it when it can."""
    set_language(request, request.query_params.get(LANG_PARAM))


def show(request: Request) -> Response:
    _asked_language(request)
    name = list_name(request)
    back = signup_elsewhere.back_link(request.query_params.get(RETURN_FIELD, ""),
                                      web_context(request).settings.web.allowed_origins)
    return form_page(request, name, errors={},
                     values={"email": "", "name": "", "lang": offered_language(request)},
                     return_url=back.url if back else None)


def _note_foreign_origin(request: Request) -> None:
    """Tell the operator which site was refused: the usual cause is a site missing from
    ``web.allowed_origins`` (the visitor sees the 403 page)."""
    origin = signup_elsewhere.posting_origin(request)
    ctx = web_context(request)
    if origin is not None and origin not in (origin_of(str(request.url)),
                                             origin_of(ctx.base_url)):
        log.warning("sign-up form posted from %s refused: that site is not in "
                    "web.allowed_origins", origin)


async def subscribe(request: Request) -> Response:
    _asked_language(request)
    name = await run_in_threadpool(list_name, request)
    form = await read_form(request)
    site = signup_elsewhere.allowed_site(request)
    if site is not None:
        return await signup_elsewhere.first_step(request, name, form, site)
    try:
        check_forgery(request, form)
    except HTTPException as refused:
        if refused.status_code == 403:
            _note_foreign_origin(request)
        raise
    settings = web_context(request).settings
    back = signup_elsewhere.back_link(text(form, RETURN_FIELD), settings.web.allowed_origins)
    if honeypot_filled(form):
        return robot(request, form, back, "trap field filled in")
    sign_up, errors = check_sign_up(form, settings, translator(request))
    if sign_up is None:
        values = form_values(request, form)
        return await run_in_threadpool(
            lambda: form_page(request, name, values=values, errors=errors, status=400,
                              return_url=back.url if back else None))
    return await accept(request, name, sign_up, source="web", back=back)


BAD_CONFIRM = N_("This confirmation link is not valid. Copy the whole link from the message, "
                 "or subscribe again.")
NO_SIGN_UP = N_("This confirmation link does not match a sign-up (it may have been erased). "
                "Subscribe again.")


# The confirm page shows the name a sign-up was made with (anyone may have typed it beside
# this address): its button confirms that name, the other subscribes without any.
NAME_SHOWN = "name_shown"
WITHOUT_NAME = "without_name"


def _confirm_token(request: Request) -> tuple[str, str, str | None]:
    """(list, subject id, time of the sign-up it was mailed for) of a genuine confirmation
    token, else a 400 page; the 404 page while sign-up is off (``web.signup: false``)."""
    ctx = web_context(request)
    found = ctx.verify("confirm", str(request.path_params["token"]))
    if found is None:
        raise HTTPException(400, BAD_CONFIRM)
    if not ctx.settings.web.signup:
        raise HTTPException(404, SIGNUP_OFF)
    scope, subject = found
    list_name, requested_at = confirmation_list(scope)
    return list_name, subject, requested_at


def show_confirm(request: Request) -> Response:
    """GET (and HEAD): a page with one button; reads the store, changes nothing."""
    list_name, subject, requested_at = _confirm_token(request)
    ctx = web_context(request)
    target = confirmation_target(ctx.settings, list_name, subject, ctx.stores,
                                 requested_at=requested_at)
    set_language(request, target.lang)
    if target.address is None or not is_open(ctx.settings, list_name):
        raise HTTPException(400, NO_SIGN_UP)  # a list not open (any more): as no list at all
    action = request.url.path
    _ = translator(request)
    return respond(request, "confirm.html.j2", title=_("Confirm your subscription"),
                   noindex=True, list_name=list_name, action=action, csrf_field=FIELD,
                   csrf=ctx.csrf.issue(action), signup_name=target.name or "",
                   name_field=NAME_SHOWN, without_field=WITHOUT_NAME)


def _confirm(request: Request, list_name: str, subject: str, requested_at: str | None,
             name_shown: str | None, without_name: bool) -> Confirmed:
    """The confirmation after the person's own POST, or a 400 page when there is no sign-up
    (or the link was mailed for an earlier one). A sign-up made before
    ``web.signup_lists`` closed its list stays unconfirmed."""
    ctx = web_context(request)
    if not is_open(ctx.settings, list_name):
        set_language(request, confirmation_target(ctx.settings, list_name, subject,
                                                  ctx.stores).lang)
        raise HTTPException(400, NO_SIGN_UP)
    done = confirm_sign_up(ctx.settings, list_name, subject, ctx.stores,
                           requested_at=requested_at, name_shown=name_shown,
                           without_name=without_name)
    set_language(request, done.lang)
    if not isinstance(done, Confirmed):
        raise HTTPException(400, NO_SIGN_UP)
    return done


async def confirm(request: Request) -> Response:
    """POST from the page's button (CSRF field): confirms; idempotent."""
    list_name, subject, requested_at = _confirm_token(request)
    form = await read_form(request)
    check_forgery(request, form)
    shown = form.get(NAME_SHOWN)  # absent: a post not from the page (kept as it was)
    done = await run_in_threadpool(_confirm, request, list_name, subject, requested_at,
                                   shown if isinstance(shown, str) else None,
                                   text(form, WITHOUT_NAME) == "yes")
    _ = translator(request)
    return respond(request, "confirmed.html.j2", title=_("Subscription confirmed"), noindex=True,
                   list_name=list_name, masked=mask(done.address), lifted=done.lifted,
                   suppressed=done.suppressed)


ROUTES: list[BaseRoute] = [
    page_and_form("/subscribe/{list_name}", show=show, post=subscribe),
    Route("/subscribe/{list_name}/finish", signup_elsewhere.finish, methods=["POST"]),
    page_and_form("/confirm/{token}", show=show_confirm, post=confirm),
]
