"""A relay that refuses the session or the sender at RCPT TO: the run stops, nobody is burnt.

Postfix answers every recipient "554 5.7.1 <addr>: Relay access denied" when the client has
not logged in (a cron job without MIRAGE_SMTP_USER/MIRAGE_SMTP_PASSWORD), and "553 5.7.1
<news@...>: Sender address rejected: not owned by user bob" at RCPT for a sender the login
may not use. Recording each recipient ``failed`` burnt the whole list: the rerun with the
credentials fixed had nothing to send. These stop the run (exit 3, everyone pending), and a
relay that offers AUTH to a run without a login is said before anything is sent. Bad mailboxes
at the top of a list still fail, and the others get the issue. CLI subprocesses against
aiosmtpd on 127.0.0.1 and a real SQLite store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, report, statuses
from support.smtp_sink import Call, Reply, SmtpSink, refuse

SAMPLE = ["maria.georgiou@example.org", "jean.dupont@example.org", "amina.haddad@example.org",
          "peter.novak@example.org", "sofia.rossi@example.org"]
BAD = ["bad1@example.org", "bad2@example.org", "bad3@example.org"]
GOOD = ["good1@example.org", "good2@example.org", "good3@example.org"]
KEPT = "nothing was lost: 5 recipients stay pending, run the same command again to resume"
NO_LOGIN = {"MIRAGE_SMTP_USER": "", "MIRAGE_SMTP_PASSWORD": ""}  # cron without the login
LOGIN = {"MIRAGE_SMTP_USER": "bob", "MIRAGE_SMTP_PASSWORD": "pw"}
UNSET = ("MIRAGE_SMTP_USER and MIRAGE_SMTP_PASSWORD are not set: export them (see "
         "transport.username_env/password_env)")


class EveryRecipient:
    """Answer every RCPT TO with ``reply``, the recipient's address put in for {address}."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def __call__(self, call: Call) -> Reply | None:
        if call.stage != "RCPT":
            return None
        return Reply(self.reply.format(address=call.address))


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A submission relay that offers AUTH (bob/pw) without TLS, not requiring it for MAIL."""
    server = SmtpSink(auth=("bob", "pw"), auth_require_tls=False)
    with server.running_in_thread():
        yield server


@pytest.fixture
def relay(project: Path, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MIRAGE_SMTP_USER", raising=False)
    monkeypatch.delenv("MIRAGE_SMTP_PASSWORD", raising=False)
    config = project / "mirage.yaml"
    edit(config, "  url: maildir:outbox", f"  url: {sink.url}")
    edit(config, "  starttls: always", "  starttls: never")
    edit(config, "  rate_per_second: 10", "  rate_per_second: null")
    edit(config, "  timeout: 30", "  timeout: 5")
    edit(config, "  max_attempts: 5", "  max_attempts: 5\n  allow_plaintext_auth: true")
    return project


@pytest.fixture
def bad_first(relay: Path) -> Path:
    """The bad addresses first in the list, one connection: they are tried first, in order."""
    rows = ["email,name,lang"] + [f"{a},,en" for a in BAD + GOOD]
    (relay / "lists" / "subscribers.csv").write_text("\n".join(rows) + "\n", "utf-8")
    edit(relay / "mirage.yaml", "  concurrency: 4", "  concurrency: 1")
    return relay


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning:" not in line]


def _nobody_burnt(run_cli: RunCli, sink: SmtpSink, pending: int = 5) -> None:
    counts = report(run_cli)["counts"]
    assert counts["pending"] == pending and counts["failed"] == 0  # type: ignore[index]
    assert sink.received == []


def test_relay_access_denied_without_a_login_stops_and_the_rerun_with_it_sends_everyone(
        relay: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    sink.rules.append(EveryRecipient("554 5.7.1 <{address}>: Relay access denied"))
    first = run_cli("send", SAMPLE_ISSUE, "--yes", env=NO_LOGIN)
    assert first.code == 3, first.err
    lines = first.err.splitlines()
    [line] = _errors(first.err)
    warning = (f"warning: 127.0.0.1:{sink.port} offers AUTH, but this run does not log in: "
               f"{UNSET}")
    assert lines.index(warning) < lines.index(line)  # said before the stop, once
    assert lines.count(warning) == 1
    assert "the relay refuses to relay for this client (554 5.7.1 <" in line
    assert (f">: Relay access denied): the relay offers AUTH and this run does not log in: "
            f"{UNSET}; {KEPT}") in line
    _nobody_burnt(run_cli, sink)
    sink.rules.clear()  # logged in, the relay relays (the sink's rule cannot see the login)
    again = run_cli("send", SAMPLE_ISSUE, "--yes", env=LOGIN)
    assert again.code == 0, again.err
    assert "offers AUTH" not in again.err
    assert sorted(sink.recipients()) == sorted(SAMPLE)


def test_a_sender_the_login_may_not_use_stops_the_run(
        relay: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    reply = ("553 5.7.1 <news@mirageproject.eu>: Sender address rejected: not owned by "
             "user bob")
    sink.rules.append(EveryRecipient(reply))
    result = run_cli("send", SAMPLE_ISSUE, "--yes", env=LOGIN)
    assert result.code == 3, result.err
    [line] = _errors(result.err)
    assert f"refused the sender: {reply}: check sender.return_path (or sender.from)" in line
    assert "from the login with MIRAGE_SMTP_USER and MIRAGE_SMTP_PASSWORD" in line
    assert KEPT in line
    _nobody_burnt(run_cli, sink)


@pytest.mark.parametrize("reply", [
    "550 relay not permitted",  # Exim
    "550 5.7.1 Client must authenticate first",
])
def test_other_relays_words_for_a_refused_session_stop_the_run(
        relay: Path, run_cli: RunCli, sink: SmtpSink, reply: str) -> None:
    sink.rules.append(EveryRecipient(reply))
    result = run_cli("send", SAMPLE_ISSUE, "--yes", env=NO_LOGIN)
    assert result.code == 3, result.err
    [line] = _errors(result.err)
    assert KEPT in line and UNSET in line
    _nobody_burnt(run_cli, sink)


def test_the_same_reply_to_every_recipient_but_their_address_stops_the_run(
        relay: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """Words the rules do not know, the same for three recipients but for their address,
    and nothing accepted: the relay is turning this client away."""
    sink.rules.append(EveryRecipient(
        "554 5.7.1 <{address}>: Client host rejected: cannot find your hostname, "
        "[192.0.2.7]"))
    edit(relay / "mirage.yaml", "  concurrency: 4", "  concurrency: 1")
    result = run_cli("send", SAMPLE_ISSUE, "--yes", env=NO_LOGIN)
    assert result.code == 3, result.err
    [line] = _errors(result.err)
    assert ("the relay gave 3 different recipients in a row the same refusal to RCPT TO and "
            "accepted no message: 554 5.7.1 <") in line
    assert "it may be refusing this client or the sender: the relay offers AUTH" in line
    assert KEPT in line
    _nobody_burnt(run_cli, sink)


def test_no_warning_when_the_relay_offers_no_auth(
        relay: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    plain = SmtpSink()
    with plain.running_in_thread():
        edit(relay / "mirage.yaml", f"  url: {sink.url}", f"  url: {plain.url}")
        quiet = run_cli("send", SAMPLE_ISSUE, "--yes", env=NO_LOGIN)
    assert quiet.code == 0, quiet.err
    assert "AUTH" not in quiet.err
    assert sorted(plain.recipients()) == sorted(SAMPLE)


@pytest.mark.parametrize("reply", [
    "550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table",
    "550 <{address}>: Recipient address rejected: User unknown in virtual mailbox table",
])
def test_bad_mailboxes_at_the_top_of_the_list_fail_and_the_others_get_it(
        bad_first: Path, run_cli: RunCli, sink: SmtpSink, reply: str) -> None:
    sink.rules.extend(refuse(a, reply.format(address=a)) for a in BAD)
    result = run_cli("send", SAMPLE_ISSUE, "--yes", env=LOGIN)
    assert result.code == 1, result.err
    assert statuses(run_cli) == {**{a: "failed" for a in BAD}, **{a: "sent" for a in GOOD}}
    assert sorted(sink.recipients()) == GOOD


def test_a_stop_on_the_same_words_from_three_bad_mailboxes_does_not_repeat(
        bad_first: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """Three addresses that each refuse with the same words and nothing accepted: as a
    refused session at that moment, so the run stops. The rerun does not count them again:
    the others get the issue, and then the refusals are their own."""
    sink.rules.extend(refuse(a, "550 Administrative prohibition") for a in BAD)
    first = run_cli("send", SAMPLE_ISSUE, "--yes", env=LOGIN)
    assert first.code == 3, first.err
    assert "the same refusal to RCPT TO" in first.err
    assert "nothing was lost: 6 recipients stay pending" in first.err
    again = run_cli("send", SAMPLE_ISSUE, "--yes", env=LOGIN)
    assert again.code == 1, again.err
    assert statuses(run_cli) == {**{a: "failed" for a in BAD}, **{a: "sent" for a in GOOD}}


def test_one_address_that_wants_a_login_stops_one_run_only(
        bad_first: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """Words about the session stop the run at once, even for one address (a group that
    takes mail from logged-in senders only, say). The rerun holds it back without counting:
    the others get the issue, and it is then that recipient's own refusal."""
    sink.rules.append(refuse(BAD[0], "550 5.7.1 Authentication required for this group"))
    first = run_cli("send", SAMPLE_ISSUE, "--yes", env=LOGIN)
    assert first.code == 3, first.err
    assert "nothing was lost: 6 recipients stay pending" in first.err
    again = run_cli("send", SAMPLE_ISSUE, "--yes", env=LOGIN)
    assert again.code == 1, again.err
    states = statuses(run_cli)
    assert states.pop(BAD[0]) == "failed" and set(states.values()) == {"sent"}


