"""Sign-ups posted by the form pasted into the project's own site (``signup-snippet``).

A post to ``/subscribe/<list>`` whose ``Origin`` (or, without one, ``Referer``) is one of
``web.allowed_origins`` is such a form: it has no CSRF field (static HTML cannot) and no time
it was shown. It is answered, never recorded: a filled trap field gets the usual "check your
mailbox" page; a form with problems gets this site's own form, filled in, to finish here; a good
one gets this site's page with one button, carrying a signed ticket (``signup_ticket``). The
button's post, on this site (CSRF field, same origin), records the sign-up and mails the link,
but only when it comes at least two seconds after the page: robots post at once.

A site that is not allowed is refused as every cross-site post is (``forms.check_forgery``).
The thank-you page links back to the site the form came from, to a ``return_url`` of that site
only: a link to anywhere else is never shown (no open redirect).
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mirage_mailer.project.origins import origin_of, safe_return_url
from mirage_mailer.web.context import web_context
from mirage_mailer.web.csrf import FIELD
from mirage_mailer.web.forms import check_forgery, honeypot_filled, read_form, text
from mirage_mailer.web.i18n import N_, set_language
from mirage_mailer.web.respond import respond, translator
from mirage_mailer.web.signup_form import (
    RETURN_FIELD,
    BackLink,
    SignUp,
    accept,
    check_sign_up,
    form_page,
    form_values,
    list_name,
    robot,
)
from mirage_mailer.web.signup_ticket import SignUpTickets, Ticket, Verdict

log = logging.getLogger(__name__)

TICKET_FIELD = "ticket"
BAD_TICKET = N_("This page is not valid. Go back to the site you came from and send the form "
                "again.")


def posting_origin(request: Request) -> str | None:
    """The site the browser says the form was on: ``Origin``, else ``Referer``'s origin."""
    origin = request.headers.get("origin")
    if origin is not None:
        return None if origin.strip().lower() == "null" else origin_of(origin)
    referer = request.headers.get("referer")
    return origin_of(referer) if referer else None


def allowed_site(request: Request) -> str | None:
    """The allowed other site this post comes from; None for this site and for any other."""
    ctx = web_context(request)
    origin = posting_origin(request)
    if origin is None or origin not in ctx.settings.web.allowed_origins:
        return None
    if origin in (origin_of(str(request.url)), origin_of(ctx.base_url)):
        return None  # this site's own form: CSRF field and all
    return origin


def back_link(raw: str, sites: tuple[str, ...] | frozenset[str],
              default_origin: str | None = None) -> BackLink | None:
    """A link to ``raw`` when it is a page of one of ``sites``; else to ``default_origin``'s
    home page (when given); else none."""
    url = safe_return_url(raw, frozenset(sites)) if raw else None
    if url is not None:
        origin = origin_of(url)
        assert origin is not None
        return BackLink.to(url, origin)
    if default_origin is not None:
        return BackLink.to(f"{default_origin}/", default_origin)
    return None


def _tickets(request: Request) -> SignUpTickets:
    tickets = web_context(request).tickets
    assert tickets is not None  # WebContext.load makes them
    return tickets


def _button_page(request: Request, ticket: Ticket, *, too_fast: bool = False,
                 expired: bool = False) -> Response:
    """The one button (a fresh ticket and CSRF field), or the page that says it expired."""
    ctx = web_context(request)
    action = f"{request.url.path.removesuffix('/finish')}/finish"
    _ = translator(request)
    back = back_link(ticket.return_url or "", (ticket.origin,), ticket.origin)
    title = _("This page has expired") if expired else _("One more step")
    return respond(request, "subscribe_finish.html.j2", title=title,
                   status=400 if expired else 200, noindex=True, action=action,
                   csrf_field=FIELD, csrf=ctx.csrf.issue(action), ticket_field=TICKET_FIELD,
                   ticket="" if expired else _tickets(request).issue(ticket),
                   email=ticket.email, too_fast=too_fast, expired=expired, back=back,
                   privacy_url=ctx.settings.web.privacy_url)


async def first_step(request: Request, name: str, form: FormData, site: str) -> Response:
    """The post from the allowed ``site``: answered with a page, nothing recorded or sent."""
    set_language(request, text(form, "lang"))  # the pasted form's language goes on here
    back = back_link(text(form, RETURN_FIELD), (site,), site)
    if honeypot_filled(form):
        return robot(request, form, back, f"trap field filled in a form from {site}")
    settings = web_context(request).settings
    sign_up, errors = check_sign_up(form, settings, translator(request))
    if sign_up is None:  # finish on this site's own form, which can go back there too
        return form_page(request, name, values=form_values(request, form), errors=errors,
                         status=400, return_url=back.url if back else None)
    ticket = Ticket(list_name=name, email=sign_up.email, name=sign_up.name, lang=sign_up.lang,
                    origin=site, return_url=back.url if back else None)
    return _button_page(request, ticket, too_fast=False)


async def finish(request: Request) -> Response:
    """POST from the one-button page (this site): the sign-up, if a person pressed it."""
    name = await run_in_threadpool(list_name, request)
    form = await read_form(request)
    check_forgery(request, form)
    verdict, ticket = _tickets(request).read(text(form, TICKET_FIELD), name)
    if ticket is None or verdict is Verdict.INVALID:
        raise HTTPException(400, BAD_TICKET)
    set_language(request, ticket.lang)
    if ticket.origin not in web_context(request).settings.web.allowed_origins:
        raise HTTPException(403, N_("Sign-ups from the site you came from are no longer "
                                    "accepted here."))
    if verdict is Verdict.EXPIRED:
        return _button_page(request, ticket, expired=True)
    if verdict is Verdict.TOO_FAST:
        log.info("sign-up for %s not taken: the button was pressed %s", request.url.path,
                 "before a person could have read the page")
        return _button_page(request, ticket, too_fast=True)
    back = back_link(ticket.return_url or "", (ticket.origin,), ticket.origin)
    return await accept(request, name, SignUp(ticket.email, ticket.name, ticket.lang),
                        source=f"form on {ticket.origin}", back=back)
