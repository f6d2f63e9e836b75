"""Double opt-in sign-up: record a pending sign-up with its proof of consent, find whom a
confirmation link names, and confirm (the person's own POST, which lifts an earlier
unsubscription). The web's pages and the confirmation mail call these; they never touch the
store themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mirage_mailer.project.config import Settings
from mirage_mailer.services.store_access import StoreAccess, access
from mirage_mailer.store import PersonalData
from mirage_mailer.util.errors import InputError, Problem, display_path
from mirage_mailer.util.tokens import Signer


def require_privacy_notice(settings: Settings) -> None:
    """Sign-up on, no ``web.privacy_url``: an ``InputError`` naming mirage.yaml's line.

    GDPR art. 13 asks for the privacy information at the moment an address is collected, so
    the forms link to the notice; without one, sign-up does not start at all."""
    web = settings.web
    if not web.signup or web.privacy_url:
        return
    line = settings.line_of.get("web") or 1
    raise InputError(Problem(
        display_path(settings.path), line,
        "sign-up is on (web.signup) but web.privacy_url is not set: the sign-up forms must "
        "link to your privacy notice (GDPR art. 13)",
        "add 'privacy_url: https://...' under 'web:' with the address of your privacy notice, "
        "or 'signup: false' to serve without sign-up"))


STAMP = " "  # between the list and the sign-up's time in a confirmation token's scope


def confirmation_scope(list_name: str, requested_at: str) -> str:
    """What a confirmation token signs: the list, and the time of the sign-up it is mailed
    for. The link is otherwise the same for every sign-up of one address, so one seen once
    (a forwarded mail) would confirm a later sign-up that somebody else posted."""
    return f"{list_name}{STAMP}{requested_at}"


def confirmation_list(scope: str) -> tuple[str, str | None]:
    """(list, time of the sign-up) of a confirmation token's scope; no time in the links
    mailed before they carried it."""
    list_name, stamped, requested_at = scope.partition(STAMP)
    return list_name, requested_at if stamped else None


def sign_up(settings: Settings, signer: Signer, list_name: str, email: str, *,
            name: str | None, lang: str, source: str = "web",
            stores: StoreAccess | None = None) -> str | None:
    """Record a pending sign-up with the consent text and version shown; the time it was
    recorded (for ``confirmation_scope``) when a confirmation mail is due, None when not
    (already confirmed and receiving, or asked a moment ago)."""
    web = settings.web
    with access(settings, stores).store() as store:
        if not store.add_pending_subscriber(
                list_name, email, name=name, lang=lang, subject=signer.subject_id(email),
                consent_text=web.consent_text, consent_version=web.consent_version,
                source=source):
            return None
        row = _sign_up_row(store, list_name, email)
    return None if row is None else str(row["requested_at"])


def _sign_up_row(store: PersonalData, list_name: str,
                 address: str | None) -> dict[str, Any] | None:
    """The sign-up of ``address`` to ``list_name`` (None: there is none)."""
    if address is None:
        return None
    rows = [row for row in store.export(address)["subscriptions"] if row["list"] == list_name]
    return rows[-1] if rows else None


def _language(row: dict[str, Any] | None) -> str | None:
    """The newsletter language the person chose when signing up."""
    return str(row["lang"]) if row is not None and row["lang"] else None


def _may_confirm(row: dict[str, Any] | None, suppressed: bool, requested_at: str | None) -> bool:
    """Whether a link for the sign-up made at ``requested_at`` may confirm ``row``. Confirming
    the pending sign-up of an address that unsubscribed (or was erased) lifts that: only the
    link mailed for this very sign-up may, never one mailed for an earlier one."""
    if row is None or row["status"] != "pending" or not suppressed:
        return True
    return requested_at is not None and row["requested_at"] == requested_at


@dataclass(frozen=True)
class SignUpTarget:
    """Whom a confirmation link names (None: erased or never signed up), in which language."""

    address: str | None
    lang: str | None
    name: str | None = None  # the name the sign-up was made with (a stranger may have typed it)


def confirmation_target(settings: Settings, list_name: str, subject: str,
                        stores: StoreAccess | None = None, *,
                        requested_at: str | None = None) -> SignUpTarget:
    """Reads only: a GET of the link changes nothing. No address for a link that may not
    confirm the sign-up waiting now (``_may_confirm``)."""
    with access(settings, stores).store() as store:
        address = store.resolve_subject(subject)
        row = _sign_up_row(store, list_name, address)
        if address is not None and not _may_confirm(row, store.is_suppressed(address),
                                                    requested_at):
            address = None
        name = str(row["name"]) if row is not None and row["name"] else None
        return SignUpTarget(address, _language(row), name)


@dataclass(frozen=True)
class Confirmed:
    address: str
    lifted: bool  # an earlier unsubscription ended with this confirmation
    suppressed: bool  # still suppressed (e.g. a hashed erasure): they will not be mailed
    lang: str | None


def confirm(settings: Settings, list_name: str, subject: str,
            stores: StoreAccess | None = None, *,
            requested_at: str | None = None, name_shown: str | None = None,
            without_name: bool = False) -> Confirmed | SignUpTarget:
    """Confirm the sign-up the link (mailed for the sign-up made at ``requested_at``) names;
    a ``SignUpTarget`` (with its page language) when there is no such sign-up, or when the
    link may not confirm it (``_may_confirm``). The name is kept only as the person saw it
    and chose it (``SubscriberStore.confirm_subscriber``)."""
    with access(settings, stores).store() as store:
        address = store.resolve_subject(subject)
        found = _sign_up_row(store, list_name, address)
        lang = _language(found)
        before = address is not None and store.is_suppressed(address)
        if not _may_confirm(found, before, requested_at):
            return SignUpTarget(None, lang)
        row = store.confirm_subscriber(list_name, subject, name_shown=name_shown,
                                       without_name=without_name)
        if row is None:
            return SignUpTarget(None, lang)
        after = store.is_suppressed(row["email"])
    return Confirmed(str(row["email"]), before and not after, after, lang)
