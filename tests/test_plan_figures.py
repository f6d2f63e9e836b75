"""``validate``, the dry run and the real send account for every list row once.

An outside test found 8 rows reported as 6 errors by ``validate``, ``invalid 3`` by the dry
run and the send, and 2 sent: three row problems (a second bad row of one address, and bad
rows of addresses that have a good row too) were in no figure, and a real send never named
its duplicate rows."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli

ROWS = ["bad,One,en", "bad,Two,en", ",E1,en", ",E2,en", "q@example.org,Q,xx",
        "q@example.org,Q2,en", "r@example.org,R,en", "R@example.org,R2,xx",
        "s@example.org,S,en", "S@example.org,S again,en"]


def figure(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else 0


def test_every_row_is_in_exactly_one_figure(project: Path, run_cli: RunCli) -> None:
    (project / "lists/subscribers.csv").write_text("email,name,lang\n" + "\n".join(ROWS) + "\n")
    checked = run_cli("validate", SAMPLE_ISSUE)
    errors = figure(r"(\d+) error\(s\)", checked.out)
    dry = run_cli("send", SAMPLE_ISSUE, "--dry-run")
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert dry.code == 0 and sent.code == 0, (dry.err, sent.err)
    also = "also not sent: 1 duplicate row(s), 3 row problem(s) whose address has another row"
    assert also in dry.out and also in sent.out, (dry.out, sent.out)
    invalid = figure(r"invalid (\d+)", sent.out)
    assert errors == invalid + 3 == 6
    assert figure(r"sent (\d+)", sent.out) + invalid + 1 + 3 == len(ROWS)
    again = run_cli("send", SAMPLE_ISSUE, "--yes")  # nothing left: the same accounting
    assert "nothing to send" in again.out and also in again.out, again.out
