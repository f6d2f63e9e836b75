"""The double opt-in message: built from the page templates, sent through the transport.

It goes out after the response (a background task), so the page a visitor sees, and how long
it takes, is the same whether or not the address was already subscribed. Delivery problems
are logged for the operator; the visitor can simply send the form again.
"""

from __future__ import annotations

import logging
import os
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from urllib.parse import quote

from mirage_mailer.config import Settings, Transport
from mirage_mailer.delivery import (
    DeliveryStats,
    Envelope,
    Outcome,
    Result,
    deliver_all,
    unclaimed,
)
from mirage_mailer.errors import MirageError
from mirage_mailer.tokens import Signer
from mirage_mailer.web.pages import render_text

log = logging.getLogger(__name__)
_POLICY = SMTP.clone(linesep="\n")  # the transports take LF line endings


def confirmation_link(signer: Signer, base_url: str, list_name: str, email: str) -> str:
    return f"{base_url}/confirm/{quote(signer.make('confirm', list_name, email))}"


def confirmation_message(settings: Settings, *, list_name: str, email: str, name: str | None,
                         link: str) -> bytes:
    """multipart/alternative (text, HTML), UTF-8, from the project's sender to one address."""
    project = settings.project
    sender = settings.sender
    context = {"site": project, "list_name": list_name, "link": link, "name": name or "",
               "consent_text": settings.web.consent_text}
    message = EmailMessage(policy=_POLICY)
    message["From"] = Address(sender.from_name, addr_spec=sender.from_email)
    message["To"] = Address(name or "", addr_spec=email)
    message["Subject"] = f"Please confirm your subscription to the {project.name} newsletter"
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid("confirm", domain=sender.domain)
    if sender.reply_to:
        message["Reply-To"] = sender.reply_to
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(render_text("mail/confirm.txt.j2", **context), charset="utf-8")
    message.add_alternative(render_text("mail/confirm.html.j2", **context), subtype="html",
                            charset="utf-8")
    return message.as_bytes()


def _credentials(transport: Transport) -> tuple[str, str] | None:
    user = os.environ.get(transport.username_env) if transport.username_env else None
    password = os.environ.get(transport.password_env) if transport.password_env else None
    return (user, password) if user and password else None


async def send_confirmation(settings: Settings, signer: Signer, base_url: str, *,
                            list_name: str, email: str, name: str | None) -> bool:
    """Deliver the confirmation message; True when the transport accepted it.

    Runs after the response went out, so nothing may escape: problems are logged.
    """
    try:
        return await _send(settings, signer, base_url, list_name=list_name, email=email,
                           name=name)
    except Exception:
        log.exception("confirmation message for list %s not sent", list_name)
        return False


async def _send(settings: Settings, signer: Signer, base_url: str, *, list_name: str,
                email: str, name: str | None) -> bool:
    link = confirmation_link(signer, base_url, list_name, email)
    data = confirmation_message(settings, list_name=list_name, email=email, name=name,
                                link=link)
    envelope = Envelope(0, settings.sender.return_path, email, data)
    results: list[Result] = []
    try:
        stats: DeliveryStats = await deliver_all(
            settings.transport, iter([envelope]), on_attempt=unclaimed,
            on_result=results.append, credentials=_credentials(settings.transport))
    except MirageError as exc:
        log.warning("confirmation message for list %s not sent: %s", list_name, exc)
        return False
    final = [r for r in results if r.final]
    if stats.sent == 1:
        return True
    detail = f"{final[-1].code} {final[-1].response}" if final else "no answer"
    outcome = final[-1].outcome if final else Outcome.DEFERRED
    log.warning("confirmation message for list %s %s: %s", list_name, outcome.value, detail)
    return False