def test_a_refused_session_still_stops_the_rerun(
        relay: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """Rerun without the login: the recipients the first stop held are tried without
    counting, and the next one stops the run again. Nobody is ever failed."""
    sink.rules.append(EveryRecipient("554 5.7.1 <{address}>: Relay access denied"))
    edit(relay / "mirage.yaml", "  concurrency: 4", "  concurrency: 1")
    assert run_cli("send", SAMPLE_ISSUE, "--yes", env=NO_LOGIN).code == 3
    second = run_cli("send", SAMPLE_ISSUE, "--yes", env=NO_LOGIN)
    assert second.code == 3, second.err
    assert "Relay access denied" in second.err and KEPT in second.err
    _nobody_burnt(run_cli, sink)


def test_several_sending_processes_say_the_warning_once_and_burn_nobody(
        relay: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    """Each sending process meets the relay and is turned away; the parent says the warning
    once and stops with everyone pending."""
    rows = ["email,name,lang"] + [f"reader{i}@example.org,,en" for i in range(400)]
    (relay / "lists" / "subscribers.csv").write_text("\n".join(rows) + "\n", "utf-8")
    edit(relay / "mirage.yaml", "  max_attempts: 5", "  max_attempts: 5\n  processes: 2")
    sink.rules.append(EveryRecipient("554 5.7.1 <{address}>: Relay access denied"))
    result = run_cli("send", SAMPLE_ISSUE, "--yes", env=NO_LOGIN)
    assert result.code == 3, result.err
    assert result.err.count("offers AUTH, but this run does not log in") == 1
    [line] = _errors(result.err)
    assert "Relay access denied" in line and "400 recipients stay pending" in line
    _nobody_burnt(run_cli, sink, pending=400)
