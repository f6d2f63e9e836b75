"""``process-bounces``: read the bounce mailbox, find whom each bounce or complaint is about,
record it once, and suppress the address when it calls for that.

Whom: the signed VERP token first, on whatever address it sits (``bounces.address`` may have
changed since the message was sent); a token on the current base that fails its check, or a
malformed one there, is forged, and the mail is counted as unmatched, whatever else it says
(one on another address counts only when it verifies); without one, the
original Message-ID, one we sent to the failed address the DSN names (a complaint: the
Message-ID alone). Never the address alone: anyone can forge a DSN naming a reader. A row
whose reader was erased with ``forget`` holds only a hash of the address, which the token's
MAC cannot be checked against: the token is checked against each address the mail names that
has that hash, and such a mail is reported as about an erased reader, never as forged (which
would tell the operator someone forges bounces); nothing is recorded about the person. A hard
bounce (5.x.x) and a complaint suppress at once; soft bounces (4.x.x) after
``bounces.soft_limit`` of them within ``bounces.soft_window_days``. Delay warnings and auto-replies
never count.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from mirage_mailer.project.bounce_config import BounceConfig
from mirage_mailer.project.config import Settings
from mirage_mailer.services.bounce_mailbox import BounceBox, ImapBounces, MaildirBounces
from mirage_mailer.services.bounce_parse import Failure, Parsed, parse
from mirage_mailer.services.signing import existing_secret
from mirage_mailer.services.verp import Verp, VerpToken, verp_for
from mirage_mailer.store import (
    BounceRow,
    BounceStore,
    email_key,
    hashed_key,
    is_hashed,
    open_store,
)
from mirage_mailer.store.guard import RECORDS, check_kept, check_memory
from mirage_mailer.util.errors import InputError, Problem, display_path
from mirage_mailer.util.locks import Lock

# Every status a mail can end in, in the order the summary names them.
STATUSES = ("hard", "soft", "complaint", "already", "unmatched", "delay",
            "auto-reply", "ignored", "unreadable")
_COUNTED = {"hard": "bounced", "soft": "soft-bounced", "complaint": "complained"}
_FORGED = "its VERP token is forged (altered, or not ours); ignored"
_ERASED = "matches a reader erased with forget; ignored"
_ERASED_UNCHECKED = ("its VERP token names a reader erased with forget, and the mail names no "
                     "address to check it against; ignored")
# Something shaped like an address in a mail's text: the candidates a token of an erased
# reader is checked against (the failed address a report names, the returned To: header).
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"'@]+@[^\s<>()\[\],;:\"'@]+")
_MAX_CANDIDATES = 1_000


@dataclass(frozen=True)
class BounceOutcome:
    ref: str
    status: str
    detail: str
    issue: str | None = None
    email: str | None = None
    suppressed: bool = False
    note: str | None = None


@dataclass
class BounceRun:
    outcomes: list[BounceOutcome] = field(default_factory=list)
    dry_run: bool = False

    @property
    def counts(self) -> Counter[str]:
        return Counter(o.status for o in self.outcomes)

    @property
    def suppressed(self) -> int:
        return sum(1 for o in self.outcomes if o.suppressed)


def _config(settings: Settings) -> BounceConfig:
    config = settings.bounces
    if config is None or not config.mailbox_set:
        raise InputError(Problem(display_path(settings.path), settings.line_of.get("bounces"),
                                 "no bounce mailbox configured",
                                 "set bounces.mailbox to a Maildir folder or "
                                 "imaps://host/FOLDER (docs/guide/bounces.md)"))
    return config


def open_box(settings: Settings, *, dry_run: bool) -> BounceBox:
    """The configured mailbox, opened (IMAP: logged in, folder selected)."""
    config = _config(settings)
    if config.maildir is not None:
        return MaildirBounces(config.maildir, config.processed)
    assert config.imap is not None and config.username_env and config.password_env
    values = {}
    for key, name in (("username_env", config.username_env),
                      ("password_env", config.password_env)):
        value = os.environ.get(name)
        if not value:
            raise InputError(Problem(display_path(settings.path),
                                     settings.line_of.get(f"bounces.{key}"),
                                     f"bounces.{key} names {name}, which is not set",
                                     f"export {name}=... before running"))
        values[key] = value
    return ImapBounces(config.imap, config, user=values["username_env"],
                       password=values["password_env"], readonly=dry_run)


def _detail(parsed: Parsed, failure: Failure | None) -> str:
    if parsed.category == "complaint":
        return parsed.reason
    if failure is None:
        return parsed.reason
    words = [w for w in (failure.status, failure.diagnostic) if w]
    return "; ".join(words) or parsed.reason


class Judge:
    """Decides one parsed mail against the store (and records it unless a dry run)."""

    def __init__(self, store: BounceStore, verp: Verp | None, config: BounceConfig,
                 dry_run: bool) -> None:
        self.store, self.verp, self.config, self.dry_run = store, verp, config, dry_run
        # A dry run records nothing, so it remembers here what the real run would have
        # recorded by now: the mails it counted, the addresses it suppressed, soft bounces.
        self._keys: set[str] = set()
        self._suppressing: set[str] = set()
        self._soft: Counter[str] = Counter()

    def _verp_row(self, parsed: Parsed) -> tuple[BounceRow | None, str | None]:
        """(row of a genuine token, None), or (None, why no row: the detail of an unmatched
        mail), or (None, None) when the mail has no token."""
        if self.verp is None:
            return None, None
        # on any address: a bounce of a message sent before bounces.address changed comes
        # back to the earlier base, and its token is as genuine; only one on the current
        # base that fails makes the mail forged (elsewhere it may be anybody's address)
        tokens = self.verp.find_anywhere(parsed.text)
        erased: str | None = None
        for token in tokens:
            row = self.store.verp_row(token.row_id)
            if row is None:
                continue
            if is_hashed(row.email):  # forgotten: checked against the addresses named
                verdict = _erased_check(self.verp, token, row, parsed)
                if verdict is True:
                    erased = _ERASED
                elif verdict is None and erased is None and token.here:
                    erased = _ERASED_UNCHECKED
            elif self.verp.genuine(token, row.issue, row.email):
                return row, None
        if erased is not None:
            return None, erased
        forged = any(t.here for t in tokens) or self.verp.malformed(parsed.text)
        return None, _FORGED if forged else None

    def judge(self, ref: str, parsed: Parsed) -> BounceOutcome:
        if parsed.category in ("unreadable", "too-large"):
            return BounceOutcome(ref, "unreadable", parsed.reason)
        if parsed.category in ("delay", "auto-reply", "other"):
            status = parsed.category if parsed.category != "other" else "ignored"
            return BounceOutcome(ref, status, parsed.reason)
        if parsed.key in self._keys or self.store.bounce_seen(parsed.key):
            return BounceOutcome(ref, "already", "processed before; not counted again")
        row, unmatched = self._verp_row(parsed)
        if parsed.category == "unrecognised" and row is None:
            return BounceOutcome(ref, "ignored", parsed.reason + ", and no genuine VERP token")
        if unmatched:
            return BounceOutcome(ref, "unmatched", unmatched)
        failure = self._failure(parsed, row)
        if row is None:  # our Message-ID and, for a bounce, the failed address with it
            complaint = parsed.category == "complaint"
            address = parsed.complained if complaint else (failure.address if failure else None)
            row = self.store.bounce_row(address, parsed.original_message_id,
                                        redacted=complaint)
            if row is None and address and not complaint:  # the row of someone forgotten
                row = self.store.bounce_row(hashed_key(address), parsed.original_message_id)
        if row is not None and is_hashed(row.email):
            return BounceOutcome(ref, "unmatched", _ERASED)
        if row is None:
            named = parsed.complained or (failure.address if failure else None)
            return BounceOutcome(ref, "unmatched", "no genuine VERP token, and its original "
                                 "Message-ID is none this project sent"
                                 f"{' to ' + named if named else ''}; ignored")
        if parsed.category == "complaint":
            status = "complaint"
        elif failure is None:  # a mail server's mail with our token but no failure read:
            status = "soft"  # counted softly, so a mangled format alone never suppresses
        else:
            status = "hard" if failure.hard else "soft"
        detail = _detail(parsed, failure)
        if self.dry_run:
            return self._predict(ref, parsed, status, detail, row)
        record = self.store.record_bounce(
            parsed.key, row, kind=_COUNTED[status], detail=detail, at=parsed.date,
            soft_limit=self.config.soft_limit, soft_window_days=self.config.soft_window_days)
        if not record.recorded:
            return BounceOutcome(ref, "already", "processed before; not counted again")
        if status == "soft":
            detail += (f" ({record.soft_count} of {self.config.soft_limit} within "
                       f"{self.config.soft_window_days} days)")
        return BounceOutcome(ref, status, detail, row.issue, row.email, record.suppressed)

    def _predict(self, ref: str, parsed: Parsed, status: str, detail: str,
                 row: BounceRow) -> BounceOutcome:
        """What ``record_bounce`` will do with this mail in the real run (a dry run)."""
        self._keys.add(parsed.key)
        address = email_key(row.email)
        calls_for = status != "soft"
        if status == "soft":
            limit, days = self.config.soft_limit, self.config.soft_window_days
            recorded, inside = self.store.soft_window(row.email, parsed.date, days)
            self._soft[address] += inside
            count = recorded + self._soft[address]
            calls_for = count >= limit
            detail += f" ({count} of {limit} within {days} days)"
        suppress = (calls_for and address not in self._suppressing
                    and not self.store.is_suppressed(row.email))
        if suppress:
            self._suppressing.add(address)
        return BounceOutcome(ref, status, detail, row.issue, row.email, suppress)

    def _failure(self, parsed: Parsed, row: BounceRow | None) -> Failure | None:
        """The failure this bounce reports for ``row`` (or its first, without a row)."""
        if not parsed.failures:
            return None
        if row is not None:
            key = email_key(row.email)
            for failure in parsed.failures:
                if failure.address and email_key(failure.address) == key:
                    return failure
        return parsed.failures[0]

    def remember(self, parsed: Parsed, outcome: BounceOutcome) -> None:
        """Mail that counted for nothing is remembered too, so a rerun reports it once."""
        if outcome.status == "unmatched":
            if self.dry_run:
                self._keys.add(parsed.key)
            else:
                self.store.mark_bounce_mail(parsed.key, outcome.status)


def _erased_check(verp: Verp, token: VerpToken, row: BounceRow, parsed: Parsed) -> bool | None:
    """Whether the token was made for ``row``, whose reader was forgotten: checked against
    each address the mail names (a report's failed address, a complaint's, those in the
    returned headers) that has the row's hash; None when the mail names no such address.
    The address itself is neither kept nor shown."""
    named = [f.address for f in parsed.failures if f.address]
    if parsed.complained:
        named.append(parsed.complained)
    seen: set[str] = set()
    verdict: bool | None = None
    for address in (*named, *(m.group(0) for m in _ADDRESS.finditer(parsed.text))):
        address = address.rstrip(".")
        if address in seen:
            continue
        if len(seen) >= _MAX_CANDIDATES:
            break
        seen.add(address)
        if hashed_key(address) == row.email:
            if verp.genuine(token, row.issue, address):
                return True
            verdict = False
    return verdict


def process_box(box: BounceBox, store: BounceStore, verp: Verp | None, config: BounceConfig,
                *, dry_run: bool) -> Iterator[BounceOutcome]:
    """Judge every mail of ``box``; mark or move it unless a dry run."""
    judge = Judge(store, verp, config, dry_run)
    for mail in box.messages():
        if mail.data is None:
            outcome = BounceOutcome(mail.ref, "unreadable", mail.problem or "unreadable")
            parsed = None
        else:
            parsed = parse(mail.data)
            outcome = judge.judge(mail.ref, parsed)
            # set aside unread, and not remembered: moved back once its cause is mended (a
            # store restored, a secret found), it is judged afresh
            aside = (outcome.status == "unmatched" and config.unmatched_folder is not None
                     and not mail.leave)
            if not aside:
                judge.remember(parsed, outcome)
        if not dry_run and not mail.leave:
            ignored = outcome.status in ("delay", "auto-reply", "ignored")
            unmatched = outcome.status == "unmatched" and config.unmatched_folder is not None
            folder = (config.ignored_folder if ignored and config.ignored_folder else
                      config.unmatched_folder if unmatched else
                      config.done_folder if config.processed == "move" else None)
            note = box.finish(mail, folder, seen=not unmatched)
            if unmatched and note is None:
                note = f"set aside unread in {folder}"
            if note:
                outcome = BounceOutcome(outcome.ref, outcome.status, outcome.detail,
                                        outcome.issue, outcome.email, outcome.suppressed, note)
        yield outcome


def process_bounces(settings: Settings, *, dry_run: bool = False) -> BounceRun:
    """Everything in the configured bounce mailbox, handled (with ``dry_run``: judged only;
    IMAP opens the folder read-only)."""
    config = _config(settings)
    run = BounceRun(dry_run=dry_run)
    # One run at a time: two would read the same files and trip over each other's moves.
    with bounces_lock(settings):
        # A project that has sent and lost its store must not read (and mark seen) its
        # bounces against a new empty one: every genuine token would look forged. A lost one
        # in the words of every command that records (``check_kept``), a damaged one in send's.
        check_kept(settings.tracking.database, settings.state_dir, RECORDS)
        check_memory(settings.tracking.database, settings.state_dir)
        # No signing key yet means no token was ever made: nothing to verify, and reading
        # bounces must not create one; a lost one of a project that has sent is refused.
        secret = existing_secret(settings) if config.verp else None
        verp = verp_for(settings, (secret, *secret.earlier)) if secret is not None else None
        box = open_box(settings, dry_run=dry_run)
        try:
            with open_store(settings.tracking.database, state_dir=settings.state_dir) as store:
                run.outcomes.extend(process_box(box, store, verp, config, dry_run=dry_run))
        finally:
            box.close()
    return run


def bounces_lock(settings: Settings) -> Lock:
    """Held for a whole ``process-bounces`` (or the bounce step of ``run-due``)."""
    return Lock(settings.state_dir / "locks" / "process-bounces.lock", "process-bounces")
