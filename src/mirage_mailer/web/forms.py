"""Reading a posted form within the site's limits, and refusing forged ones."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from mirage_mailer.web.context import web_context
from mirage_mailer.web.csrf import FIELD, cross_site
from mirage_mailer.web.i18n import N_

MAX_FIELDS = 16  # our forms have up to eight; anything more is not one of ours


async def read_form(request: Request) -> FormData:
    """The form, urlencoded or multipart, without files; a malformed body is a 400."""
    limit = web_context(request).settings.web.max_body_bytes
    try:
        return await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=limit)
    except UnicodeDecodeError:
        raise HTTPException(400, N_("The form is not valid UTF-8.")) from None


def text(form: FormData, name: str) -> str:
    """A text field's value; missing fields and file parts count as empty."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def check_forgery(request: Request, form: FormData) -> None:
    """403 unless the form came from this site recently (CSRF field, Origin, Sec-Fetch-Site);
    400 for a field no form of ours could have carried (not ASCII)."""
    ctx = web_context(request)
    if cross_site(request, ctx.settings.tracking.base_url):
        raise HTTPException(403, N_("The form was sent from another site. Open this page "
                                    "here and send the form again."))
    field = text(form, FIELD)
    if not field.isascii():  # ours are ASCII: a malformed request, not a forged one
        raise HTTPException(400, N_("The form's security field is not valid. Reload the page "
                                    "and send the form again."))
    problem = ctx.csrf.problem(field, request.url.path)
    if problem is not None:
        raise HTTPException(403, problem)


# A field people never see and robots fill in: hidden off-screen (not display:none, which
# robots skip), out of the tab order, hidden from screen readers, never autofilled.
HONEYPOT = "website"


def honeypot_filled(form: FormData) -> bool:
    """True when the trap field has a value: a robot's post, answered politely, kept nowhere."""
    return bool(text(form, HONEYPOT).strip())
