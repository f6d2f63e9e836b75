"""Never mailing someone again, whichever way they asked: the ``unsubscribe`` command, the
link in a message (one-click POST or the page's button), or a mail to the unsubscribe address
(``process-unsubscribes``, through ``unsubmail``). One suppression table serves them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mirage_mailer.project.config import Settings
from mirage_mailer.services.reporting import existing
from mirage_mailer.services.signing import existing_secret
from mirage_mailer.services.store_access import StoreAccess, access
from mirage_mailer.services.unsubmail import (
    ImapBox,
    ImapTarget,
    Mailbox,
    MaildirBox,
    Outcome,
    parse_imap_url,
    process,
)
from mirage_mailer.store.guard import READS, RECORDS, check_kept
from mirage_mailer.util.envnames import is_env_name, not_an_env_name
from mirage_mailer.util.errors import InputError, Problem
from mirage_mailer.util.tokens import Signer


def unsubscribe(settings: Settings, address: str, *, source: str = "cli",
                reason: str = "mirage-mailer unsubscribe",
                stores: StoreAccess | None = None) -> bool:
    """Suppress ``address`` for every list; False when it already was (idempotent)."""
    with access(settings, stores).store() as store:
        return store.suppress(address, source=source, reason=reason)


@dataclass(frozen=True)
class LinkTarget:
    """Who an unsubscribe link names: None when the subject is unknown (or erased)."""

    address: str | None
    lang: str | None  # the language the message was sent in, for the page
    already: bool = False


def link_target(settings: Settings, issue: str, subject: str,
                stores: StoreAccess | None = None) -> LinkTarget:
    """The address behind a genuine token of ``issue``, its message language, and whether it
    is already unsubscribed. Reads only."""
    with access(settings, stores).store() as store:
        address = store.resolve_subject(subject, issue)
        lang = store.recipient_lang(issue, subject)
        already = address is not None and store.is_suppressed(address)
    return LinkTarget(address, lang, already)


def existing_signer(settings: Settings) -> Signer | None:
    """The signing key, or None when no token was ever made (no key is created here); a
    lost key of a project that has sent is refused (exit 2): every token would look forged."""
    secret = existing_secret(settings)
    return None if secret is None else Signer(secret)


@dataclass(frozen=True)
class Mailboxes:
    """Where mailed requests arrive, checked before any settings or mail are read."""

    maildir: Path | None
    imap: ImapTarget | None
    password: str | None = field(repr=False)  # never shown, even in a traceback
    include_seen: bool = False


def mailboxes(*, maildir: Path | None, imap_url: str | None, password_env: str,
              include_seen: bool) -> Mailboxes:
    """The mailboxes as given; none at all, or IMAP without its password, is an
    ``InputError``."""
    if maildir is None and imap_url is None:
        raise InputError(Problem("process-unsubscribes", None, "no mailbox given",
                                 "add --maildir PATH or --imap imaps://user@host/INBOX"))
    if not is_env_name(password_env):
        raise InputError(not_an_env_name("--password-env", "MIRAGE_IMAP_PASSWORD"))
    target = parse_imap_url(imap_url) if imap_url else None
    password = os.environ.get(password_env) if target else None
    if target and not password:
        raise InputError(Problem("process-unsubscribes", None, f"{password_env} is not set",
                                 f"export {password_env}=<the IMAP password>"))
    return Mailboxes(maildir, target, password, include_seen)


def mailed_requests(settings: Settings, given: Mailboxes, *,
                    dry_run: bool) -> Iterator[Outcome]:
    """Each request found in the Maildir and/or the IMAP folder, handled (with ``dry_run``,
    only looked at; IMAP then opens read-only)."""
    boxes: list[Mailbox] = []
    if given.maildir is not None:
        boxes.append(MaildirBox(given.maildir, include_seen=given.include_seen))
    signer = existing_signer(settings)
    # in the words of a writer: what it takes from a lost store's mailbox is marked seen
    check_kept(settings.tracking.database, settings.state_dir, READS if dry_run else RECORDS)
    try:
        with existing(settings) as store:
            if given.imap is not None and given.password:
                boxes.append(ImapBox(given.imap, given.password,
                                     readonly=dry_run, include_seen=given.include_seen))
            for box in boxes:
                yield from process(box, signer, store, dry_run=dry_run)
    finally:
        for box in boxes:
            if isinstance(box, ImapBox):
                box.close()
