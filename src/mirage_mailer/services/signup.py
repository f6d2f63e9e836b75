"""Double opt-in sign-up: record a pending sign-up with its proof of consent, find whom a
confirmation link names, and confirm (the person's own POST, which lifts an earlier
unsubscription). The web's pages and the confirmation mail call these; they never touch the
store themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def sign_up(settings: Settings, signer: Signer, list_name: str, email: str, *,
            name: str | None, lang: str, source: str = "web",
            stores: StoreAccess | None = None) -> bool:
    """Record a pending sign-up with the consent text and version shown; True when a
    confirmation mail is due (False: already confirmed and receiving, nothing to send)."""
    web = settings.web
    with access(settings, stores).store() as store:
        return store.add_pending_subscriber(
            list_name, email, name=name, lang=lang, subject=signer.subject_id(email),
            consent_text=web.consent_text, consent_version=web.consent_version, source=source)


def _sign_up_language(store: PersonalData, list_name: str,
                      address: str | None) -> str | None:
    """The newsletter language the person chose when signing up to ``list_name``."""
    if address is None:
        return None
    rows = [row for row in store.export(address)["subscriptions"] if row["list"] == list_name]
    return str(rows[-1]["lang"]) if rows and rows[-1]["lang"] else None


@dataclass(frozen=True)
class SignUpTarget:
    """Whom a confirmation link names (None: erased or never signed up), in which language."""

    address: str | None
    lang: str | None


def confirmation_target(settings: Settings, list_name: str, subject: str,
                        stores: StoreAccess | None = None) -> SignUpTarget:
    """Reads only: a GET of the link changes nothing."""
    with access(settings, stores).store() as store:
        address = store.resolve_subject(subject)
        return SignUpTarget(address, _sign_up_language(store, list_name, address))


@dataclass(frozen=True)
class Confirmed:
    address: str
    lifted: bool  # an earlier unsubscription ended with this confirmation
    suppressed: bool  # still suppressed (e.g. a hashed erasure): they will not be mailed
    lang: str | None


def confirm(settings: Settings, list_name: str, subject: str,
            stores: StoreAccess | None = None) -> Confirmed | SignUpTarget:
    """Confirm the sign-up the link names; a ``SignUpTarget`` (with its page language) when
    there is no such sign-up."""
    with access(settings, stores).store() as store:
        address = store.resolve_subject(subject)
        lang = _sign_up_language(store, list_name, address)
        before = address is not None and store.is_suppressed(address)
        row = store.confirm_subscriber(list_name, subject)
        if row is None:
            return SignUpTarget(None, lang)
        after = store.is_suppressed(row["email"])
    return Confirmed(str(row["email"]), before and not after, after, lang)
