"""One list, one file: lists/NAME.csv beside lists/NAME.yaml (or .yml) is refused by every
command that reads or edits the list, instead of one file's readers being left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, report
from mirage_mailer.project.lists import find_list
from mirage_mailer.util.errors import InputError

YAML = "subscribers:\n  - email: other@example.org\n"
BOTH = ("lists/subscribers.csv: list 'subscribers' is also in lists/subscribers.yaml: one list, "
        "one file (keep one: move the rows you need into it and delete the other)")


def _outbox(project: Path) -> list[Path]:
    folder = project / "outbox" / "new"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_validate_and_send_refuse_a_list_with_two_files(project: Path, run_cli: RunCli) -> None:
    (project / "lists/subscribers.yaml").write_text(YAML, encoding="utf-8")
    run = run_cli("validate", SAMPLE_ISSUE)
    assert run.code == 2
    assert BOTH in run.err.splitlines()
    send = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert send.code == 2 and BOTH in send.err.splitlines()
    assert _outbox(project) == []


def test_run_due_and_preview_refuse_a_list_with_two_files(project: Path,
                                                          run_cli: RunCli) -> None:
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:00:00+02:00")
    (project / "lists/subscribers.yaml").write_text(YAML, encoding="utf-8")
    due = run_cli("run-due", "--now", "2021-10-29T10:00:00+02:00")
    assert due.code == 2 and BOTH in due.err, due.err
    assert _outbox(project) == [] and report(run_cli)["recipients"] == []
    preview = run_cli("preview", SAMPLE_ISSUE, "--recipient", "other@example.org",
                      "--out", str(project / "pv"))
    assert preview.code == 2 and BOTH in preview.err.splitlines()


def test_subscribers_commands_refuse_a_list_with_two_files(project: Path,
                                                           run_cli: RunCli) -> None:
    yaml = project / "lists/subscribers.yaml"
    yaml.write_text(YAML, encoding="utf-8")
    csv_before = (project / "lists/subscribers.csv").read_bytes()
    add = run_cli("subscribers", "add", "subscribers", "eve@example.org")
    assert add.code == 2 and BOTH in add.err.splitlines()
    listed = run_cli("subscribers", "list")
    assert listed.code == 2 and BOTH in listed.err.splitlines()
    assert yaml.read_text(encoding="utf-8") == YAML
    assert (project / "lists/subscribers.csv").read_bytes() == csv_before


@pytest.mark.parametrize("names", [("subscribers.csv", "subscribers.yml"),
                                   ("subscribers.yaml", "subscribers.yml"),
                                   ("subscribers.csv", "subscribers.CSV", "subscribers.yaml")])
def test_every_pair_of_files_for_one_name_is_named(in_project: Path,
                                                   names: tuple[str, ...]) -> None:
    folder = in_project / "lists"
    for child in folder.iterdir():
        child.unlink()
    for name in names:
        (folder / name).write_text("email\na@example.org\n", encoding="utf-8")
    (folder / "subscribers.backup.csv").write_text("email\n", encoding="utf-8")  # another list
    with pytest.raises(InputError) as caught:
        find_list(folder, "subscribers", origin=in_project / "mirage.yaml", line=None)
    shown = sorted(f"lists/{n}" for n in names)
    assert str(caught.value) == (f"{shown[0]}: list 'subscribers' is also in "
                                 f"{' and '.join(shown[1:])}: one list, one file (keep one: "
                                 "move the rows you need into it and delete the other)")


def test_one_file_is_found_whatever_the_case_of_its_suffix(in_project: Path) -> None:
    folder = in_project / "lists"
    (folder / "subscribers.csv").rename(folder / "subscribers.CSV")
    found = find_list(folder, "subscribers", origin=in_project / "mirage.yaml", line=None)
    assert found == folder / "subscribers.CSV"
    (folder / "subscribers.CSV").unlink()
    with pytest.raises(InputError, match="list 'subscribers' not found"):
        find_list(folder, "subscribers", origin=in_project / "mirage.yaml", line=None)
