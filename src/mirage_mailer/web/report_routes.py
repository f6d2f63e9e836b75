"""``GET /report/<issue-id>``: the HTML delivery report behind HTTP basic auth, and
``GET /report/period/<START..END>``: the figures of a reporting period (``report --period``).

The figures and the page come from ``services.reporting`` (the same page as
``report --format html``); this module owns only the password check and the HTTP answer.

The user is ``web.report_user``; the password is checked against a PBKDF2 hash read, at each
request, from the environment variable named by ``web.report_password_hash_env`` (made with
``mirage-mailer hash-password``). Without that variable the report is disabled (503): no page
of the server shows subscriber data without a password. Serve it over https only (behind the
reverse proxy): basic auth sends the password with every request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import re
from html import escape
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mirage_mailer.services.htmlreport import PAGE_CSP, page
from mirage_mailer.services.reporting import check_memory, known_issue_report, period_page
from mirage_mailer.store.errors import StoreError
from mirage_mailer.util.errors import InputError
from mirage_mailer.util.passwords import BadHash, verify_password
from mirage_mailer.web.context import WebContext, web_context
from mirage_mailer.web.i18n import N_

log = logging.getLogger(__name__)

REALM = "mirage-mailer report"
_ISSUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": PAGE_CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}


def _page(status: int, title: str, text: str, *, extra: dict[str, str] | None = None) -> Response:
    body = page(title, f"<main><section><h1>{title}</h1><p>{text}</p></section></main>")
    return Response(body, status_code=status, media_type="text/html; charset=utf-8",
                    headers={**_HEADERS, **(extra or {})})


def _credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _unauthorised() -> Response:
    return _page(401, "Password needed",
                 "The delivery report needs the report user name and password.",
                 extra={"WWW-Authenticate": f'Basic realm="{REALM}"'})


TOO_MANY_PASSWORDS = N_("Too many wrong passwords were sent from your network. Please wait a "
                        "few minutes, then try again.")


def authorised(request: Request, ctx: WebContext) -> Response | None:
    """None when the request may see reports, else the response to send (401 or 503); a
    client over its password checks gets a 429 page in its language (``HTTPException``)."""
    web = ctx.settings.web
    encoded = os.environ.get(web.report_password_hash_env) if web.report_password_hash_env \
        else None
    if not encoded:
        log.info("report requested but %s is not set", web.report_password_hash_env)
        return _page(503, "Report disabled",
                     "The delivery report is disabled on this server: no report password is "
                     "configured. Its administrator can enable it with "
                     "'mirage-mailer hash-password'.")
    given = _credentials(request)
    if given is None:
        return _unauthorised()
    user, password = given
    gate = ctx.report_gate
    if gate.remembered(encoded, user, password):
        return None
    host = request.client.host if request.client is not None else "unknown"
    wait = gate.attempt(host)
    if wait:
        raise HTTPException(429, TOO_MANY_PASSWORDS, headers={"Retry-After": str(wait)})
    try:
        password_ok = verify_password(password, encoded)  # always run: same time for any user
    except BadHash as exc:
        log.error("%s is not a usable password hash: %s", web.report_password_hash_env, exc)
        return _page(503, "Report disabled", "The delivery report is disabled on this "
                     "server: its password hash is malformed.")
    user_ok = hmac.compare_digest(user.encode("utf-8"), web.report_user.encode("utf-8"))
    if not (user_ok and password_ok):
        return _unauthorised()
    gate.right(host, encoded, user, password)
    return None


def _lost_store(ctx: WebContext) -> Response | None:
    """A project that has sent but lost its store: the page ``report`` refuses with (exit 2
    there), not zero counts that would read as "nobody got it" when everyone did. A file
    store only: asking a PostgreSQL server would cost each page a login of its own (the
    pages use their thread's kept connection), and a server does not lose its tables as a
    file goes missing."""
    if not isinstance(ctx.settings.tracking.database, Path):
        return None
    try:
        check_memory(ctx.settings)
    except StoreError as exc:
        log.warning("report page refused: %s", exc)
        problem = exc.problems[0]
        hint = f" ({escape(problem.hint)})" if problem.hint else ""
        return _page(503, "Tracking database lost", escape(problem.message) + hint)
    return None


def report(request: Request) -> Response:
    ctx = web_context(request)
    refused = authorised(request, ctx) or _lost_store(ctx)
    if refused is not None:
        return refused
    issue = request.path_params["issue_id"]
    if not _ISSUE_ID.match(issue):
        return _page(404, "No such issue", "There is no issue with that name.")
    body = known_issue_report(ctx.settings, issue, ctx.stores)
    if body is None:
        return _page(404, "No such issue", "There is no issue with that name.")
    return Response(body, media_type="text/html; charset=utf-8", headers=_HEADERS)


def period(request: Request) -> Response:
    """``/report/period/2021-01-01..2021-12-31``: the figures of ``report --period``."""
    ctx = web_context(request)
    refused = authorised(request, ctx) or _lost_store(ctx)
    if refused is not None:
        return refused
    try:
        body = period_page(ctx.settings, request.path_params["period"], ctx.stores)
    except InputError as exc:
        return _page(400, "Not a period", escape(exc.problems[0].message) + ": write it as "
                     "/report/period/2021-01-01..2021-12-31 (UTC days, both included).")
    return Response(body, media_type="text/html; charset=utf-8", headers=_HEADERS)


ROUTES: list[BaseRoute] = [
    Route("/report/period/{period}", period, methods=["GET"], name="report_period"),
    Route("/report/{issue_id}", report, methods=["GET"], name="report"),
]
