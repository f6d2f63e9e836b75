"""Per-language message skeletons, and per-recipient bytes by substitution.

Building an ``EmailMessage`` and calling ``as_bytes()`` costs milliseconds per message; here
the MIME structure, the static headers and the quoted-printable encoding of every static
chunk are computed once per language. Per recipient we only encode the few slot values and
join bytes: quoted-printable soft line breaks (``=\\n``) let encoded pieces be concatenated
without re-encoding the whole body, and boundaries contain ``=_`` which QP never emits.

With opens/clicks tracking on, a recipient also gets an open-pixel URL and one click URL per
distinct link target: one HMAC each (see ``tokens.ClickSigner``), no other per-recipient work.

``build_wire`` joins the same pieces already in SMTP DATA wire format (CRLF line ends, a dot
doubled at the start of a line, the final ``.`` line): every piece starts at a line start
(slot values follow a soft line break), so each static piece is converted once per language
and only the few per-recipient pieces per message, instead of the whole ~14 KB message
(measured: 16 µs of a 14 KB message's conversion, more in a running send; docs/design.md).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from random import getrandbits
from urllib.parse import quote

from mirage_mailer.compose.render import OPEN_SLOT, RenderedLanguage, click_slot
from mirage_mailer.compose.slots import FRAGMENT_PREFIX, field_slot, leftover_markers, split_slots
from mirage_mailer.compose.strings import strings_for
from mirage_mailer.project.config import Settings
from mirage_mailer.project.name_parts import first_name
from mirage_mailer.util.addresses import ascii_address, ascii_domain, parse_mailbox
from mirage_mailer.util.errors import InputError, Problem, display_path, shorten
from mirage_mailer.util.headersafe import mailbox_header, text_header
from mirage_mailer.util.tokens import Signer


@dataclass(frozen=True)
class Personal:
    """One recipient's values, as the message needs them."""

    email: str
    name: str | None
    list_name: str
    fields: Mapping[str, str]
    subject: str | None = None  # Signer.subject_id(email) when already known (the store has it)


_QP_LINE = 76  # RFC 2045 6.7 (5): an encoded line is at most 76 characters, "=" included


def _qp(text: str) -> bytes:
    """``text`` quoted-printable, its last line short enough for the soft break (``=``)
    that ``_Part`` puts after every piece: ``b2a_qp`` fills a line to 76, so a 76-character
    value or chunk end made a 77-character line, which RFC 2045 forbids."""
    data = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    start = data.rfind(b"\n") + 1
    if len(data) - start < _QP_LINE:
        return data
    cut = start + _QP_LINE - 1
    escape = data.rfind(b"=", cut - 2, cut)  # never split an =XX escape
    if escape >= 0:
        cut = escape
    return data[:cut] + b"=\n" + data[cut:]


def stuffed(piece: bytes) -> bytes:
    """``piece``, which starts at a line start and has LF line ends, as DATA wire bytes:
    CRLF, and a dot doubled at the start of each line (RFC 5321 section 4.5.2). A piece with
    a CR is not ours to convert (the caller falls back to the whole message)."""
    wire = piece.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
    return b"." + wire if wire[:1] == b"." else wire


def encode_header(name: str, value: str) -> bytes:
    """One unstructured header line (see ``headersafe``: never the stdlib's folder)."""
    return text_header(name, value)


def address_header(name: str, value: str) -> bytes:
    """A header holding ``Name <address>`` or ``address`` from the config (Reply-To)."""
    display, address, _bad = parse_mailbox(value)  # the config check reported any problem
    return mailbox_header(name, display or None, address)


class _Part:
    """A QP-encoded body with slots: static chunks pre-encoded, slot values encoded per call."""

    def __init__(self, text: str) -> None:
        chunks, self.names = split_slots(text)
        # a fragment's output is the template's own rendering (HTML already in the HTML part)
        self.raw = [name.startswith(FRAGMENT_PREFIX) for name in self.names]
        self.chunks = [_qp(c) for c in chunks]
        # the same chunks in wire format (None: a chunk holds a CR, the message is converted
        # whole); each one starts at a line start: the part's head or a soft line break
        self.wire_chunks = (None if any(b"\r" in c for c in self.chunks)
                            else [stuffed(c) for c in self.chunks])

    def encode(self, values: Mapping[str, str], escape_value: Callable[[str], str]) -> bytes:
        out = [self.chunks[0]]
        for name, raw, chunk in zip(self.names, self.raw, self.chunks[1:], strict=True):
            value = values.get(name, "")
            out.append(b"=\n")
            out.append(_qp(value if raw else escape_value(value)))
            out.append(b"=\n")
            out.append(chunk)
        return b"".join(out)

    def encode_wire(self, values: Mapping[str, str],
                    escape_value: Callable[[str], str]) -> bytes | None:
        """``encode`` in DATA wire format; None when a value holds a CR (never from a
        checked list row) or the static chunks do."""
        chunks = self.wire_chunks
        if chunks is None:
            return None
        out = [chunks[0]]
        for name, raw, chunk in zip(self.names, self.raw, chunks[1:], strict=True):
            text = values.get(name, "")
            value = _qp(text if raw else escape_value(text))
            if b"\r" in value:
                return None
            out.append(b"=\r\n")
            out.append(stuffed(value))
            out.append(b"=\r\n")
            out.append(chunk)
        return b"".join(out)


