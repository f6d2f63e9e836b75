"""validate's pass by columns says exactly what the planner's pass says.

A long CSV list is read a block at a time into ``Columns`` (``project/list_columns.py``),
duplicates are found from hash columns at the end (``project/duplicates.py``), and the
figures are counted (``services/list_scan.py``). These tests hold each piece to the way it
replaces: the rows ``lists._iter_csv`` gives, a dict of first rows, and the whole output of
``validate`` through the planner, on lists made to trip every case (blocks and batches
made tiny so that every line ends up at a boundary somewhere).
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE
from mirage_mailer.project import list_columns
from mirage_mailer.project.duplicates import Duplicates
from mirage_mailer.project.lists import RowProblem, Subscriber, _iter_csv
from mirage_mailer.util.errors import InputError

HEADER = "email,name,lang,organisation"


def _hostile_rows(seed: int, count: int) -> list[str]:
    """Rows of every kind: duplicates far apart (case, spaces, +tags), IDN, bad addresses
    and languages, header breakers, blank, short and long rows."""
    rnd = random.Random(seed)
    earlier: list[str] = []
    rows = []
    for n in range(count):
        pick = rnd.random()
        lang = rnd.choice(["en", "EN", "fr", "", " fr ", "pt-BR", "el"])
        name = rnd.choice(["Maria", "Zoë Łukasz", "", "Tab\there"])
        if pick < 0.04:
            email = rnd.choice(["bad@@example.org", "no-at.example.org", "", "a b@example.org",
                                "x" * 70 + "@example.org", "a@-bad-.org", "info@localhost",
                                ".dot@example.org"])
        elif pick < 0.05:
            email, lang = f"l{n}@example.org", rnd.choice(["xx", "english", "zz-ZZ"])
        elif pick < 0.12 and earlier:
            first = rnd.choice(earlier)
            email = rnd.choice([first, first.upper(), f" {first} "])
        elif pick < 0.14:
            email = rnd.choice([f"hans{n}@bücher.de", f"Info@Example{n % 5}.org",
                                "POSTMASTER@example.org", f"o'neil{n}@example.ie"])
        elif pick < 0.15:
            email = f"e{n}@example.org"
            name = rnd.choice(["=?utf-8?q?X=0D=0ASubject:_PWNED?=", "a\u2028b", "c\x85d",
                               "\x01ctl", "ok=?x"])
        else:
            email = f"p{n}@{rnd.choice(['Example.org', 'gmail.com', f'org{n % 40}.eu'])}"
        if email and rnd.random() < 0.05:
            earlier.append(email.strip())
        row = f"{email},{name},{lang},Org {n}"
        shape = rnd.random()
        if shape < 0.01:
            row = ""
        elif shape < 0.02:
            row = ",,,"
        elif shape < 0.03:
            row = f"{email},{name}"
        elif shape < 0.04:
            row += ",extra"
        rows.append(row)
    return rows


def _lines(rows: list[str]) -> bytes:
    return (HEADER + "\n" + "\n".join(rows) + "\n").encode()


VARIANTS: dict[str, Callable[[list[str]], bytes]] = {
    "plain": _lines,
    "crlf and BOM": lambda rows: ("\ufeff" + HEADER + "\r\n" + "\r\n".join(rows)).encode(),
    "quoted newline late": lambda rows: _lines(
        [*rows[:250], 'q@example.org,"Two\nlines",fr,"Org, quoted"', *rows[250:]]),
    "lone CR": lambda rows: _lines([*rows[:200], "cr@x.org,a\rb,en,y", *rows[200:]]),
    "not UTF-8": lambda rows: (HEADER + "\n" + "\n".join(rows[:300]) + "\n").encode()
    + b"u@example.org,\xff,en,y\n" + ("\n".join(rows[300:]) + "\n").encode(),
    "quote never closed": lambda rows: (HEADER + "\n" + "\n".join(rows) + '\nz@x.org,"open,en'
                                        ).encode(),
    "long cell": lambda rows: _lines(
        [*rows[:100], "long@example.org," + "n" * 140_000 + ",en,y", *rows[100:]]),
}


def _flat(items: list[object]) -> list[object]:
    """Rows as comparable tuples: what validate uses of a good row, a problem as it is."""
    out: list[object] = []
    for item in items:
        if isinstance(item, Subscriber):
            out.append((item.email, item.line, item.lang, tuple(item.fields)))
        else:
            out.append(item)
    return out


def _by_iter_csv(path: Path) -> list[object]:
    out: list[object] = []
    try:
        out.extend(_iter_csv(path, "subscribers"))
    except InputError as exc:
        out.append(("fatal", str(exc)))
    return _flat(out)


def _by_columns(path: Path) -> list[object]:
    rows: list[object] = []
    problems: list[object] = []
    try:
        for columns in list_columns.iter_columns(path, "subscribers"):
            emails = columns.emails.split("\n") if len(columns) else []
            for email, line, lang, shape in zip(emails, columns.lines, columns.langs,
                                                columns.shape_of, strict=True):
                rows.append((email, line, columns.languages[lang], columns.shapes[shape]))
            problems.extend(columns.problems)
    except InputError as exc:
        problems.append(("fatal", str(exc)))
    return rows + problems


@pytest.mark.parametrize("block", [37, 1 << 20])
@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANTS.keys())
def test_columns_hold_the_rows_the_csv_reader_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str, block: int) -> None:
    """Good rows (address, line, language, fields), then row problems in file order, then
    the fatal error, as ``_iter_csv`` gives them: a block pass, a line read alone, or the
    exact reader taking over from the top, wherever a block or a batch ends."""
    monkeypatch.setattr(list_columns, "BLOCK", block)
    monkeypatch.setattr(list_columns, "BATCH", 7)
    path = tmp_path / "subscribers.csv"
    path.write_bytes(VARIANTS[variant](_hostile_rows(len(variant), 600)))
    expected = _by_iter_csv(path)
    good = [r for r in expected if isinstance(r, tuple) and r[0] != "fatal"]
    rest = [r for r in expected if not (isinstance(r, tuple) and r[0] != "fatal")]
    assert any(isinstance(r, RowProblem) for r in rest)
    got = _by_columns(path)
    if isinstance(rest[-1], tuple):  # a fatal error
        # the same error; the exact reader's 8 KiB read-ahead may stop it some rows before
        # the block pass at a byte that is not UTF-8 (validate then prints the error alone)
        assert got[-1] == rest[-1]
        got_good = [r for r in got if isinstance(r, tuple) and r[0] != "fatal"]
        got_rest = [r for r in got if not (isinstance(r, tuple) and r[0] != "fatal")]
        assert got_good[:len(good)] == good
        assert got_rest[:len(rest) - 1] == rest[:-1]
    else:
        assert got == good + rest


def test_most_lines_take_the_block_pass(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The common shape is settled by the block pass; csv reads only the other lines."""
    read_alone: list[int] = []
    line = list_columns._BlockRows.line

    def counted(self: list_columns._BlockRows, full: str, number: int) -> bool:
        read_alone.append(number)
        return line(self, full, number)

    monkeypatch.setattr(list_columns._BlockRows, "line", counted)
    path = tmp_path / "subscribers.csv"
    path.write_text(HEADER + "\n" + "".join(f"p{n}@example{n % 9}.org,P {n},en,Org\n"
                                            for n in range(2_000)) + "bad@@x.org,B,en,O\n",
                    encoding="utf-8")
    good = sum(len(c) for c in list_columns.iter_columns(path, "subscribers"))
    assert good == 2_000
    assert read_alone == [2_002]


