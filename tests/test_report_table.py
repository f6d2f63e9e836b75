"""The report table read where cron mails it or a pipe takes it: no terminal, so no width to
fit. Cut words ("suppres…") and an issue id broken over two lines cannot be read or grepped."""

from __future__ import annotations

import os

from helpers import SAMPLE_ISSUE, RunCli

ISSUE_ID = SAMPLE_ISSUE.rsplit("/", 1)[-1]


def test_a_piped_report_table_keeps_every_word_and_the_issue_id_whole(
        run_cli: RunCli) -> None:
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    for args in ((), (SAMPLE_ISSUE,)):
        result = run_cli("report", *args, env=env)
        assert result.code == 0, result.err
        assert "…" not in result.out, result.out
        for word in ("suppressed", "withdrawn", f"({ISSUE_ID})"):
            assert word in result.out, (word, result.out)
