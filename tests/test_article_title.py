"""An article's title is required text: empty or blank is an error, never an empty heading."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.project.content import load_issue
from mirage_mailer.util.errors import InputError

ARTICLE = f"{SAMPLE_ISSUE}/partners-meeting.md"
TITLE = "title: MIraGE partners' meeting, October 2021"


@pytest.mark.parametrize(("line", "expected"), [
    ('title: ""', "partners-meeting.md:2: 'title' is empty (write the article's title after "
                  "'title:')"),
    ('title: "   "', "partners-meeting.md:2: 'title' is empty (write the article's title "
                    "after 'title:')"),
    *[(f'title: "{invisible}"', "partners-meeting.md:2: 'title' is empty (write the "
                                "article's title after 'title:')")
      for invisible in (r"\u200b", r"\u200b\u200b", r"\ufeff", r"\u2060", r" \u00ad\u200d")],
    ("title:", "partners-meeting.md:2: 'title' must be text (write the article's title after "
               "'title:')"),
    ("title: [2021, 2022]", "partners-meeting.md:2: 'title' must be text (put the article's "
                            "title in quotes after 'title:')"),
])
def test_a_missing_title_is_an_error_with_its_fix(project: Path, line: str,
                                                  expected: str) -> None:
    edit(project / ARTICLE, TITLE, line)
    with pytest.raises(InputError) as caught:
        load_issue(project / SAMPLE_ISSUE, "en")
    assert [str(p).rsplit("/", 1)[-1] for p in caught.value.problems] == [expected]


def test_an_empty_title_stops_validate_and_send(project: Path, run_cli: RunCli) -> None:
    edit(project / ARTICLE, TITLE, 'title: " "')
    for args in (("validate", SAMPLE_ISSUE), ("send", SAMPLE_ISSUE, "--yes")):
        result = run_cli(*args)
        assert result.code == 2, result.err
        assert f"{ARTICLE}:2: 'title' is empty" in result.err
    assert not (project / "outbox").exists() or not any((project / "outbox").rglob("*.*"))
