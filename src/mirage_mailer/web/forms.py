"""Reading a posted form within the site's limits, and refusing forged ones."""

from __future__ import annotations

from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from mirage_mailer.web.context import web_context
from mirage_mailer.web.csrf import FIELD, cross_site
from mirage_mailer.web.i18n import N_

MAX_FIELDS = 16  # our forms have up to eight; anything more is not one of ours
URLENCODED = b"application/x-www-form-urlencoded"
MULTIPART = b"multipart/form-data"
UTF8 = (b"utf-8", b"utf8")
NOT_UTF8 = N_("The form is not valid UTF-8.")
NOT_OURS = N_("This form cannot be read: it is malformed, or it holds more fields, or files, "
              "than a form of this site sends. Reload the page and send the form again.")


async def read_form(request: Request) -> FormData:
    """The form, urlencoded or multipart, without files; a malformed body is a 400, and so is
    one that is not UTF-8 (Starlette would read such bytes as Latin-1, or as U+FFFD where they
    were percent-encoded, and a mangled address would be stored and mailed)."""
    limit = web_context(request).settings.web.max_body_bytes
    media, options = parse_options_header(request.headers.get("content-type", ""))
    try:
        if media == URLENCODED:  # read as UTF-8 whatever charset it names; Guard bounds it
            return _urlencoded(await request.body())
        if media == MULTIPART:
            body = await request.body()
            if not body.isascii() and options.get(b"charset", b"utf-8").lower() not in UTF8:
                raise HTTPException(400, NOT_UTF8)  # Starlette would decode that charset
            _check_multipart(body, options.get(b"boundary", b""))
        return await _parsed(request, limit)
    except UnicodeDecodeError:
        raise HTTPException(400, NOT_UTF8) from None


async def _parsed(request: Request, limit: int) -> FormData:
    """Starlette's reading, its 400s in our words: its own ("Too many files. Maximum number
    of files is 0.") are English text that no catalog translates."""
    try:
        return await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=limit)
    except HTTPException as exc:
        if exc.status_code != 400:
            raise  # 413 from the body limit
        raise HTTPException(400, NOT_OURS) from None


def _urlencoded(body: bytes) -> FormData:
    """The fields of a urlencoded body: raw bytes and percent-escapes both strictly UTF-8."""
    try:
        fields: list[tuple[str, str | UploadFile]] = [*parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, errors="strict",
            max_num_fields=MAX_FIELDS)]
    except ValueError as exc:  # UnicodeDecodeError goes up to read_form
        if isinstance(exc, UnicodeDecodeError):
            raise
        raise HTTPException(400, NOT_OURS) from None
    return FormData(fields)


def _check_multipart(body: bytes, boundary: bytes) -> None:
    """Raise UnicodeDecodeError when a part's headers (its field name) or a field's value is
    not UTF-8; the parts are those python-multipart finds for Starlette too, so both readings
    agree. Anything malformed is left to Starlette's parser, which answers it with a 400."""
    header = bytearray()
    data = bytearray()
    is_file = False

    def on_header_value(chunk: bytes, start: int, end: int) -> None:
        header.extend(chunk[start:end])

    def on_header_end() -> None:
        nonlocal is_file
        value = bytes(header)
        value.decode("utf-8")
        is_file = is_file or b"filename" in parse_options_header(value)[1]
        header.clear()

    def on_part_data(chunk: bytes, start: int, end: int) -> None:
        data.extend(chunk[start:end])

    def on_part_end() -> None:
        nonlocal is_file
        if not is_file:  # a file part is refused by max_files=0 anyway
            bytes(data).decode("utf-8")
        data.clear()
        is_file = False

    if not boundary:
        return
    parser = MultipartParser(boundary, {
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError:
        return


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
