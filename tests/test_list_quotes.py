"""A quote left open in a CSV list is fatal for every command, never a silent loss of the
rows after it; a quoted multi-line cell that closes stays a row problem at its line."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, report, statuses
from mirage_mailer.project import list_worker
from mirage_mailer.project.lists import RowProblem, Subscriber, iter_list
from mirage_mailer.util.csvrecords import MAX_CELL_LINES
from mirage_mailer.util.errors import InputError

HEADER = "email,name,organisation\n"
REST = "bob@example.org,Bob,UNHCR\ncarla@example.org,Carla,IOM\ndan@example.org,Dan,Caritas\n"
OPEN = HEADER + 'ann@example.org,Ann,"Red Cross\n' + REST  # the auditor's list
OPEN_AT = "lists/subscribers.csv:2: a quote opens on this line and is never closed"


def _outbox(project: Path) -> list[Path]:
    folder = project / "outbox" / "new"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _fatal_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning:" not in line]


def test_validate_and_preview_refuse_a_quote_never_closed(
        project: Path, run_cli: RunCli) -> None:
    (project / "lists/subscribers.csv").write_text(OPEN, encoding="utf-8")
    run = run_cli("validate", SAMPLE_ISSUE)
    assert run.code == 2
    assert [line.split(OPEN_AT)[0] for line in _fatal_lines(run.err)] == [""]  # one line
    assert "(close the quote where the value ends, or remove it)" in run.err
    preview = run_cli("preview", SAMPLE_ISSUE, "--recipient", "bob@example.org",
                      "--out", str(project / "pv"))
    assert preview.code == 2 and OPEN_AT in preview.err


def test_send_refuses_a_quote_never_closed_and_records_nobody(
        project: Path, run_cli: RunCli) -> None:
    (project / "lists/subscribers.csv").write_text(OPEN, encoding="utf-8")
    send = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert send.code == 2, send.err
    assert OPEN_AT in send.err
    assert _outbox(project) == []
    assert report(run_cli)["recipients"] == []  # nothing recorded, not "ann invalid"


def test_run_due_refuses_the_open_quote_and_sends_everyone_once_it_is_closed(
        project: Path, run_cli: RunCli) -> None:
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2021-10-29T09:00:00+02:00")
    listed = project / "lists/subscribers.csv"
    listed.write_text(OPEN, encoding="utf-8")
    first = run_cli("run-due", "--now", "2021-10-29T10:00:00+02:00")  # its first hour
    assert first.code == 2, first.err
    assert OPEN_AT in first.err and _outbox(project) == []
    listed.write_text(OPEN.replace('"Red Cross', "Red Cross"), encoding="utf-8")
    second = run_cli("run-due", "--now", "2021-10-29T10:10:00+02:00")
    assert second.code == 0, second.err
    assert statuses(run_cli) == dict.fromkeys(["ann@example.org", "bob@example.org",
                                      "carla@example.org", "dan@example.org"], "sent")


def test_a_quoted_cell_that_closes_stays_a_row_problem(project: Path, run_cli: RunCli) -> None:
    (project / "lists/subscribers.csv").write_text(
        HEADER + 'ann@example.org,Ann,"Red\nCross"\n' + REST, encoding="utf-8")
    send = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert send.code == 0, send.err
    assert "lists/subscribers.csv:2: 'organisation' contains a line break" in send.err
    assert "quote" not in send.err
    assert statuses(run_cli) == {"ann@example.org": "invalid", "bob@example.org": "sent",
                        "carla@example.org": "sent", "dan@example.org": "sent"}


def test_subscribers_add_and_remove_refuse_a_list_with_an_open_quote(
        project: Path, run_cli: RunCli) -> None:
    """``add`` would append the new row inside the open cell; ``remove`` would say a reader
    swallowed by it is not in the list. Both refuse, and the file stays as it was."""
    listed = project / "lists/subscribers.csv"
    listed.write_text(OPEN, encoding="utf-8")
    add = run_cli("subscribers", "add", "subscribers", "eve@example.org")
    assert add.code == 2 and OPEN_AT in add.err
    remove = run_cli("subscribers", "remove", "subscribers", "carla@example.org")
    assert remove.code == 2 and OPEN_AT in remove.err
    assert listed.read_text(encoding="utf-8") == OPEN


def _read(path: Path, *, parallel: bool, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every row of ``path`` and then the fatal problem's text, read here or by the child."""
    monkeypatch.setattr(list_worker, "PARALLEL_BYTES", 0 if parallel else 1 << 60)
    out: list[object] = []
    try:
        for row in iter_list(path, "subscribers"):
            assert isinstance(row, Subscriber | RowProblem)
            out.append(row.email if isinstance(row, Subscriber) else row.problem)
    except InputError as exc:
        out.append(str(exc))
    return out


