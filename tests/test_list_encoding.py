"""A list that is not UTF-8 is refused at the line that holds the bad byte.

The text layer decodes 8 KiB ahead of the row being read, so the reading's own line number
was the last row before that block: a Latin-1 byte on line 3 was reported at line 1, one on
line 40,002 at line 39,930."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.project.lists import _first_bad_line

LIST = "lists/subscribers.csv"


def reference(data: bytes) -> int | None:
    for number, line in enumerate(re.split(rb"\r\n|\r|\n", data), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return None


def test_the_bad_line_is_found_whatever_the_block_boundaries(tmp_path: Path) -> None:
    rng = random.Random(3)
    path = tmp_path / "l.csv"
    for _ in range(300):
        lines = [("é" * rng.randint(0, 30) + "x" * rng.randint(0, 300)).encode()
                 for _ in range(rng.randint(1, 300))]
        bad = rng.randint(0, len(lines))  # len(lines): a file without a bad byte
        if bad < len(lines):
            cut = rng.randint(0, len(lines[bad]))
            lines[bad] = (lines[bad][:cut] + rng.choice([b"\xe9", b"\xff", b"\xc3", b"\xe2\x82"])
                          + lines[bad][cut:])
        ends = [rng.choice([b"\n", b"\r\n", b"\r"]) for _ in lines]
        data = b"".join(line + end for line, end in zip(lines, ends, strict=True))
        data = data[:-len(ends[-1])] if rng.random() < 0.5 else data
        path.write_bytes(data)
        assert _first_bad_line(path, block=rng.choice([7, 64, 1 << 16])) == reference(data)


@pytest.mark.parametrize("bad_line", [3, 40_002])
def test_validate_names_the_line_with_the_latin1_byte(project: Path, run_cli: RunCli,
                                                      bad_line: int) -> None:
    rows = [b"email,name,lang"] + [f"p{k}@example.org,P{k},en".encode()
                                   for k in range(2, max(bad_line, 5) + 1)]
    rows[bad_line - 1] = b"jose@example.org,Jos\xe9,en"
    (project / LIST).write_bytes(b"\n".join(rows) + b"\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert f"{LIST}:{bad_line}: not valid UTF-8" in result.err, result.err


def test_a_yaml_list_that_is_not_utf8_gets_no_spreadsheet_hint(project: Path,
                                                               run_cli: RunCli) -> None:
    (project / LIST).unlink()
    (project / "lists/subscribers.yaml").write_bytes(
        b"subscribers:\n  - email: jose@example.org\n    name: Jos\xe9\n")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert "lists/subscribers.yaml:3: not valid UTF-8" in result.err, result.err
    assert "spreadsheet" not in result.err