def _html_escape(value: str) -> str:
    return escape(value, quote=True)


def _plain(value: str) -> str:
    return value


def _refuse_leftovers(settings: Settings, rendered: RenderedLanguage) -> None:
    """The last guard (``render`` reports these with the template first): what is left of
    a marker in the static text would reach every message, so nothing is built."""
    for part in (rendered.text, rendered.html):
        left = leftover_markers(part, split_slots(part)[1])
        if left:
            raise InputError(Problem(
                display_path(settings.templates), None,
                f"the {rendered.lang} newsletter still holds the internal marker "
                f"'{shorten(left[0], 60)}', which would reach every message; nothing was sent",
                "print recipient fields as {{ recipient.x }}; see docs/guide/templates.md"))


class Skeleton:
    """Everything about one language's messages that does not depend on the recipient."""

    def __init__(self, settings: Settings, rendered: RenderedLanguage, issue_id: str) -> None:
        self.lang = rendered.lang
        self.issue_id = issue_id
        sender = settings.sender
        self.domain = ascii_domain(sender.domain)
        self.strings = strings_for(rendered.lang, settings.project.name)
        outer = f"=_mm_alt_{secrets.token_hex(8)}"
        related = f"=_mm_rel_{secrets.token_hex(8)}"
        head = [
            mailbox_header("From", sender.from_name or None, sender.from_email),
            encode_header("Subject", rendered.subject),
        ]
        if sender.reply_to:
            head.append(address_header("Reply-To", sender.reply_to))
        head.append(f"Content-Language: {rendered.lang}\n".encode("ascii"))  # RFC 3282
        head.append(b"MIME-Version: 1.0\n")
        head.append(f'Content-Type: multipart/alternative; boundary="{outer}"\n'.encode())
        self.static_headers = b"".join(head)
        self.text = _Part(rendered.text)
        self.html = _Part(rendered.html)
        _refuse_leftovers(settings, rendered)
        text_head = (f"--{outer}\nContent-Type: text/plain; charset=\"utf-8\"\n"
                     "Content-Transfer-Encoding: quoted-printable\n\n").encode()
        html_head = (b"Content-Type: text/html; charset=\"utf-8\"\n"
                     b"Content-Transfer-Encoding: quoted-printable\n\n")
        if rendered.images:
            # RFC 2387 3.1: ``type``, the root part's media type, must be given
            self.between = (f"\n--{outer}\nContent-Type: multipart/related; "
                            f"type=\"text/html\";\n boundary=\"{related}\"\n\n--{related}\n"
                            ).encode() + html_head
            images = []
            for image in rendered.images:
                data = base64.encodebytes(image.data)
                images.append(f"\n--{related}\n".encode() + image.part_headers() + b"\n"
                              + data)
            self.tail = b"".join(images) + f"\n--{related}--\n\n--{outer}--\n".encode()
        else:
            self.between = f"\n--{outer}\n".encode() + html_head
            self.tail = f"\n--{outer}--\n".encode()
        self.text_head = text_head
        # the same static pieces in DATA wire format, for ``MessageFactory.build_wire``
        statics = (self.static_headers, self.text_head, self.between, self.tail)
        self.wire: tuple[bytes, ...] | None = (
            None if any(b"\r" in piece for piece in statics)
            else tuple(stuffed(piece) for piece in statics))

    def constant_runs(self) -> list[bytes]:
        """The body bytes that are the same for every recipient, in order: the parts' static
        chunks with the MIME lines between them (``MessageFactory.build`` puts each
        recipient's slot values between these). For the DKIM signer's body hash, which
        checks every run against the body and never trusts it (``compose/dkim_body.py``)."""
        runs: list[bytes] = []
        run = self.text_head
        for chunks, after in ((self.text.chunks, self.between), (self.html.chunks, self.tail)):
            for n, chunk in enumerate(chunks):
                if n:  # a slot value comes between this chunk and the one before
                    runs.append(run)
                    run = b""
                run += chunk
            run += after
        return [*runs, run]


