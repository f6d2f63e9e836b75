"""A CSV list's header row as spreadsheets and mail tools write it. A first line that is not
the header is named for what it is: blank lines above the header were reported as "list is
empty", and Excel's ``sep=;`` hint line as a header without an 'email' column."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli

LIST = "lists/subscribers.csv"


@pytest.mark.parametrize(("data", "line"), [
    (b"\r\n\r\nemail,name\r\na@example.org,A\r\n",
     "lists/subscribers.csv:1: the first line is blank, not the header row (delete the blank "
     "lines above the header row: it must be the first line)"),
    (b"sep=;\r\nemail;name\r\na@example.org;A\r\n",
     "lists/subscribers.csv:1: the first line is Excel's 'sep=;' hint, not the header row "
     "(delete that line: the header row with an 'email' column must be the first line)"),
    (b'"sep=,"\nemail,name\na@example.org,A\n',
     "lists/subscribers.csv:1: the first line is Excel's 'sep=,' hint, not the header row "
     "(delete that line: the header row with an 'email' column must be the first line)"),
    (b"\n \n",
     "lists/subscribers.csv:1: list is empty (add a header row with an 'email' column)"),
], ids=["blank-lines", "sep-hint", "quoted-sep-hint", "only-blank"])
def test_first_line_that_is_not_the_header(project: Path, run_cli: RunCli, data: bytes,
                                           line: str) -> None:
    (project / LIST).write_bytes(data)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert line in result.err.splitlines(), result.err


def test_outlook_contacts_export_header_is_read(project: Path, run_cli: RunCli) -> None:
    """Outlook's contacts export names the address column 'E-mail Address'; 'E-mail' and
    'Email Address' were read, that one was refused as a header without an email column."""
    (project / LIST).write_bytes(b'"First Name","Last Name","E-mail Address","Language"\r\n'
                                 b'"Jean","Dupont","jean@example.org","fr"\r\n')
    result = run_cli("send", SAMPLE_ISSUE, "--dry-run")
    assert result.code == 0, result.err
    assert "would send 1 (fr: 1)" in result.out