def _note(lines: int) -> str:
    return '"' + "\n".join(f"note {n}" for n in range(lines)) + '"'


@pytest.mark.parametrize("parallel", [False, True], ids=["here", "child"])
@pytest.mark.parametrize(("body", "fatal"), [
    # open to the end of the file, with or without a last line end, or on the last line
    ('ann@example.org,Ann,"Red Cross\n' + REST,
     "lists/subscribers.csv:2: a quote opens on this line and is never closed"),
    ('ann@example.org,Ann,"Red Cross\n' + REST.rstrip("\n"),
     "lists/subscribers.csv:2: a quote opens on this line and is never closed"),
    (REST + 'eve@example.org,Eve,"Oxfam',
     "lists/subscribers.csv:5: a quote opens on this line and is never closed"),
    # the open quote is the second quoted cell of a row: its own line is named
    ('ann@example.org,"Ann\nA.",x,"Red Cross\n' + REST,
     "lists/subscribers.csv:3: a quote opens on this line and is never closed"),
    # a stray quote further down closes it after more lines than a cell may hold
    ('ann@example.org,Ann,"Red Cross\n' + REST * 7 + 'zed@example.org,Zed,"x"\n',
     "lists/subscribers.csv:2: the quoted cell that opens on this line runs over 23 lines, "
     "to line 24"),
    # past the csv module's field limit (128 KiB) before the end: the row's line, not where
    # reading stood
    ('ann@example.org,Ann,"Red Cross\n' + REST * 4000,
     "lists/subscribers.csv:2: a quote in the row that starts on this line is not closed "
     f"within {csv.field_size_limit():,} characters"),
], ids=["to-the-end", "no-last-newline", "last-line", "second-cell", "too-long",
        "field-limit"])
def test_an_open_quote_is_fatal_in_this_process_and_in_the_reader_child(
        in_project: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool, body: str,
        fatal: str) -> None:
    path = in_project / "lists/subscribers.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    rows = _read(path, parallel=parallel, monkeypatch=monkeypatch)
    assert isinstance(rows[-1], str) and rows[-1].startswith(fatal), rows[-1]
    assert "ann@example.org" not in rows  # the row of the open quote is not read as a row
    assert rows[:-1] == (["bob@example.org", "carla@example.org", "dan@example.org"]
                         if body.startswith("bob") else [])


@pytest.mark.parametrize("parallel", [False, True], ids=["here", "child"])
def test_a_cell_of_the_most_lines_taken_is_a_row_problem(
        in_project: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool) -> None:
    path = in_project / "lists/subscribers.csv"
    path.write_text(HEADER + "ann@example.org,Ann," + _note(MAX_CELL_LINES) + "\n" + REST,
                    encoding="utf-8")
    rows = _read(path, parallel=parallel, monkeypatch=monkeypatch)
    assert [getattr(r, "line", r) for r in rows] == [
        2, "bob@example.org", "carla@example.org", "dan@example.org"]
    path.write_text(HEADER + "ann@example.org,Ann," + _note(MAX_CELL_LINES + 1) + "\n" + REST,
                    encoding="utf-8")
    rows = _read(path, parallel=parallel, monkeypatch=monkeypatch)
    assert rows == ["lists/subscribers.csv:2: the quoted cell that opens on this line runs "
                    f"over {MAX_CELL_LINES + 1} lines, to line {MAX_CELL_LINES + 2} (at most "
                    f"{MAX_CELL_LINES} are taken: is its closing quote missing?) (close the "
                    "quote where the value ends; a value with line breaks cannot be sent "
                    "anyway)"]
