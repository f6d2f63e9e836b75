"""``send_at`` and ``run-due --now`` in RFC 3339's lower-case letters (``t`` between date and
time, ``z`` for UTC, 5.6 allows both): a ``z`` was refused as "not an ISO 8601 time" by
validate and by run-due, while ``Z`` was read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.project.issue_values import parse_send_at


@pytest.mark.parametrize("written", ["2021-10-29T07:00:00Z", "2021-10-29T07:00:00z",
                                     "2021-10-29t07:00:00z", "2021-10-29 07:00:00z",
                                     "2021-10-29t09:00:00+02:00"])
def test_each_letter_case_is_the_same_moment(written: str) -> None:
    assert parse_send_at(written) == datetime(2021, 10, 29, 7, tzinfo=UTC)


@pytest.mark.parametrize("written", ["2021-10-29T07:00:00", "2021-10-29T07:00:00zz",
                                     "z", "", "2021-10-29T07:00:00x"])
def test_no_zone_or_a_wrong_one_is_still_refused(written: str) -> None:
    assert parse_send_at(written) is None


def test_run_due_reads_lower_case_letters(project: Path, run_cli: RunCli) -> None:
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: '2021-10-29t07:00:00z'")
    assert run_cli("validate", SAMPLE_ISSUE).code == 0
    early = run_cli("run-due", "--now", "2021-10-29t06:59:00z")
    assert early.code == 0 and "nothing due" in early.out, early.err
    due = run_cli("run-due", "--now", "2021-10-29t07:00:00z")
    assert due.code == 0, due.err
    assert len(list((project / "outbox" / "new").iterdir())) == 5
