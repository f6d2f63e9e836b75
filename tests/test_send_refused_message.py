"""A relay that refuses the message, not the recipient: the run stops, nobody is burnt.

A message over the relay's size limit, or one that a content filter refuses after DATA, is
refused for every subscriber alike. Recording each as ``failed`` would burn the whole list
(and a rerun after fixing the issue would skip them all), so the run stops with exit 3 and
they stay pending, as for a refused sender (DESIGN.md). A refusal that is one recipient's
still fails that recipient. CLI subprocesses against aiosmtpd on 127.0.0.1 and a real SQLite
store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, report, statuses, use_relay
from support.smtp_sink import SmtpSink, refuse, refuse_message

SAMPLE = ["maria.georgiou@example.org", "jean.dupont@example.org", "amina.haddad@example.org",
          "peter.novak@example.org", "sofia.rossi@example.org"]
KEPT = "nothing was lost: 5 recipients stay pending, run the same command again to resume"


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning:" not in line]


@pytest.mark.smtp_fault(size_limit=5000)
def test_a_message_over_the_advertised_size_is_said_before_anything_is_sent(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    use_relay(project, sink.url, timeout=5)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 3, result.err
    [line] = _errors(result.err)
    assert "the message is too big for the relay: the message is " in line
    assert "bytes and the relay takes at most 5,000 (its SIZE)" in line
    assert "make the issue smaller" in line and KEPT in line
    assert sink.mail_times == []  # not even a MAIL FROM
    assert set(statuses(run_cli).values()) == {"pending"}


def test_552_at_mail_stops_the_run_and_a_rerun_sends_everyone(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    reply = "552 5.3.4 message size exceeds fixed limit"  # a SIZE it did not advertise
    sink.rules.append(refuse_message(reply, stage="MAIL"))
    use_relay(project, sink.url, timeout=5)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 3, result.err
    [line] = _errors(result.err)
    assert f"the message is too big for the relay: answered {reply}" in line and KEPT in line
    assert set(statuses(run_cli).values()) == {"pending"}
    sink.rules.clear()  # the relay's limit raised (or the issue made smaller)
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    assert sorted(sink.recipients()) == sorted(SAMPLE)


def test_a_content_filter_refusing_every_message_stops_the_run_with_everyone_pending(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    sink.rules.append(refuse_message("554 5.6.0 content rejected"))
    use_relay(project, sink.url, timeout=5)
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: 1")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 3, result.err
    [line] = _errors(result.err)
    assert ("the relay gave 3 different recipients in a row the same refusal after the end "
            "of DATA and accepted no message: 554 5.6.0 content rejected") in line
    assert "it may be refusing the message itself" in line and KEPT in line
    data = report(run_cli)
    assert data["counts"]["pending"] == 5 and data["counts"]["failed"] == 0  # type: ignore[index]
    assert sink.received == []
    sink.rules.clear()  # the issue changed, or the filter fixed
    again = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert again.code == 0, again.err
    assert sorted(sink.recipients()) == sorted(SAMPLE)


def test_a_refusal_after_data_for_one_recipient_fails_that_one_only(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """Held back once (the relay had accepted nothing yet), tried again after the others
    went through, and refused again: then it is that recipient's, failed, exit 1."""
    sink.rules.append(refuse("maria.georgiou@example.org", "554 5.7.1 rejected by policy",
                             stage="DATA"))
    use_relay(project, sink.url, timeout=5)
    edit(project / "mirage.yaml", "  concurrency: 4", "  concurrency: 1")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 1, result.err
    states = statuses(run_cli)
    assert states.pop("maria.georgiou@example.org") == "failed"
    assert set(states.values()) == {"sent"}