COLLIDING: dict[str, Callable[[str], int]] = {
    "one hash for all": lambda key: 0,
    "three hashes": lambda key: len(key) % 3,
    "at the edges": lambda key: (-(1 << 63), (1 << 63) - 1, 0)[len(key) % 3],
    "the real one": hash,
}


@pytest.mark.parametrize("hasher", COLLIDING.values(), ids=COLLIDING.keys())
def test_duplicates_are_those_a_dict_of_first_rows_finds(
        hasher: Callable[[str], int]) -> None:
    """Every later row of an address (compared as ``email_key``) and its first row, in
    pass order, whatever the hashes share; and which other keys some row has."""
    rnd = random.Random(5)
    universe = [f"Reader{n}@Example.org" for n in range(400)] + ["zoë@παράδειγμα.ελ",
                                                                   "\ud800@x.org"]
    found = Duplicates(hasher=hasher)
    first: dict[str, int] = {}
    expected = []
    code = 0
    try:
        for _ in range(20):
            emails = [rnd.choice(universe) for _ in range(rnd.randrange(0, 120))]
            if rnd.random() < 0.5:
                emails = [e.upper() if rnd.random() < 0.3 else e for e in emails]
            codes = list(range(code, code + len(emails)))
            code += len(emails)
            found.add(emails, codes, [c * 7 for c in codes])
            for email, c in zip(emails, codes, strict=True):
                key = email.strip().lower()
                if key in first:
                    expected.append((c, email, first[key], c * 7))
                else:
                    first[key] = c
        others = ["reader1@example.org", "nobody@example.org", "zoë@παράδειγμα.ελ"]
        duplicates, met = found.finish(others)
    finally:
        found.close()
    assert [tuple(d) for d in duplicates] == expected
    assert met == {key for key in others if key in first}


