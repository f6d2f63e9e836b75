"""The double opt-in message: built from the page templates, sent through the one outbound
path (``services.outbound``: the same credentials and AUTH/TLS rules as ``send``).

It goes out after the response (a background task), so the page a visitor sees, and how long
it takes, is the same whether or not the address was already subscribed. Delivery problems
are logged for the operator; the visitor can simply send the form again.

It carries nothing the visitor typed but the address it goes to: anyone can post any address,
so a name from the form would be text of a stranger's making mailed from the project's domain
(``To: "URGENT: verify at https://evil.example" <victim@...>``, "Dear URGENT: ..."). ``To`` is
the bare ``<address>`` and the greeting is neutral; the name is stored with the sign-up and
greets the person in the newsletters they confirmed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import quote

from mirage_mailer.compose.message import address_header
from mirage_mailer.project.config import Settings
from mirage_mailer.services.outbound import send_one
from mirage_mailer.services.signup import confirmation_scope
from mirage_mailer.util.addresses import ascii_domain
from mirage_mailer.util.errors import MirageError
from mirage_mailer.util.headersafe import mailbox_header, text_header
from mirage_mailer.util.tokens import Signer
from mirage_mailer.web.i18n import SOURCE, translations
from mirage_mailer.web.pages import render_text

log = logging.getLogger(__name__)
# the transports take LF line endings; the stdlib's quoted-printable lines are as long as
# max_line_length, and RFC 2045 allows 76
_POLICY = SMTP.clone(linesep="\n", max_line_length=76)


def confirmation_link(signer: Signer, base_url: str, list_name: str, email: str,
                      requested_at: str) -> str:
    """The link for the sign-up recorded at ``requested_at`` (``sign_up``'s answer)."""
    scope = confirmation_scope(list_name, requested_at)
    return f"{base_url}/confirm/{quote(signer.make('confirm', scope, email))}"


def confirmation_message(settings: Settings, *, list_name: str, email: str, link: str,
                         lang: str = SOURCE) -> bytes:
    """multipart/alternative (text, HTML), UTF-8, from the project's sender to one address,
    in ``lang`` (a language with a catalog: the one chosen on the form, or the page's).

    The header block is made by ``headersafe`` (never by the stdlib's folder, which decodes
    encoded words in a visitor's name back into line breaks on Python before 3.11.10); the
    stdlib only lays out the two body parts, whose headers hold nothing from outside.
    """
    project = settings.project
    sender = settings.sender
    context: dict[str, Any] = {"site": project, "list_name": list_name, "link": link,
                               "consent_text": settings.web.consent_text}
    _ = translations(lang).gettext
    subject = _("Please confirm your subscription to the %(name)s newsletter") % {
        "name": project.name}
    # quoted-printable, as the newsletters: the stdlib picks 8bit for UTF-8 text, which needs
    # a relay with 8BITMIME and breaks the DKIM signature where a relay downgrades it
    body = EmailMessage(policy=_POLICY)
    body.set_content(render_text("mail/confirm.txt.j2", lang=lang, **context), charset="utf-8",
                     cte="quoted-printable")
    body.add_alternative(render_text("mail/confirm.html.j2", lang=lang, **context),
                         subtype="html", charset="utf-8", cte="quoted-printable")
    head = [
        mailbox_header("From", sender.from_name or None, sender.from_email),
        mailbox_header("To", None, email),  # no display name: see the module's docstring
        f"Content-Language: {lang}\n".encode("ascii"),
        text_header("Subject", subject),
        # a numeric zone: "GMT" is RFC 5322's obsolete syntax, never to be generated
        f"Date: {format_datetime(datetime.now(UTC))}\n".encode("ascii"),
        # ASCII only (RFC 5322 msg-id): an international domain in A-labels
        f"Message-ID: {make_msgid('confirm', domain=ascii_domain(sender.domain))}\n"
        .encode("ascii"),
    ]
    if sender.reply_to:
        head.append(address_header("Reply-To", sender.reply_to))
    head.append(b"Auto-Submitted: auto-generated\n")  # RFC 3834: no auto-replies to this
    return b"".join(head) + body.as_bytes()


async def send_confirmation(settings: Settings, signer: Signer, base_url: str, *,
                            list_name: str, email: str, requested_at: str,
                            lang: str = SOURCE) -> bool:
    """Deliver the confirmation message; True when the transport accepted it.

    Runs after the response went out, so nothing may escape: problems are logged.
    """
    try:
        return await _send(settings, signer, base_url, list_name=list_name, email=email,
                           requested_at=requested_at, lang=lang)
    except Exception:
        log.exception("confirmation message for list %s not sent", list_name)
        return False


async def _send(settings: Settings, signer: Signer, base_url: str, *, list_name: str,
                email: str, requested_at: str, lang: str) -> bool:
    link = confirmation_link(signer, base_url, list_name, email, requested_at)
    data = confirmation_message(settings, list_name=list_name, email=email, link=link,
                                lang=lang)
    try:
        sent = await send_one(settings, email, data)
    except MirageError as exc:  # half-set credentials, an unusable relay: the operator's log
        log.warning("confirmation message for list %s not sent: %s", list_name, exc)
        return False
    if not sent.accepted:
        log.warning("confirmation message for list %s %s: %s", list_name, sent.outcome,
                    sent.detail)
    return sent.accepted
