"""validate reads each list once: the plan's pass also finds row problems and duplicates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE
from mirage_mailer.project.list_columns import Columns
from mirage_mailer.project.lists import RowProblem, SubjectOf, Subscriber, iter_list
from mirage_mailer.services.list_scan import list_columns
from mirage_mailer.services.projects import validate
from mirage_mailer.store import Store


def _append(project: Path, text: str) -> None:
    with (project / "lists/subscribers.csv").open("a", encoding="utf-8") as handle:
        handle.write(text)


def test_each_list_is_read_once(in_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[Path] = []

    def counted(path: Path, name: str, *,
                subject: SubjectOf | None = None) -> Iterator[Subscriber | RowProblem]:
        reads.append(path)
        return iter_list(path, name, subject=subject)

    def columns(path: Path, name: str) -> Iterator[Columns]:
        reads.append(path)
        return list_columns(path, name)

    monkeypatch.setattr("mirage_mailer.services.loader.iter_list", counted)
    monkeypatch.setattr("mirage_mailer.services.list_scan.list_columns", columns)
    _append(in_project, "maria.georgiou@EXAMPLE.org,Maria again,en,\nbad@@example.org,,en,\n")
    found = validate(None, Path(SAMPLE_ISSUE))
    assert [p.name for p in reads] == ["subscribers.csv"]
    assert [p.line for p in found.errors] == [8]
    assert [p.line for p in found.warnings if "duplicate" in p.message] == [7]
    assert found.plan.to_send == 5


def test_problems_are_those_of_the_lists_only(in_project: Path) -> None:
    """Web sign-ups ride in the plan's pass but are no rows of a file: a sign-up that a list
    also holds is no duplicate warning; a row problem of an address with a good row elsewhere
    is still reported; row problems come in file order."""
    _append(in_project, "bad@@example.org,,en,\nsofia.rossi@example.org,,xx,\n"
            "Maria.Georgiou@example.org,,en,\n")
    with Store(in_project / ".mirage/tracking.sqlite") as store:
        store.add_pending_subscriber("subscribers", "PETER.novak@example.org", name=None,
                                     lang=None, subject="s1", consent_text="yes",
                                     consent_version="1", source="form")
        store.add_pending_subscriber("subscribers", "web.only@example.org", name=None,
                                     lang="fr", subject="s2", consent_text="yes",
                                     consent_version="1", source="form")
        assert store.confirm_subscriber("subscribers", "s1") is not None
        assert store.confirm_subscriber("subscribers", "s2") is not None
    found = validate(None, Path(SAMPLE_ISSUE))
    assert [(p.path, p.line) for p in found.errors] == [
        ("lists/subscribers.csv", 7), ("lists/subscribers.csv", 8)]
    assert [str(p) for p in found.warnings if "duplicate" in p.message] == [
        "lists/subscribers.csv:9: warning: duplicate address Maria.Georgiou@example.org "
        "(first at lists/subscribers.csv:2) (only the first is sent to; delete this row)"]
    assert found.plan.to_send == 6  # five list readers and the web-only sign-up


def test_a_damaged_store_still_reports_the_rows(in_project: Path) -> None:
    state = in_project / ".mirage"
    state.mkdir(exist_ok=True)
    (state / "tracking.sqlite").write_bytes(b"not a database" * 100)
    _append(in_project, "bad@@example.org,,en,\nmaria.georgiou@example.org,,en,\n")
    found = validate(None, Path(SAMPLE_ISSUE))
    assert found.store_problems
    assert [p.line for p in found.errors] == [7]
    assert [p.line for p in found.warnings if "duplicate" in p.message] == [8]
    assert found.plan.to_send == 5
