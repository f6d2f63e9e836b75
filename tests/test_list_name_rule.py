"""List names as officers give them (audit 15j, r5): a file named ``Partners 2026.csv`` or
``συνεργάτες.csv`` is told the rule and what to rename it to, ``subscribers count`` and
``list`` name each file they leave out, and a list cell too long is not blamed on a quote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.project.lists import iter_list
from mirage_mailer.util.errors import InputError

RULE = "a list name has only ASCII letters, digits, '.', '_' and '-'"


def _name_the_list(project: Path, name: str) -> None:
    shutil.copy(project / "lists/subscribers.csv", project / f"lists/{name}.csv")
    edit(project / SAMPLE_ISSUE / "issue.yaml", "list: subscribers", f"list: {name}")


def test_a_list_name_with_a_space_says_the_rule_and_the_rename(project: Path,
                                                               run_cli: RunCli) -> None:
    _name_the_list(project, "Partners 2026")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert result.err.splitlines()[-1] == (
        f"{SAMPLE_ISSUE}/issue.yaml:12: list name 'Partners 2026' has a space, which a list "
        "name cannot have (rename lists/Partners 2026.csv to lists/Partners-2026.csv and use "
        f"the name 'Partners-2026'; {RULE})")


def test_a_list_name_in_greek_letters_says_the_rule(project: Path, run_cli: RunCli) -> None:
    _name_the_list(project, "συνεργάτες")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 2, result.err
    assert result.err.splitlines()[-1] == (
        f"{SAMPLE_ISSUE}/issue.yaml:12: list name 'συνεργάτες' has letters outside ASCII, "
        "which a list name cannot have (rename lists/συνεργάτες.csv to a name of ASCII "
        "letters, digits, '.', '_' and '-', such as lists/partners.csv, and use that name)")


def test_subscribers_count_and_list_name_each_file_they_leave_out(project: Path,
                                                                  run_cli: RunCli) -> None:
    shutil.copy(project / "lists/subscribers.csv", project / "lists/Partners 2026.csv")
    shutil.copy(project / "lists/subscribers.csv", project / "lists/.backup.csv")  # hidden
    warning = ("lists/Partners 2026.csv: warning: left out: its name 'Partners 2026' has a "
               "space, which a list name cannot have (rename lists/Partners 2026.csv to "
               f"lists/Partners-2026.csv and use the name 'Partners-2026'; {RULE})")
    counted = run_cli("subscribers", "count", "--format", "json")
    assert counted.code == 0, counted.err
    assert counted.err.splitlines() == [warning]
    assert [g["list"] for g in json.loads(counted.out)["lists"]] == ["subscribers"]
    listed = run_cli("subscribers", "list", "--format", "csv")
    assert listed.code == 0, listed.err
    assert listed.err.splitlines() == [warning]
    assert len(listed.out.splitlines()) == 6  # the header and subscribers.csv's 5 readers
    named = run_cli("subscribers", "count", "--list", "Partners 2026")
    assert named.code == 2
    assert named.err.splitlines() == [
        "lists/: list name 'Partners 2026' has a space, which a list name cannot have "
        "(rename lists/Partners 2026.csv to lists/Partners-2026.csv and use the name "
        f"'Partners-2026'; {RULE})"]


def test_a_cell_too_long_is_not_blamed_on_a_quote(project: Path, run_cli: RunCli) -> None:
    with (project / "lists/subscribers.csv").open("a", encoding="utf-8") as handle:
        handle.write("big@example.org,Big,en," + "o" * 200_000 + "\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert "lists/subscribers.csv:7: a value in this row is longer than 131,072 characters, " \
           "the most a list cell may hold (shorten it; is this a list file?)" in result.err


def test_a_quote_left_open_is_still_named_a_quote(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text('email,name\na@example.org,"Open\n' + "o\n" * 70_000, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        list(iter_list(path, "x"))
    assert str(caught.value).endswith(
        "x.csv:2: a quote in the row that starts on this line is not closed within 131,072 "
        "characters (close the quote where the value ends)")


@pytest.mark.parametrize(("name", "better"), [
    ("Partners 2026", "Partners-2026"), ("Café list", "Cafe-list"),
    ("συνεργάτες", None), ("  news (old)", "news-old"), ("a/b", "a-b")])
def test_the_name_suggested(name: str, better: str | None) -> None:
    from mirage_mailer.project.list_name_rule import suggested

    assert suggested(name) == better
