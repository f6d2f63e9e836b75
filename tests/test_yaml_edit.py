"""``subscribers add``, ``remove`` and ``import`` edit a YAML list in one read of it, in flat
memory, and still refuse an edit that would change an entry they are not about."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import RunCli
from mirage_mailer.project import list_edit, lists, yaml_edit, yamlrows
from mirage_mailer.project.config import load_settings
from mirage_mailer.project.yamlsrc import LineDict
from mirage_mailer.services import roster_edit, roster_import
from mirage_mailer.util.errors import InputError

pytestmark = pytest.mark.skipif(not yamlrows.LIBYAML, reason="PyYAML without libyaml")

ENTRY = "  - email: user{n}@example.org\n    name: Reader {n}\n    lang: fr\n"


def _list(path: Path, count: int) -> str:
    text = "# partners\nsubscribers:\n" + "".join(ENTRY.format(n=n) for n in range(count))
    path.write_text(text, encoding="utf-8")
    return text


@pytest.fixture
def entries_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many list entries were read (a mapping is one): each pass over the list adds
    its length, whichever reader makes it."""
    count = [0]
    real = LineDict.__init__

    def counted(self: LineDict) -> None:
        count[0] += 1
        real(self)

    monkeypatch.setattr(LineDict, "__init__", counted)
    yield count


def test_add_reads_the_list_once(in_project: Path, entries_read: list[int]) -> None:
    """It read the list four times: for its fields, for the address, to edit, to check."""
    path = in_project / "lists/partners.yaml"
    text = _list(path, 300)
    settings = load_settings(in_project / "mirage.yaml")
    entries_read[0] = 0
    added = roster_edit.add_reader(settings, "partners", "new@example.org", name="New",
                                   lang=None, fields={"org": "Red Cross"})
    assert entries_read[0] <= 300 + 5, entries_read[0]
    assert added.notes == ["no other row has 'org': check the spelling (the row is added "
                           "with it)"]
    assert path.read_text(encoding="utf-8") == text + (
        "  - email: new@example.org\n    name: New\n    org: Red Cross\n")


def test_remove_and_import_read_the_list_once(in_project: Path, tmp_path: Path,
                                              entries_read: list[int]) -> None:
    path = in_project / "lists/partners.yaml"
    text = _list(path, 300)
    settings = load_settings(in_project / "mirage.yaml")
    entries_read[0] = 0
    removed = roster_edit.remove_reader(settings, "partners", "USER7@example.org")
    assert removed.lines == [3 + 7 * 3]
    assert entries_read[0] <= 300 + 5, entries_read[0]
    assert path.read_text(encoding="utf-8") == text.replace(ENTRY.format(n=7), "")

    source = tmp_path / "new.csv"
    source.write_text("email,name\nuser8@example.org,Again\nfresh@example.org,Fresh\n",
                      encoding="utf-8")
    entries_read[0] = 0
    result = roster_import.import_file(settings, source, "partners", dry_run=False,
                                       report=lambda skipped: None)
    assert (result.added, result.skipped) == (1, 1)
    assert entries_read[0] <= 299 + 5, entries_read[0]
    assert path.read_text(encoding="utf-8").endswith(
        ENTRY.format(n=299) + "  - email: fresh@example.org\n    name: Fresh\n")


def test_a_save_between_the_read_and_the_edit_is_read_again(tmp_path: Path) -> None:
    """The caller's read is used only for the very file it read (the lock keeps our own
    edits out, not a person's editor)."""
    path = tmp_path / "partners.yaml"
    _list(path, 3)
    shape = yamlrows.Shape()
    assert len(list(lists.iter_list(path, "partners", shape=shape))) == 3
    with path.open("a", encoding="utf-8") as handle:
        handle.write("  - email: late@example.org\n    note: |+\n      kept\n\n")
    with pytest.raises(InputError, match="could not be edited without changing other"):
        list_edit.append_rows(path, [{"email": "new@example.org"}], shape=shape)
    assert path.read_text(encoding="utf-8").endswith("kept\n\n")
    path.write_text(path.read_text(encoding="utf-8").replace("|+", "|"), encoding="utf-8")
    list_edit.append_rows(path, [{"email": "new@example.org"}], shape=shape)
    assert path.read_text(encoding="utf-8").endswith(
        "  - email: late@example.org\n    note: |\n      kept\n"
        "  - email: new@example.org\n\n")  # after the last line that is not blank