def person_values(person: Personal, strings: Mapping[str, str]) -> dict[str, str]:
    """The slot values that come from the list row (no links): name, greeting, columns."""
    # A list with a first-name column (Mailchimp's First Name, Brevo's FIRSTNAME) greets by
    # the first name ("Bonjour Marie,"); ``name`` stays the full one, for To: and
    # recipient.name.
    greet = first_name(person.fields) or person.name
    values = {
        "email": person.email,
        "name": person.name or "",
        "greeting": strings["dear"].format(name=greet) if greet else strings["dear_reader"],
    }
    for key, value in person.fields.items():
        values[field_slot(key)] = value
    return values


class MessageFactory:
    """Builds each recipient's message bytes from the language skeletons."""

    def __init__(self, settings: Settings, issue_id: str,
                 rendered: Mapping[str, RenderedLanguage], signer: Signer,
                 finish: Callable[[bytes], bytes] | None = None) -> None:
        self.settings = settings
        self.finish = finish  # applied to each final message (DKIM signing), or None
        self.issue_id = issue_id
        self.signer = signer
        self.rendered = rendered
        self.skeletons = {lang: Skeleton(settings, r, issue_id) for lang, r in rendered.items()}
        self._fragments = {lang: r.fragments for lang, r in rendered.items()
                           if r.fragments is not None}
        self.base_url = settings.tracking.base_url
        self.mailto = mailto_address(settings.project.contact or settings.sender.from_email)
        # Message-ID and List-Id are ASCII only (RFC 5322 msg-id, RFC 2919): A-labels
        self.domain = ascii_domain(settings.sender.domain)
        self._id_part = message_id_part(issue_id)
        self._list_ids: dict[str, bytes] = {}
        self._date: tuple[int, bytes] = (0, b"")
        self._clicks = signer.clicks(issue_id)
        # Per language: (slot name, target, "?u=<target percent-encoded>"), computed once.
        self._click_slots = {
            lang: tuple((click_slot(n), url, "?u=" + quote(url, safe=""))
                        for n, url in enumerate(r.click_urls, 1))
            for lang, r in rendered.items()}
        self._opens = {lang for lang, r in rendered.items() if r.open_pixel}

    def _list_id(self, list_name: str) -> bytes:
        if list_name not in self._list_ids:
            label = f"{self.settings.project.name} {list_name}".strip()
            ident = "".join(c if (c.isascii() and c.isalnum()) or c == "-" else "-"
                            for c in list_name.lower())
            # RFC 2919 ``phrase <id>``: the label is encoded like a display name.
            self._list_ids[list_name] = mailbox_header("List-Id", label or None,
                                                       f"{ident}.{self.domain}")
        return self._list_ids[list_name]

    def _date_header(self) -> bytes:
        now = int(time.time())
        if self._date[0] != now:
            stamp = format_datetime(datetime.fromtimestamp(now, UTC))
            self._date = (now, f"Date: {stamp}\n".encode())
        return self._date[1]

    def new_message_id(self) -> str:
        """Unique, not secret: 128 bits of ``random``'s generator (seeded from the system
        and again in each forked sending process), without a system call per message."""
        return f"<{getrandbits(128):032x}.{self._id_part}@{self.domain}>"

    def links(self, email: str) -> tuple[str, str, str | None]:
        """(mailto unsubscribe, https unsubscribe or '', view-online URL or None)."""
        return self._links(self.signer.subject_id(email))

    def _links(self, subject: str) -> tuple[str, str, str | None]:
        token = self.signer.make_for_subject("unsubscribe", self.issue_id, subject)
        mailto = f"mailto:{self.mailto}?subject=unsubscribe%20{token}"
        if not self.base_url:
            return mailto, "", None
        view = self.signer.make_for_subject("view", self.issue_id, subject)
        return mailto, f"{self.base_url}/u/{token}", f"{self.base_url}/v/{view}"

    def values_for(self, person: Personal, lang: str) -> dict[str, str]:
        """Slot values of one recipient (unescaped)."""
        subject = self.signer.subject_id(person.email)
        mailto, https, view = self._links(subject)
        values = self._values(person, self.skeletons[lang].strings, mailto, https, view)
        self._tracking(values, subject, lang)
        if lang in self._fragments:
            self._fragments[lang].fill(values)
        return values

    def _tracking(self, values: dict[str, str], subject: str, lang: str) -> None:
        """Open-pixel and click URLs, when the language's HTML has those slots."""
        if lang in self._opens:
            token = self.signer.make_for_subject("open", self.issue_id, subject)
            values[OPEN_SLOT] = f"{self.base_url}/o/{token}.gif"
        clicks = self._clicks
        for name, url, query in self._click_slots[lang]:
            values[name] = f"{self.base_url}/c/{clicks.token(subject, url)}{query}"

    def _values(self, person: Personal, strings: Mapping[str, str], mailto: str, https: str,
                view: str | None) -> dict[str, str]:
        values = person_values(person, strings)
        values["unsubscribe_url"] = https or mailto
        values["view_online_url"] = view or ""
        return values

    def _head(self, person: Personal, lang: str,
              message_id: str) -> tuple[Skeleton, list[bytes], dict[str, str]]:
        """One recipient's own header lines (LF) and slot values."""
        skeleton = self.skeletons[lang]
        subject = person.subject or self.signer.subject_id(person.email)
        mailto, https, view = self._links(subject)
        values = self._values(person, skeleton.strings, mailto, https, view)
        self._tracking(values, subject, lang)
        if lang in self._fragments:  # recipient logic in the templates (``fragments``)
            self._fragments[lang].fill(values)
        unsubscribe = f"<{https}>, <{mailto}>" if https else f"<{mailto}>"
        headers = [
            mailbox_header("To", person.name, person.email),
            self._date_header(),
            f"Message-ID: {message_id}\n".encode(),
            self._list_id(person.list_name),
            _fold_unsubscribe(unsubscribe),
        ]
        if https:
            headers.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\n")
        return skeleton, headers, values

    def build(self, person: Personal, lang: str, *, message_id: str | None = None) -> bytes:
        """The complete message for one recipient (LF line endings)."""
        skeleton, headers, values = self._head(person, lang,
                                               message_id or self.new_message_id())
        data = b"".join([
            skeleton.static_headers,
            *headers,
            b"\n",
            skeleton.text_head,
            skeleton.text.encode(values, _plain),
            skeleton.between,
            skeleton.html.encode(values, _html_escape),
            skeleton.tail,
        ])
        return self.finish(data) if self.finish is not None else data

    def build_wire(self, person: Personal, lang: str, *, message_id: str) -> bytes | None:
        """``build``'s message as SMTP sends it after DATA (CRLF, dot-stuffed, the final
        ``.`` line): byte for byte ``delivery.wire.wire_format`` of ``build``'s bytes. None
        where it cannot be joined from converted pieces (a CR anywhere), or where the final
        bytes still change (a ``finish``, DKIM): then ``build`` it, and convert it whole."""
        skeleton = self.skeletons[lang]
        statics = skeleton.wire
        if statics is None or self.finish is not None:
            return None
        skeleton, headers, values = self._head(person, lang, message_id)
        head = b"".join(headers)  # header lines never start with a dot
        text = skeleton.text.encode_wire(values, _plain)
        html = skeleton.html.encode_wire(values, _html_escape)
        if text is None or html is None or b"\r" in head:
            return None
        static_headers, text_head, between, tail = statics
        return b"".join([static_headers, head.replace(b"\n", b"\r\n"), b"\r\n", text_head,
                         text, between, html, tail, b".\r\n"])


