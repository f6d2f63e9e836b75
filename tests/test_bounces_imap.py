"""``process-bounces`` against an IMAP folder (tests/support/imap_server.py on 127.0.0.1, TLS
from trustme, certificate checked through ``bounces.ca_file``), through the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from helpers import RunCli
from support.imap_server import ImapServer
from test_bounces_e2e import AMINA, ISSUE, MARIA, PETER, bounce, sent, suppressed

__all__ = ["sent"]  # the fixture, shared with the Maildir tests
ENV = {"MIRAGE_BOUNCE_USER": "bounces@mirageproject.eu", "MIRAGE_BOUNCE_PASSWORD": "right"}


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def mails(sent: tuple[dict[str, str], dict[str, str]]) -> dict[int, tuple[bytes, set[str]]]:
    senders, ids = sent
    return {
        3: (crlf(bounce("postfix.eml", verp=senders[MARIA], rcpt=MARIA,
                        message_id=ids[MARIA])), set()),
        5: (crlf(bounce("autoreply.eml", verp=senders[PETER], rcpt=PETER,
                        message_id=ids[PETER])), set()),
        8: (crlf(bounce("arf-complaint.eml", verp=senders[AMINA], rcpt=AMINA,
                        message_id=ids[AMINA])), {"\\Seen"}),  # read by a person already
    }


def configure(project: Path, ca: trustme.CA, port: int, scheme: str = "imaps",
              extra: str = "") -> None:
    """Point bounces.mailbox at the server and trust its CA through bounces.ca_file."""
    ca.cert_pem.write_to_path(str(project / "imap-ca.pem"))
    config = project / "mirage.yaml"
    text = config.read_text(encoding="utf-8").replace(
        "  mailbox: bouncebox\n",
        f"  mailbox: {scheme}://127.0.0.1:{port}/INBOX\n"
        "  username_env: MIRAGE_BOUNCE_USER\n  password_env: MIRAGE_BOUNCE_PASSWORD\n"
        f"  ca_file: imap-ca.pem\n{extra}")
    config.write_text(text, encoding="utf-8")


@pytest.fixture
def server(request: pytest.FixtureRequest, ca: trustme.CA,
           mails: dict[int, tuple[bytes, set[str]]]) -> Iterator[ImapServer]:
    fake = ImapServer(ca, getattr(request, "param", "imaps"), mails)
    yield fake
    fake.stop()


def test_imaps_dry_run_examines_then_a_real_run_records_and_flags(
        project: Path, run_cli: RunCli, server: ImapServer, ca: trustme.CA) -> None:
    configure(project, ca, server.port)
    dry = run_cli("process-bounces", "--dry-run", env=ENV)
    assert dry.code == 0, dry.err
    assert dry.out.splitlines() == [
        f"imap UID 3: hard bounce {MARIA} (issue {ISSUE}): 5.1.1; smtp; 550 5.1.1 <{MARIA}>: "
        "Recipient address rejected: User unknown in virtual mailbox table; would suppress "
        "the address",
        "imap UID 5: ignored: an automatic reply, not a bounce",
        "process-bounces: 2 mail(s): 1 hard, 1 auto-reply; 1 address(es) to suppress; "
        "dry run, nothing changed"]
    assert "EXAMINE INBOX" in server.commands
    assert not any(c.startswith("UID STORE") for c in server.commands)
    assert suppressed(project) == {}

    real = run_cli("process-bounces", env=ENV)
    assert real.code == 0, real.err
    assert real.out.splitlines()[-1] == ("process-bounces: 2 mail(s): 1 hard, 1 auto-reply; "
                                         "1 address(es) suppressed")
    assert server.messages[3][1] == {"\\Seen"} and server.messages[5][1] == {"\\Seen"}
    assert suppressed(project) == {MARIA: "bounce"}
    again = run_cli("process-bounces", env=ENV)
    assert again.out.strip() == "process-bounces: 0 mail(s); 0 address(es) suppressed"


def test_processed_move_puts_mail_in_the_done_folder(project: Path, run_cli: RunCli,
                                                     server: ImapServer,
                                                     ca: trustme.CA) -> None:
    configure(project, ca, server.port, extra="  processed: move\n  done_folder: Done\n")
    result = run_cli("process-bounces", env=ENV)
    assert result.code == 0, result.err
    assert "complaint" in result.out  # processed: move reads seen mail too
    assert server.messages == {}
    assert len(server.folders["Done"]) == 3
    assert suppressed(project) == {MARIA: "bounce", AMINA: "complaint"}


@pytest.mark.parametrize("server", ["starttls"], indirect=True)
def test_imap_url_uses_starttls_before_the_login(project: Path, run_cli: RunCli,
                                                 server: ImapServer, ca: trustme.CA) -> None:
    configure(project, ca, server.port, scheme="imap")
    result = run_cli("process-bounces", env=ENV)
    assert result.code == 0, result.err
    assert server.commands.index("STARTTLS") < server.commands.index(
        "LOGIN bounces@mirageproject.eu")


@pytest.mark.parametrize("server", ["plain"], indirect=True)
def test_no_password_in_clear_when_starttls_is_missing(project: Path, run_cli: RunCli,
                                                       server: ImapServer,
                                                       ca: trustme.CA) -> None:
    configure(project, ca, server.port, scheme="imap")
    result = run_cli("process-bounces", env=ENV)
    assert result.code == 3
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"bounces.mailbox: 127.0.0.1:{server.port} does not offer STARTTLS")
    assert not any(c.startswith("LOGIN") for c in server.commands)


def test_a_certificate_from_another_ca_is_refused(project: Path, run_cli: RunCli,
                                                  server: ImapServer) -> None:
    configure(project, trustme.CA(), server.port)  # trusts a CA that did not sign it
    result = run_cli("process-bounces", env=ENV)
    assert result.code == 3
    (line,) = result.err.strip().splitlines()
    assert f"cannot connect 127.0.0.1:{server.port}" in line and "CERTIFICATE_VERIFY" in line
    assert not any(c.startswith("LOGIN") for c in server.commands)


def test_login_refused_is_exit_3_and_a_missing_variable_exit_2(
        project: Path, run_cli: RunCli, server: ImapServer, ca: trustme.CA) -> None:
    configure(project, ca, server.port)
    refused = run_cli("process-bounces", env={**ENV, "MIRAGE_BOUNCE_PASSWORD": "wrong"})
    assert refused.code == 3
    (line,) = refused.err.strip().splitlines()
    assert line.startswith(f"bounces.mailbox: login refused by 127.0.0.1:{server.port}")
    unset = run_cli("process-bounces", env={**ENV, "MIRAGE_BOUNCE_PASSWORD": ""})
    assert unset.code == 2
    assert "bounces.password_env names MIRAGE_BOUNCE_PASSWORD, which is not set" in unset.err


@pytest.mark.parametrize("server", ["starttls-bad"], indirect=True)
def test_a_refused_starttls_says_so_and_never_logs_in(project: Path, run_cli: RunCli,
                                                      server: ImapServer,
                                                      ca: trustme.CA) -> None:
    configure(project, ca, server.port, scheme="imap")
    result = run_cli("process-bounces", env=ENV)
    assert result.code == 3
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"bounces.mailbox: STARTTLS failed with 127.0.0.1:{server.port}")
    assert "username_env" not in line
    assert not any(c.startswith("LOGIN") for c in server.commands)


def test_a_certificate_for_another_host_is_refused(project: Path, run_cli: RunCli,
                                                   server: ImapServer, ca: trustme.CA) -> None:
    """The certificate names 127.0.0.1; the mailbox is reached as localhost: refused before
    the login, as the SMTP relay would be (delivery/tls.py builds both contexts)."""
    configure(project, ca, server.port)
    config = project / "mirage.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        f"imaps://127.0.0.1:{server.port}/", f"imaps://localhost:{server.port}/"),
        encoding="utf-8")
    result = run_cli("process-bounces", env=ENV)
    assert result.code == 3, result.out + result.err
    (line,) = result.err.strip().splitlines()
    assert f"cannot connect localhost:{server.port}" in line and "CERTIFICATE_VERIFY" in line
    assert not any(c.startswith("LOGIN") for c in server.commands)


def test_unmatched_mail_is_moved_to_its_folder_unread(
        project: Path, run_cli: RunCli, server: ImapServer, ca: trustme.CA,
        sent: tuple[dict[str, str], dict[str, str]]) -> None:
    """``bounces.unmatched_folder`` over IMAP: created, the mail moved there still unseen (it
    was read with BODY.PEEK), the other mail flagged as before."""
    senders, _ = sent
    forged = re.sub(r"-[0-9a-f]{20}@", "-" + "a" * 20 + "@", senders[PETER])
    server.messages[9] = (crlf(bounce("exim.eml", verp=forged, rcpt=PETER,
                                      message_id="<x@y>")), set())
    configure(project, ca, server.port, extra="  unmatched_folder: Unmatched\n")
    result = run_cli("process-bounces", env=ENV)
    assert result.code == 0, result.err
    assert ("imap UID 9: unmatched: its VERP token is forged (altered, or not ours); ignored; "
            "set aside unread in Unmatched") in result.out, result.out
    assert [flags for _, flags in server.folders["Unmatched"].values()] == [set()]
    assert 9 not in server.messages and server.messages[3][1] == {"\\Seen"}
