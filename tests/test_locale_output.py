"""A machine whose locale is not UTF-8 (an office's old server: ``LANG=fr_FR.ISO-8859-1``, or
plain ``C``): Greek names and subjects never crash a command. Text for people is written in
the locale's encoding with backslash escapes; CSV and JSON, for other tools, are UTF-8. Real
subprocesses: stdout in Latin-1 (PYTHONIOENCODING, as the locale would set it), and file names
under the C locale with Python's UTF-8 coercion off (ASCII, which no more holds Greek than
Latin-1 does)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit

LATIN1_OUT = {"PYTHONIOENCODING": "latin-1"}  # stdout as under LANG=fr_FR.ISO-8859-1
NOT_UTF8 = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
NAME = "Γιώργος Παπαδόπουλος"
SUBJECT = "Νέα του MIraGE: τελευταία συνάντηση"


def _escaped(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode()


def _greek(project: Path) -> None:
    with (project / "lists/subscribers.csv").open("a", encoding="utf-8") as handle:
        handle.write(f"giorgos@example.org,{NAME},el,Ένωση\n")
    edit(project / SAMPLE_ISSUE / "issue.yaml",
         "  en: \"MIraGE news: final partners' meeting and lessons learned\"",
         f'  en: "{SUBJECT}"')


def _bytes_out(project: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "mirage_mailer", *args], cwd=project,
                          env={**os.environ, **LATIN1_OUT}, capture_output=True,
                          timeout=60, check=False)


@pytest.mark.parametrize(("args", "sent", "shown"), [
    (("report", SAMPLE_ISSUE), True, _escaped(SUBJECT).encode("latin-1")),
    (("report", SAMPLE_ISSUE, "--format", "csv"), True, SUBJECT.encode()),
    (("subscribers", "list"), False, _escaped(NAME).encode("latin-1")),
    (("subscribers", "export", "--list", "subscribers"), False, NAME.encode()),
    (("export", "giorgos@example.org"), False, NAME.encode()),
    (("send", SAMPLE_ISSUE, "--dry-run", "--list"), False, _escaped(NAME).encode("latin-1")),
], ids=["report", "report-csv", "subscribers-list", "subscribers-export", "export",
        "dry-run-list"])
def test_greek_text_on_a_latin1_stdout(project: Path, args: tuple[str, ...], sent: bool,
                                       shown: bytes) -> None:
    """Was exit 70, UnicodeEncodeError, for each of these (the CSV after its header row).
    Text for people keeps the locale (Latin-1) with backslash escapes; CSV and JSON are
    UTF-8, as the tools that read them expect."""
    _greek(project)
    if sent:
        assert _bytes_out(project, "send", SAMPLE_ISSUE, "--yes").returncode == 0
    result = _bytes_out(project, *args)
    assert result.returncode == 0, result.stderr.decode("latin-1")
    assert shown in result.stdout


def test_a_greek_article_name_the_locale_cannot_hold_is_said_as_such(
        project: Path, run_cli: RunCli) -> None:
    """Was "is outside the issue folder (keep the article files in the issue folder itself)":
    the name could not even be looked up. Under a UTF-8 locale the same issue is valid."""
    issue = project / SAMPLE_ISSUE
    (issue / "partners-meeting.md").rename(issue / "συνάντηση.md")
    edit(issue / "issue.yaml", "  - partners-meeting.md", "  - συνάντηση.md")
    assert run_cli("validate", SAMPLE_ISSUE).code == 0
    result = run_cli("validate", SAMPLE_ISSUE, env=NOT_UTF8)
    assert result.code == 2
    # (click writes UTF-8 to a stream whose encoding is ASCII: the name is shown as it is)
    assert ("issues/2021-10-partners-meeting/issue.yaml:14: article 'συνάντηση.md' cannot be "
            "a file name in this locale's encoding (ascii) (run mirage-mailer under a UTF-8 "
            "locale (set LANG, e.g. LANG=C.UTF-8 or LANG=fr_FR.UTF-8), or rename the file "
            "with letters of the locale)") in result.err.splitlines()
