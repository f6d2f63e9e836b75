"""Unsubscribe links: RFC 8058 one-click POST, and a confirmation page for people.

Mail providers POST ``List-Unsubscribe=One-Click`` to the https URL of the List-Unsubscribe
header and expect the address to be gone at once: no cookies, no redirects, a plain 200. A
GET only shows a page with one button, because link scanners open every link in a message.
The signed token is the capability; the providers' POST carries no CSRF field and needs none.
Whom a token names and the suppression itself are ``services.unsubscribing``'s, shared with the
``unsubscribe`` command and mailed requests.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from mirage_mailer.services.held_unsubscribes import Held, HeldFull, hold
from mirage_mailer.services.unsubscribing import LinkTarget, link_target
from mirage_mailer.services.unsubscribing import unsubscribe as suppress
from mirage_mailer.store.errors import StoreError
from mirage_mailer.web.context import web_context
from mirage_mailer.web.csrf import FIELD
from mirage_mailer.web.forms import check_forgery, read_form, text
from mirage_mailer.web.i18n import N_, set_language
from mirage_mailer.web.respond import respond, translator
from mirage_mailer.web.routing import page_and_form

log = logging.getLogger(__name__)

BAD_LINK = N_("This unsubscribe link is not valid. Copy the whole link from the message, or "
              "use the unsubscribe link of a more recent message.")
NOT_RECORDED = N_("Your unsubscribe could not be recorded just now, so nothing has changed "
                   "yet. Please use the link again in a few minutes.")
UNKNOWN = N_("This unsubscribe link does not belong to a message we sent, or the address was "
             "erased since.")


def mask(address: str) -> str:
    """``m…@example.org``: enough to recognise one's address, not to harvest it."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}…@{domain}" if local else address


def _resolve(request: Request) -> tuple[str, str, LinkTarget]:
    """(issue, address, target) behind the token, or a 400 page (tampered, wrong purpose,
    unknown). The page speaks the language of the message the link came in (the recipient's).
    """
    ctx = web_context(request)
    found = ctx.verify("unsubscribe", request.path_params["token"])
    if found is None:
        raise HTTPException(400, BAD_LINK)
    issue, subject = found
    target = link_target(ctx.settings, issue, subject, ctx.stores)
    set_language(request, target.lang)
    if target.address is None:
        raise HTTPException(400, UNKNOWN)
    return issue, target.address, target


def show(request: Request) -> Response:
    """GET: a page with one button; changes nothing."""
    _issue, address, target = _resolve(request)
    ctx = web_context(request)
    action = request.url.path
    _ = translator(request)
    return respond(request, "unsubscribe.html.j2", title=_("Unsubscribe"), noindex=True,
                   masked=mask(address), already=target.already, action=action,
                   csrf_field=FIELD, csrf=ctx.csrf.issue(action))


def _suppress(request: Request, address: str, source: str, issue: str) -> None:
    ctx = web_context(request)
    suppress(ctx.settings, address, source=source, reason=f"link in issue {issue}",
             stores=ctx.stores)


async def unsubscribe(request: Request) -> Response:
    """POST: one-click (RFC 8058) or the page's button; idempotent.

    A store that cannot answer now (another process's lock, a server out of reach) must not
    lose it, as providers do not retry: it is held on disk (``services.held_unsubscribes``)
    and answered 202 with a page that says so. Only if even that fails is it a 503 page
    saying nothing was recorded (``app.store_unavailable``)."""
    request.state.unavailable_detail = NOT_RECORDED
    found = web_context(request).verify("unsubscribe", request.path_params["token"])
    if found is None:
        raise HTTPException(400, BAD_LINK)
    busy: StoreError | None = None
    try:
        issue, address, _target = await run_in_threadpool(_resolve, request)
    except StoreError as exc:
        busy = exc
    form = await read_form(request)
    if text(form, "List-Unsubscribe") == "One-Click":
        source = "one-click"
    else:
        check_forgery(request, form)
        source = "web"
    if busy is None:
        try:
            await run_in_threadpool(_suppress, request, address, source, issue)
        except StoreError as exc:
            busy = exc
    _ = translator(request)
    if busy is not None:
        await run_in_threadpool(_hold, request, busy, Held(*found, source, datetime.now(UTC)))
        return respond(request, "unsubscribe_held.html.j2", status=202, noindex=True,
                       title=_("Your unsubscribe is received"))
    return respond(request, "unsubscribed.html.j2", title=_("You are unsubscribed"), noindex=True,
                   masked=mask(address))


def _hold(request: Request, busy: StoreError, held: Held) -> None:
    """Keep the unsubscribe for later, or raise ``busy`` (a 503) if it cannot be kept."""
    try:
        hold(web_context(request).settings.state_dir, held)
    except (OSError, HeldFull) as exc:
        log.error("cannot hold an unsubscribe: %s", exc)
        raise busy from None
    log.warning("unsubscribe held until the store answers (%s)", busy)


ROUTES: list[BaseRoute] = [
    page_and_form("/u/{token}", show=show, post=unsubscribe),
]
