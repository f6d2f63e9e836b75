"""A list kept in a format that is not read (an office's Excel or LibreOffice file, a
tab-separated export named .tsv or .txt) is named with the way to make it readable, instead
of "not found, create lists/NAME.csv", which let the officer think the file was missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.project.lists import find_list
from mirage_mailer.util.errors import InputError

ISSUE_LINE = f"{SAMPLE_ISSUE}/issue.yaml:12: "


def test_an_excel_list_is_named_with_how_to_save_it_as_csv(project: Path,
                                                           run_cli: RunCli) -> None:
    lists = project / "lists"
    (lists / "subscribers.csv").rename(lists / "subscribers.xlsx")  # bytes do not matter
    for command in (("validate", SAMPLE_ISSUE), ("send", SAMPLE_ISSUE, "--yes")):
        run = run_cli(*command)
        assert run.code == 2, run.err
        assert (ISSUE_LINE + "list 'subscribers' is the spreadsheet lists/subscribers.xlsx, "
                "which is not read (save it as CSV UTF-8 (in Excel: File, Save As, "
                "'CSV UTF-8') as lists/subscribers.csv)") in run.err.splitlines(), run.err
    assert not (project / "outbox" / "new").exists() or not any(
        (project / "outbox" / "new").iterdir())


@pytest.mark.parametrize("suffix", [".tsv", ".TXT"])
def test_a_delimited_text_file_is_told_to_be_renamed(in_project: Path, suffix: str) -> None:
    folder = in_project / "lists"
    (folder / "subscribers.csv").rename(folder / f"subscribers{suffix}")
    with pytest.raises(InputError) as caught:
        find_list(folder, "subscribers", origin=in_project / "mirage.yaml", line=3)
    (problem,) = caught.value.problems
    assert problem.line == 3
    assert problem.message == (f"list 'subscribers' is lists/subscribers{suffix}, which is "
                               "not read under that name")
    assert problem.hint == ("rename it to lists/subscribers.csv (commas, semicolons or tabs "
                            "between columns are read)")


def test_a_file_of_another_name_changes_nothing(in_project: Path) -> None:
    folder = in_project / "lists"
    (folder / "subscribers.csv").rename(folder / "members.xlsx")
    with pytest.raises(InputError, match="list 'subscribers' not found"):
        find_list(folder, "subscribers", origin=in_project / "mirage.yaml", line=None)


def test_a_folder_where_the_list_file_belongs_is_named(project: Path, run_cli: RunCli) -> None:
    lists = project / "lists"
    (lists / "subscribers.csv").unlink()
    (lists / "subscribers.csv").mkdir()
    run = run_cli("validate", SAMPLE_ISSUE)
    assert run.code == 2
    assert (ISSUE_LINE + "list 'subscribers': lists/subscribers.csv is a folder (put the list "
            "file itself there: move that away first)") in run.err.splitlines(), run.err


def test_the_subscribers_commands_say_the_same(project: Path, run_cli: RunCli) -> None:
    """``subscribers`` named a list given with its extension "no list", with the fix
    "create lists/subscribers.csv.csv"."""
    named = run_cli("subscribers", "list", "--list", "subscribers.csv")
    assert named.code == 2
    assert named.err.strip() == ("lists/: list 'subscribers.csv' is a file name, not a list "
                                 "name (give the list's name without the extension: "
                                 "'subscribers' for lists/subscribers.csv)")
    (project / "lists" / "members.ods").write_bytes(b"PK\x03\x04")  # beside the sample's
    sheet = run_cli("subscribers", "list", "--list", "members")
    assert sheet.code == 2
    assert sheet.err.strip() == ("lists/: list 'members' is the spreadsheet lists/members.ods, "
                                 "which is not read (save it as CSV UTF-8 (in Excel: File, "
                                 "Save As, 'CSV UTF-8') as lists/members.csv)")