_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_MAILTO_SAFE = "!$'*+-.=^_`{|}~"  # atext that RFC 6068 lets stand in a mailto addr-spec


def message_id_part(issue_id: str) -> str:
    """The issue id as dot-atom text for the Message-ID's left part (RFC 5322 3.6.4): no
    empty atom, so ``x.`` gives ``x`` and ``a..b`` gives ``a.b``. The 128 random bits before
    it keep each Message-ID unique; the issue id is only there for people reading logs."""
    atoms = [_NOT_ATEXT.sub("-", atom) for atom in issue_id.split(".") if atom]
    return ".".join(atoms) or "issue"


def mailto_address(value: str) -> str:
    """The address a mailto URI carries, pure ASCII (RFC 6068): the domain in A-labels, a
    non-ASCII local part as percent-encoded UTF-8; ``Name <addr>`` gives ``addr``."""
    address = ascii_address(parse_mailbox(value)[1])
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    return f"{quote(local, safe=_MAILTO_SAFE)}@{quote(ascii_domain(domain), safe='.-')}"


def _fold_unsubscribe(value: str) -> bytes:
    """List-Unsubscribe: one URI per folded line, so no line nears the 998 limit."""
    return ("List-Unsubscribe: " + ",\n ".join(value.split(", ")) + "\n").encode("utf-8")


def fill(text: str, values: Mapping[str, str], *, html: bool) -> str:
    """Substitute slots in decoded text (for previews): HTML-escaped when ``html``."""
    chunks, names = split_slots(text)
    esc = _html_escape if html else _plain
    out = [chunks[0]]
    for name, chunk in zip(names, chunks[1:], strict=True):
        value = values.get(name, "")
        out.append(value if name.startswith(FRAGMENT_PREFIX) else esc(value))
        out.append(chunk)
    return "".join(out)
