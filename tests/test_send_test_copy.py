"""``send --to``: a test copy that does not go says why. Nothing is recorded for a test copy,
so the relay's reply was kept nowhere: "failed 1" and exit 1, and the officer could not tell
a mistyped address from a relay that refuses the sender. A real CLI against a real SMTP
server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, use_relay
from support.faults import refuse
from support.smtp_sink import SmtpSink


@pytest.mark.smtp_fault(rules=[refuse("nobody@example.org", "550 5.1.1 No such user here")])
def test_a_refused_test_copy_says_the_relay_reply(project: Path, run_cli: RunCli,
                                                  sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    result = run_cli("send", SAMPLE_ISSUE, "--to", "nobody@example.org",
                     "--to", "officer@example.org")
    assert result.code == 1, result.err
    assert ("warning: test copy to nobody@example.org: refused: 550 5.1.1 No such user here"
            ) in result.err.splitlines(), result.err
    assert "officer@example.org" not in result.err
    assert result.out.strip().endswith(
        "test copy sent to 1 of 2 address(es), failed 1, deferred 0; nothing recorded")