RUNNER = """
import sys
from mirage_mailer.project import list_columns, list_worker
from mirage_mailer.services import list_scan
mode = sys.argv.pop(1)
if mode == "planner":  # the way every row was decided before
    list_scan._counts_suffice = lambda *args: False
else:  # columns, read by a child, in tiny blocks and batches
    list_worker.PARALLEL_BYTES = 0
    list_columns.BLOCK, list_columns.BATCH = 53, 5
from mirage_mailer.__main__ import main
sys.argv[0] = "mirage-mailer"
main()
"""


def _validate(project: Path, mode: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-c", RUNNER, mode, "validate", SAMPLE_ISSUE],
                          cwd=project, capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def test_validate_says_what_the_planner_says(project: Path) -> None:
    """The whole output of a real run, by columns read in a child, against the planner's
    pass: two lists (a CSV one and a YAML one sharing people), duplicates far apart, an
    invalid row and then its duplicate, every kind of bad row."""
    rows = _hostile_rows(13, 880)
    rows[10] = "twice@example.org,Bad,xx,Org"  # invalid first, then valid: not a duplicate
    rows[800] = "TWICE@example.org,Good,en,Org"
    rows[850] = "twice@example.org,Again,fr,Org"
    (project / "lists/subscribers.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n",
                                                   encoding="utf-8")
    (project / "lists/members.yaml").write_text(
        "subscribers:\n" + "".join(f"  - email: {e}\n    lang: {lang}\n" for e, lang in [
            ("maria@example.org", "en"), ("MARIA@example.org", "fr"), ("twice@example.org", "en"),
            ("bad@@example.org", "en"), ("y@bücher.de", "de"), ("p901@gmail.com", "el")]),
        encoding="utf-8")
    issue = project / SAMPLE_ISSUE / "issue.yaml"
    issue.write_text(issue.read_text(encoding="utf-8").replace(
        "list: subscribers", "list: [subscribers, members]"), encoding="utf-8")
    by_columns = _validate(project, "columns")
    assert by_columns == _validate(project, "planner")
    code, out, err = by_columns
    assert code == 2
    assert "duplicate address TWICE@example.org" not in err
    assert "lists/subscribers.csv:852: warning: duplicate address twice@example.org (first " \
           "at lists/subscribers.csv:802)" in err
    assert "lists/members.yaml:" in err and " recipient(s) (en: " in out
