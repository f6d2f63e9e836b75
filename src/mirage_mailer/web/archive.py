"""The public archive: which issues were sent, and what the index and the feed say about them.

An issue is published once the tracking store holds at least one ``sent`` recipient for it;
drafts and test copies (``send --to``) never appear. Issue folders are parsed again only when
one of their files changed.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path

from babel.dates import format_date

from mirage_mailer.project.config import Settings
from mirage_mailer.project.content import Issue, load_issue
from mirage_mailer.services.store_access import StoreAccess, access
from mirage_mailer.store import ReportReader
from mirage_mailer.util.errors import MirageError
from mirage_mailer.web.links import Links

log = logging.getLogger(__name__)

ISSUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # the rule content.py applies
Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(*paths: Path) -> Fingerprint:
    """(path, mtime, size) of every file under ``paths``: changes when any file changes."""
    found: list[tuple[str, int, int]] = []
    for base in paths:
        if base.is_file():
            stat = base.stat()
            found.append((str(base), stat.st_mtime_ns, stat.st_size))
            continue
        for folder, _dirs, files in os.walk(base):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                found.append((path, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(found))


@dataclass(frozen=True)
class Entry:
    """One published issue as the index and the feed show it."""

    issue: Issue
    published: datetime  # the issue's date, else when its first message was sent
    sent: Mapping[str, str] = field(default_factory=dict)  # lang -> subject as sent

    @property
    def id(self) -> str:
        return self.issue.id

    def _subject(self, lang: str) -> str:
        """The subject its readers got (the store's record), else issue.yaml's."""
        return self.sent.get(lang) or self.issue.subject_for(lang)

    @property
    def title(self) -> str:
        lang = self.issue.default_language
        return self.issue.title.get(lang) or self._subject(lang)

    @property
    def subject(self) -> str:
        return self._subject(self.issue.default_language)

    @property
    def summary(self) -> str:
        lang = self.issue.default_language
        if self.issue.preheader.get(lang):
            return self.issue.preheader[lang]
        return " · ".join(a.title for a in self.issue.articles[lang])

    def subject_in(self, lang: str) -> str:
        """The subject in ``lang`` where the issue has it (a reader's archive index)."""
        return self._subject(self.issue.pick_language(lang))

    def title_in(self, lang: str) -> str:
        code = self.issue.pick_language(lang)
        return self.issue.title.get(code) or self.issue.title.get(
            self.issue.default_language) or self._subject(code)

    def summary_in(self, lang: str) -> str:
        code = self.issue.pick_language(lang)
        if self.issue.preheader.get(code):
            return self.issue.preheader[code]
        return " · ".join(a.title for a in self.issue.articles.get(code, ())) or self.summary

    def date_in(self, lang: str) -> str:
        """The publication date as a reader of ``lang`` writes it."""
        return format_date(self.published.date(), format="long", locale=lang)


class Catalogue:
    """Published issues, newest first; safe to use from several threads."""

    def __init__(self, settings: Settings, stores: StoreAccess | None = None) -> None:
        self.settings = settings
        self._stores = access(settings, stores)  # serve's kept connections, else one a call
        self._issues: dict[str, tuple[Fingerprint, Issue]] = {}
        self._first_sent: dict[str, datetime] = {}
        self._subjects: dict[str, dict[str, str]] = {}  # issue -> lang -> subject as sent
        self._lock = threading.Lock()

    def issue(self, issue_id: str) -> Issue | None:
        """The issue folder parsed (cached), or None when it is missing or broken."""
        if not ISSUE_ID.match(issue_id):
            return None
        folder = self.settings.issues_dir / issue_id
        if not (folder / "issue.yaml").is_file():
            return None
        stamp = fingerprint(folder)
        with self._lock:
            cached = self._issues.get(issue_id)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        try:
            issue, _warnings = load_issue(folder, self.settings.project.language)
        except MirageError as exc:
            log.warning("issue %s cannot be shown: %s", issue_id, exc)
            return None
        with self._lock:
            self._issues[issue_id] = (stamp, issue)
        return issue

    def _sent(self, only: str | None = None) -> dict[str, datetime | None]:
        """Published issue ids (all, or just ``only``), with their first send time; the
        subjects they were sent with are read on the way (``_subjects``)."""
        found: dict[str, datetime | None] = {}
        with self._stores.existing(settle=False) as store:
            if store is None:  # the archive never creates a tracking store
                return {}
            for issue_id in [only] if only is not None else store.issues():
                if not ISSUE_ID.match(issue_id) or store.counts(issue_id)["sent"] == 0:
                    continue
                found[issue_id] = self._first_sent_at(store, issue_id)
            subjects = store.sent_subjects()
        with self._lock:
            self._subjects = subjects
        return found

    def _first_sent_at(self, store: ReportReader, issue_id: str) -> datetime | None:
        with self._lock:
            if issue_id in self._first_sent:
                return self._first_sent[issue_id]
        first = next((at for at, kind in store.timeline(issue_id) if kind == "sent"), None)
        if first is None:
            return None
        moment = datetime.fromisoformat(first)
        with self._lock:
            self._first_sent[issue_id] = moment  # never changes once an issue went out
        return moment

    def _entry(self, issue_id: str, sent_at: datetime | None) -> Entry | None:
        issue = self.issue(issue_id)
        if issue is None:
            return None
        if issue.date is not None:
            published = datetime.combine(issue.date, time(0), UTC)
        else:
            published = sent_at or datetime.fromtimestamp(0, UTC)
        with self._lock:
            sent = self._subjects.get(issue_id, {})
        return Entry(issue, published, sent)

    def entries(self) -> list[Entry]:
        """Every published issue whose folder still exists, newest first."""
        found = [entry for issue_id, sent_at in self._sent().items()
                 if (entry := self._entry(issue_id, sent_at)) is not None]
        return sorted(found, key=lambda e: (e.published, e.id), reverse=True)

    def entry(self, issue_id: str) -> Entry | None:
        """The published issue ``issue_id``, or None (unknown, unsent, or its folder gone)."""
        if not ISSUE_ID.match(issue_id):
            return None
        sent = self._sent(issue_id)
        return self._entry(issue_id, sent[issue_id]) if issue_id in sent else None

    def languages(self) -> set[str]:
        """Languages the published issues exist in (offered on the subscribe form)."""
        return {lang for entry in self.entries() for lang in entry.issue.languages}


def subscribe_links(entries: list[Entry], links: Links,
                    open_lists: frozenset[str],
                    lang: str | None = None) -> list[tuple[str, str]]:
    """(list, sign-up URL) for every list the published issues went to that takes public
    sign-ups (``project.signup_lists``): an internal list is neither linked nor named. The
    form is in ``lang``, the language of the page that links to it."""
    names = sorted({name for entry in entries for name in entry.issue.lists} & open_lists)
    return [(name, url) for name in names if (url := links.subscribe(name, lang))]
