"""A CSV row with a value past the header's last column is a row problem, never a reader
greeted by half their name: an unquoted comma in ``Dvořák, Antonín`` moves every later value
one column to the right. Empty cells past the header and missing cells at the end are fine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.project import list_worker
from mirage_mailer.project.lists import RowProblem, Subscriber, iter_list

HEADER = "email,name,organisation\n"
SHIFTED = "z1@example.org,Dvořák, Antonín,Red Cross\n"  # the auditor's row
FINE = "ana@example.org,Ana,Caritas\n"
TOO_MANY = ("lists/subscribers.csv:2: 4 values but the header has 3 columns (put a value "
            "with a comma in double quotes, or name the extra column in the header)")


def _rows(path: Path) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for row in iter_list(path, "subscribers"):
        if isinstance(row, Subscriber):
            out.append((row.line, row.email, row.name, row.fields))
        else:
            assert isinstance(row, RowProblem)
            out.append((row.problem.line, row.email, str(row.problem)))
    return out


def test_validate_names_the_row_with_a_value_past_the_header(
        project: Path, run_cli: RunCli) -> None:
    (project / "lists/subscribers.csv").write_text(HEADER + SHIFTED + FINE, encoding="utf-8")
    run = run_cli("validate", SAMPLE_ISSUE)
    assert run.code == 2, run.err
    assert TOO_MANY in run.err.splitlines()


def test_send_records_the_row_invalid_and_sends_everyone_else(
        project: Path, run_cli: RunCli) -> None:
    (project / "lists/subscribers.csv").write_text(HEADER + SHIFTED + FINE, encoding="utf-8")
    send = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert send.code == 0, send.err
    assert TOO_MANY in send.err
    assert "sent 1, failed 0, pending 0, unknown 0, suppressed 0, invalid 1" in send.out
    sent = list((project / "outbox/new").iterdir())
    assert len(sent) == 1 and b"To: Ana <ana@example.org>" in sent[0].read_bytes()


def test_empty_cells_past_the_header_and_missing_cells_are_fine(tmp_path: Path) -> None:
    """A separator at the end of a line, or a spreadsheet's padding, moves and drops
    nothing; a row that stops early leaves its last values empty, as spreadsheets write it."""
    path = tmp_path / "subscribers.csv"
    path.write_text(HEADER + "a@example.org,Ana,,\nb@example.org,Bo,Caritas, ,\n"
                    "c@example.org,Cy\n", encoding="utf-8")
    assert _rows(path) == [(2, "a@example.org", "Ana", {"organisation": ""}),
                           (3, "b@example.org", "Bo", {"organisation": "Caritas"}),
                           (4, "c@example.org", "Cy", {})]


def test_a_padded_header_counts_up_to_its_last_named_column(tmp_path: Path) -> None:
    """A spreadsheet pads the header with empty cells too: a value under one of them has no
    column, and the row's values are in the wrong ones."""
    path = tmp_path / "subscribers.csv"
    path.write_text("email;name;organisation;;\n" + SHIFTED.replace(",", ";").rstrip() + ";\n"
                    "a@example.org;Ana;Caritas;;\n", encoding="utf-8")
    assert _rows(path) == [
        (2, "z1@example.org", f"{path}:2: 4 values but the header has 3 named columns (put a "
         "value with a semicolon in double quotes, or name the extra column in the header)"),
        (3, "a@example.org", "Ana", {"organisation": "Caritas"})]


def test_the_list_reader_child_refuses_the_same_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "subscribers.csv"
    path.write_text(HEADER + (FINE + SHIFTED + "a@example.org,Ana,,\n") * 20, encoding="utf-8")
    monkeypatch.setattr(list_worker, "PARALLEL_BYTES", 1 << 60)
    here = _rows(path)
    monkeypatch.setattr(list_worker, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(list_worker, "_BATCH", 7)
    assert _rows(path) == here
    assert sum(len(row) == 3 for row in here) == 20  # each shifted row, a problem


def test_import_skips_the_row_with_a_value_past_the_header(
        project: Path, run_cli: RunCli) -> None:
    (project / "new.csv").write_text(HEADER + SHIFTED + FINE, encoding="utf-8")
    run = run_cli("subscribers", "import", "new.csv", "--list", "subscribers")
    assert run.code == 0, run.err
    assert ("new.csv:2: skipped: 4 values but the header has 3 columns (put a value with a "
            "comma in double quotes, or name the extra column in the header)") in run.err
    text = (project / "lists/subscribers.csv").read_text(encoding="utf-8")
    assert "z1@example.org" not in text and "Antonín" not in text
    assert text.endswith("ana@example.org,Ana,,Caritas\n")
