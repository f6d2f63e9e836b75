"""``subscribers add`` writes a value into a YAML list so that every YAML reader reads it back
as the same text, as docs/guide/subscribers.md says (``no``, ``1e3``, ``#1`` are quoted).
PyYAML reads ``1e3`` and ``y`` as text, but a YAML 1.2 reader takes ``1e3`` for the number
1000 and a YAML 1.1 one takes ``y`` for true: other tools open list files too."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import RunCli
from mirage_mailer.project.list_edit import _scalar

LIST = ("subscribers:\n"
        "  - email: anna@example.org\n"
        "    name: Anna Schmidt\n")


def test_add_quotes_a_number_only_other_yaml_readers_see(project: Path, run_cli: RunCli) -> None:
    path = project / "lists/partners.yaml"
    path.write_text(LIST, encoding="utf-8")
    added = run_cli("subscribers", "add", "partners", "bo@example.org", "organisation=1e3",
                    "team=Red Cross")
    assert added.code == 0, added.err
    assert path.read_text(encoding="utf-8") == LIST + (
        "  - email: bo@example.org\n"
        "    organisation: \"1e3\"\n"
        "    team: Red Cross\n")


@pytest.mark.parametrize("value", ["1e3", "1E+3", "1.5e-3", "0o17", "0x1F", "y", "N", "On",
                                   "no", "10.5", "1000"])
def test_values_another_yaml_reader_takes_for_numbers_or_booleans_are_quoted(
        value: str) -> None:
    written = _scalar(value)
    assert written == f'"{value}"'
    assert yaml.safe_load(written) == value


@pytest.mark.parametrize("value", ["Red Cross", "de", "3M", "e3", "1e3x", "yes please",
                                   "Anna-Lena"])
def test_text_stays_plain(value: str) -> None:
    assert _scalar(value) == value