@pytest.mark.parametrize(("text", "edit"), [
    # the new entry would take the blank lines a '|+' value keeps
    ("subscribers:\n  - email: a@example.org\n    note: |+\n      kept\n\n",
     lambda p: list_edit.append_rows(p, [{"email": "b@example.org"}])),
    # the kept entry before a deleted one would gain its blank lines
    ("subscribers:\n  - email: a@example.org\n    note: |+\n      kept\n\n"
     "  - email: b@example.org\n\n  - email: c@example.org\n",
     lambda p: list_edit.remove_rows(p, "b@example.org")),
    # a '#' line inside a block value is text, not a comment
    ("subscribers:\n  - email: a@example.org\n    note: |\n      one\n      # two\n",
     lambda p: list_edit.append_rows(p, [{"email": "b@example.org"}])),
])
def test_an_edit_that_changes_another_entry_is_refused(tmp_path: Path, text: str,
                                                        edit: Any) -> None:
    path = tmp_path / "partners.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as refused:
        edit(path)
    assert str(refused.value) == (
        f"{path}:1: the list could not be edited without changing other entries; nothing "
        "was written (edit this file by hand)")
    assert path.read_text(encoding="utf-8") == text
    assert [p.name for p in tmp_path.iterdir()] == ["partners.yaml"]


def _peak(path: Path, key: str) -> int:
    tracemalloc.start()
    try:
        list_edit.remove_rows(path, key)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_edit_does_not_hold_the_list(tmp_path: Path) -> None:
    small, large = tmp_path / "small.yaml", tmp_path / "large.yaml"
    _list(small, 1500)  # past the size of the pieces the file is read in
    _list(large, 6000)
    _peak(small, "user1@example.org")  # caches warm
    assert _peak(large, "user2@example.org") < _peak(small, "user3@example.org") * 1.5 + 100_000


def test_a_date_that_is_no_date_is_written_quoted(project: Path, run_cli: RunCli) -> None:
    """It made PyYAML's loader raise inside the quoting: exit 70, an internal error."""
    path = project / "lists/partners.yaml"
    path.write_text("subscribers:\n  - email: a@example.org\n", encoding="utf-8")
    added = run_cli("subscribers", "add", "partners", "b@example.org", "since=2021-13-45",
                    "day=2021-10-29", "note=Red Cross")
    assert added.code == 0, added.err
    assert path.read_text(encoding="utf-8").endswith(
        '  - email: b@example.org\n    since: "2021-13-45"\n    day: "2021-10-29"\n'
        "    note: Red Cross\n")


@pytest.mark.parametrize("word", ["Red Cross", "yes", "No", "off", "~", "null", "12", "0x1F",
                                  "1.5", "1_000", "2021-10-29", "2021-10-29 10:00", "10:30",
                                  "1:20:30", ".inf", "a@example.org", "Zoë", "e3", "3M"])
def test_a_word_is_typed_as_the_loader_types_it(word: str) -> None:
    assert list_edit._typed_as_text(word) == (yaml.safe_load(word) == word)


def _import_peak(path: Path, count: int) -> int:
    rows = ({"email": f"new{n}@example.org", "name": f"New {n}", "lang": "de"}
            for n in range(count))
    tracemalloc.start()
    try:
        list_edit.append_rows(path, rows)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_import_is_checked_a_piece_at_a_time(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The new entries are read back in pieces (each from an entry's start), so a long
    import into a YAML list does not hold them all; the file is what one piece would give."""
    monkeypatch.setattr(yaml_edit, "_PIECE_LINES", 300)
    small, large = tmp_path / "small.yaml", tmp_path / "large.yaml"
    for path in (small, large):
        path.write_text("subscribers:\n  - email: a@example.org\n    note: |\n      kept\n"
                        "# end\n", encoding="utf-8")
    _import_peak(small, 1000)
    assert _import_peak(large, 4000) < _import_peak(small, 1000) * 1.5 + 100_000
    text = large.read_text(encoding="utf-8")
    assert text.startswith("subscribers:\n  - email: a@example.org\n    note: |\n      kept\n"
                           "  - email: new0@example.org\n    name: New 0\n    lang: de\n")
    assert text.endswith("  - email: new3999@example.org\n    name: New 3999\n    lang: de\n"
                         "# end\n")
    monkeypatch.setattr(yaml_edit, "_PIECE_LINES", 10**9)
    whole = tmp_path / "whole.yaml"
    whole.write_text(small.read_text(encoding="utf-8").split("  - email: new0@", 1)[0]
                     + "# end\n", encoding="utf-8")
    list_edit.append_rows(whole, ({"email": f"new{n}@example.org", "name": f"New {n}",
                                   "lang": "de"} for n in range(4000)))
    assert whole.read_text(encoding="utf-8") == text
