"""What an issue is called where it is listed (reports, the period summary): its subject in
the project's default language, read from ``issues/<id>/issue.yaml`` alone.

Reports outlive drafts: an issue folder may have been moved, or be half-edited, long after
the store recorded its sends. So this never raises: an issue whose subject cannot be read is
listed by its id alone (``None`` here), and the report still prints.
"""

from __future__ import annotations

import re
from pathlib import Path

from mirage_mailer.project.yamlsrc import LineDict, load_yaml_file
from mirage_mailer.util.errors import MirageError
from mirage_mailer.util.langs import normalise_language

_ISSUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # the rule content.py applies
_SPACE = re.compile(r"\s+")


def issue_subject(issues_dir: Path, issue_id: str, default_language: str) -> str | None:
    """The subject of ``issue_id`` in ``default_language`` (or its only one), else None."""
    if not _ISSUE_ID.match(issue_id):
        return None
    try:
        data = load_yaml_file(issues_dir / issue_id / "issue.yaml")
    except (MirageError, OSError):
        return None
    if not isinstance(data, LineDict):
        return None
    found = data.get("subject")
    subject = data.text("subject")  # as written, as content.localised reads it
    if isinstance(found, LineDict):
        texts = {normalise_language(str(k)): t for k in found
                 if (t := found.text(k)) is not None}
        subject = texts.get(normalise_language(default_language))
        if subject is None and len(texts) == 1:
            subject = next(iter(texts.values()))
    if subject is None:
        return None
    text = _SPACE.sub(" ", subject).strip()
    return text[:300] or None


def issue_subjects(issues_dir: Path, issue_ids: list[str],
                   default_language: str) -> dict[str, str | None]:
    """``issue_subject`` of each id."""
    return {i: issue_subject(issues_dir, i, default_language) for i in issue_ids}
