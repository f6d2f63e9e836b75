"""What the store keeps of an issue as it was sent: per language, the subject and the
rendered HTML (slots still in it, not yet personalised), the article images, and a digest
of the inputs that decided it. The archive and the view-online page show this form, so an
issue published years ago keeps the funding statement, articles and subject its readers got,
whatever the project's files say today.
"""

from __future__ import annotations

from dataclasses import dataclass

from mirage_mailer.store.core import StoreCore


@dataclass(frozen=True)
class SentForm:
    """One language of one issue as its first readers got it."""

    issue: str
    lang: str
    subject: str
    html: str  # untracked, recipient slots still in it (greeting, name, links)
    images: str  # JSON: [{"cid", "filename", "mime", "data" (base64)}], the emblem left out
    inputs: str  # JSON: input name -> sha256 of what decided the message
    digest: str  # sha256 of ``inputs``: one comparison says "changed since"


_COLUMNS = "issue, lang, subject, html, images, inputs, digest"


class AsSentMixin(StoreCore):
    def record_as_sent(self, forms: list[SentForm]) -> None:
        """Keep ``forms``, replacing a language's earlier form (the caller replaces one only
        while no reader has the issue)."""
        if not forms:
            return
        now = self._now()
        with self._write() as conn:
            for form in forms:
                conn.execute(
                    f"INSERT INTO issues_as_sent ({_COLUMNS}, recorded_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (issue, lang) DO UPDATE SET"
                    " subject = excluded.subject, html = excluded.html,"
                    " images = excluded.images, inputs = excluded.inputs,"
                    " digest = excluded.digest, recorded_at = excluded.recorded_at",
                    (form.issue, form.lang, form.subject, form.html, form.images,
                     form.inputs, form.digest, now))

    def as_sent(self, issue: str) -> dict[str, SentForm]:
        """The issue's recorded languages, by language code (empty: none recorded, as in a
        store from before this record existed)."""
        return {str(row[1]): SentForm(*map(str, row)) for row in self._conn.execute(
            f"SELECT {_COLUMNS} FROM issues_as_sent WHERE issue = ? ORDER BY lang", (issue,))}

    def has_sent(self, issue: str) -> bool:
        """Whether any reader of ``issue`` is recorded ``sent``."""
        row = self._conn.execute("SELECT EXISTS (SELECT 1 FROM recipients WHERE issue = ?"
                                 " AND status = 'sent')", (issue,)).fetchone()
        return bool(row[0])

    def sent_subjects(self) -> dict[str, dict[str, str]]:
        """issue -> language -> subject as sent, for every recorded issue (reports)."""
        found: dict[str, dict[str, str]] = {}
        for issue, lang, subject in self._conn.execute(
                "SELECT issue, lang, subject FROM issues_as_sent"):
            found.setdefault(str(issue), {})[str(lang)] = str(subject)
        return found
