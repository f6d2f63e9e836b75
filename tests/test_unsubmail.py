"""`process-unsubscribes`: token parsing (unit), a real Maildir and a small fake IMAP server on
127.0.0.1 (TLS from trustme), both end to end through the CLI against a real store."""

from __future__ import annotations

import email
import json
import re
import shutil
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import trustme

from helpers import SAMPLE_ISSUE, RunCli, copy_project
from mirage_mailer.services.unsubmail import (
    ImapTarget,
    MaildirBox,
    find_token,
    message_date,
    parse_headers,
    parse_imap_url,
)
from mirage_mailer.util.errors import InputError
from support.imap_server import ImapServer

ISSUE = "2021-10-partners-meeting"
TOKEN = "MjAyMS0xMC1wYXJ0bmVycy1tZWV0aW5n.HtBhtYzVKwQSpWhv.kOIuNYuj-Jvppf2o1q3cjg"
JEAN, MARIA, AMINA, PETER = ("jean.dupont@example.org", "maria.georgiou@example.org",
                             "amina.haddad@example.org", "peter.novak@example.org")
DATE = "Mon, 01 Nov 2021 10:00:00 +0100"


def request(subject: str, *, to: str = "info@mirageproject.eu", date: str | None = DATE,
            sender: str = "reader@example.org") -> bytes:
    """A mail as a client sends it (long subjects get folded, as they do in real mail)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    if date:
        message["Date"] = date
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content("Please take me off the list.\n")
    return message.as_bytes(policy=policy.SMTP)


def headers_of(subject: str = "hello", **kwargs: str) -> Any:
    return parse_headers(request(subject, **kwargs))


# -- parsing (unit) ----------------------------------------------------------------------------


@pytest.mark.parametrize("subject", [
    f"unsubscribe {TOKEN}",
    f"Re: unsubscribe {TOKEN}",
    f"RE: Fwd: UNSUBSCRIBE {TOKEN}",
    f"AW: Unsubscribe   {TOKEN}  ",
    f"Re[2]: unsubscribe {TOKEN}",
    f"unsubscribe%20{TOKEN}",
    f"=?utf-8?q?Re=3A_unsubscribe_{TOKEN[:30]}?= =?utf-8?q?{TOKEN[30:]}?=",
])
def test_token_in_the_subject(subject: str) -> None:
    assert find_token(headers_of(subject)) == TOKEN


@pytest.mark.parametrize("subject", [
    "Please unsubscribe me", "unsubscribe", f"Why did I get this? unsubscribe {TOKEN}",
    f"unsubscribe {TOKEN} now", f"unsubscribe {TOKEN.replace('.', ' ')}", "",
])
def test_no_token_in_other_subjects(subject: str) -> None:
    assert find_token(headers_of(subject)) is None


@pytest.mark.parametrize("to", [
    f"info+unsubscribe-{TOKEN}@mirageproject.eu",
    f"MIraGE <info+Unsubscribe-{TOKEN}@mirageproject.eu>, other@example.org",
])
def test_token_in_a_plus_address(to: str) -> None:
    assert find_token(headers_of("Unsubscribe", to=to)) == TOKEN


def test_token_in_the_delivered_to_header() -> None:
    raw = (f"Delivered-To: info+unsubscribe-{TOKEN}@mirageproject.eu\r\n").encode() + request(
        "bye", to="undisclosed-recipients:;")
    assert find_token(parse_headers(raw)) == TOKEN


def test_hostile_headers_are_no_token_not_an_error() -> None:
    raw = b"To: =?utf-8?q?=ff=fe?= <<<@@@>>>\r\nSubject: =?bogus?x?zz?=\r\nDate: yesterday\r\n"
    headers = parse_headers(raw)
    assert find_token(headers) is None
    assert message_date(headers) is None


def test_message_date() -> None:
    when = message_date(headers_of())
    assert when is not None and when.isoformat() == "2021-11-01T10:00:00+01:00"
    assert message_date(headers_of(date="")) is None


def test_imap_urls() -> None:
    assert parse_imap_url("imaps://info%40mirageproject.eu@mail.example.org/Unsubscribes") == (
        ImapTarget("mail.example.org", 993, "info@mirageproject.eu", "Unsubscribes", True))
    assert parse_imap_url("imap://u@127.0.0.1:1143") == ImapTarget("127.0.0.1", 1143, "u",
                                                                   "INBOX", False)
    for bad, says in [("imaps://u:secret@host/INBOX", "holds a password"),
                      ("https://u@host/INBOX", "not an imaps://"),
                      ("imaps://host/INBOX", "needs a user and a host"),
                      ("imaps://u@host:99999999/INBOX", "port"),
                      ("imaps://u@host/Boîte", "not ASCII")]:
        with pytest.raises(InputError) as caught:
            parse_imap_url(bad)
        assert says in str(caught.value)


def test_maildir_flags_follow_the_spec(tmp_path: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    (tmp_path / "new/1.a.host").write_bytes(request("x"))
    (tmp_path / "cur/2.b.host:2,RF").write_bytes(request("y"))
    (tmp_path / "cur/3.c.host:2,S").write_bytes(request("z"))  # seen: left out by default
    (tmp_path / "new/.hidden").write_bytes(b"")
    box = MaildirBox(tmp_path)
    mails = list(box.messages())
    assert [Path(m.key).name for m in mails] == ["1.a.host", "2.b.host:2,RF"]
    for mail in mails:
        assert box.mark_done(mail) is None
    assert sorted(p.name for p in (tmp_path / "cur").iterdir()) == [
        "1.a.host:2,S", "2.b.host:2,FRS", "3.c.host:2,S"]
    assert [Path(m.key).name for m in MaildirBox(tmp_path, include_seen=True).messages()] == [
        "1.a.host:2,S", "2.b.host:2,FRS", "3.c.host:2,S"]


# -- end to end: Maildir -----------------------------------------------------------------------


def mailto_subject(project: Path, address: str, issue: str = ISSUE) -> str:
    """'unsubscribe <token>' as the List-Unsubscribe mailto of ``address``'s message sets it."""
    for path in sorted((project / "outbox/new").iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if (message["To"].addresses[0].addr_spec == address
                and f".{issue}@" in str(message["Message-ID"])):
            found = re.search(r"<mailto:[^?>]+\?subject=([^>]+)>", str(message["List-Unsubscribe"]))
            assert found is not None
            return unquote(found.group(1))
    raise AssertionError(f"no message to {address}")


def maildir(root: Path) -> Path:
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def suppression(run_cli: RunCli, address: str) -> dict[str, Any] | None:
    result = run_cli("export", address)
    assert result.code == 0, result.err
    value = json.loads(result.out)["suppressed"]
    assert value is None or isinstance(value, dict)
    return value


@pytest.fixture
def sent(project: Path, sample_sent: Path) -> Path:
    """``project`` as the sample issue's send left it (its own copy)."""
    return copy_project(sample_sent, project)


def test_maildir_requests_are_honoured_once_and_others_left_alone(
        sent: Path, run_cli: RunCli) -> None:
    inbox = maildir(sent / "inbox")
    jean = mailto_subject(sent, JEAN)
    amina_token = mailto_subject(sent, AMINA).split()[1]
    peter = mailto_subject(sent, PETER)
    (inbox / "new/1.jean.host").write_bytes(request(f"Re: {jean}", sender=JEAN))
    (inbox / "new/2.amina.host").write_bytes(
        request("Unsubscribe", to=f"info+unsubscribe-{amina_token}@mirageproject.eu"))
    altered = peter[:-1] + ("B" if peter[-1] != "B" else "C")
    (inbox / "new/3.peter.host").write_bytes(request(altered))
    (inbox / "new/4.human.host").write_bytes(request("Question about the meeting"))
    (inbox / "cur/5.maria.host:2,S").write_bytes(request(mailto_subject(sent, MARIA)))
    before = listing(inbox)

    dry = run_cli("process-unsubscribes", "--maildir", "inbox", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.splitlines() == [
        f"inbox/new/1.jean.host: would unsubscribe {JEAN} (issue {ISSUE})",
        f"inbox/new/2.amina.host: would unsubscribe {AMINA} (issue {ISSUE})",
        "inbox/new/3.peter.host: skipped: the unsubscribe token is not genuine (altered, or "
        "another secret)",
        "inbox/new/4.human.host: skipped: no unsubscribe token in the subject or the address",
        "process-unsubscribes: 4 message(s): 2 to unsubscribe, 0 already unsubscribed, "
        "2 skipped; dry run, nothing changed"]
    assert listing(inbox) == before
    assert suppression(run_cli, JEAN) is None

    real = run_cli("process-unsubscribes", "--maildir", "inbox")
    assert real.code == 0, real.err
    assert real.out.splitlines()[:2] == [
        f"inbox/new/1.jean.host: unsubscribed {JEAN} (issue {ISSUE})",
        f"inbox/new/2.amina.host: unsubscribed {AMINA} (issue {ISSUE})"]
    assert real.out.splitlines()[-1] == ("process-unsubscribes: 4 message(s): 2 unsubscribed, "
                                         "0 already unsubscribed, 2 skipped")
    assert listing(inbox) == ["cur/1.jean.host:2,S", "cur/2.amina.host:2,S",
                              "cur/5.maria.host:2,S", "new/3.peter.host", "new/4.human.host"]
    assert suppression(run_cli, JEAN) == {"source": "mailto", "reason": f"issue {ISSUE}",
                                          "created_at": "2021-11-01T09:00:00.000+00:00",
                                          "hashed": False}
    assert suppression(run_cli, AMINA) is not None
    assert suppression(run_cli, PETER) is None

    rerun = run_cli("process-unsubscribes", "--maildir", "inbox")
    assert rerun.out.splitlines()[-1] == ("process-unsubscribes: 2 message(s): 0 unsubscribed, "
                                          "0 already unsubscribed, 2 skipped")

    sofia = mailto_subject(sent, "sofia.rossi@example.org")
    (inbox / "new/6.sofia.host").write_bytes(request(sofia))
    seen = run_cli("process-unsubscribes", "--maildir", "inbox", "--include-seen")
    assert f"inbox/cur/1.jean.host:2,S: already unsubscribed {JEAN} (issue {ISSUE})" in seen.out
    assert f"inbox/cur/5.maria.host:2,S: unsubscribed {MARIA} (issue {ISSUE})" in seen.out
    assert seen.out.count("6.sofia.host") == 1  # moved to cur/ during the run: handled once

    shutil.copytree(sent / SAMPLE_ISSUE, sent / "issues/2021-11-next")
    again = run_cli("send", "issues/2021-11-next", "--yes")
    assert again.code == 0, again.err
    assert "sent 1, failed 0, pending 0, unknown 0, suppressed 4" in again.out


def test_a_test_copy_token_is_skipped_and_left_alone(
        sent: Path, run_cli: RunCli) -> None:
    copy = run_cli("send", SAMPLE_ISSUE, "--to", "officer@example.org")
    assert copy.code == 0, copy.err
    inbox = maildir(sent / "inbox")
    (inbox / "new/1.copy.host").write_bytes(request(mailto_subject(sent, "officer@example.org")))
    result = run_cli("process-unsubscribes", "--maildir", "inbox")
    assert result.out.splitlines()[0] == (
        f"inbox/new/1.copy.host: skipped: the token of issue {ISSUE} matches no recipient (a "
        "test copy, or a person already erased)")
    assert listing(inbox) == ["new/1.copy.host"]


def test_mailbox_options_are_checked_before_anything_happens(project: Path,
                                                             run_cli: RunCli) -> None:
    (project / "plain").mkdir()
    cases = [
        ((), {}, "process-unsubscribes: no mailbox given (add --maildir PATH or --imap "
         "imaps://user@host/INBOX)"),
        (("--maildir", "plain"), {}, "plain: not a Maildir (no new/ and cur/ folders)"),
        (("--imap", "imaps://u@127.0.0.1/INBOX"), {"MIRAGE_IMAP_PASSWORD": ""},
         "process-unsubscribes: MIRAGE_IMAP_PASSWORD is not set"),
        (("--imap", "imaps://u:pw@127.0.0.1/INBOX"), {}, "--imap: the URL holds a password"),
    ]
    for args, env, message in cases:
        result = run_cli("process-unsubscribes", *args, env=env)
        assert result.code == 2, (args, result.err)
        (line,) = result.err.strip().splitlines()
        assert line.startswith(message), line
    assert list((project / ".mirage").iterdir()) == []  # init's empty folder: nothing made


# -- end to end: IMAP (a fake server, bounded, on 127.0.0.1) -----------------------------------


FakeImap = ImapServer  # tests/support/imap_server.py


@pytest.fixture
def ca(tmp_path: Path) -> trustme.CA:
    return trustme.CA()


def imap_env(ca: trustme.CA, tmp_path: Path, password: str = "right") -> dict[str, str]:
    """The CLI trusts the test CA through OpenSSL's SSL_CERT_FILE, as with a private CA."""
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return {"SSL_CERT_FILE": str(pem), "MIRAGE_IMAP_PASSWORD": password}


@pytest.fixture
def imap_messages(sent: Path) -> dict[int, tuple[bytes, set[str]]]:
    return {
        3: (request(f"Re: {mailto_subject(sent, JEAN)}"), set()),
        7: (request("Lunch?"), set()),
        9: (request(mailto_subject(sent, MARIA)), {"\\Seen"}),
    }


@pytest.fixture
def server(request: pytest.FixtureRequest, ca: trustme.CA,
           imap_messages: dict[int, tuple[bytes, set[str]]]) -> Iterator[FakeImap]:
    fake = FakeImap(ca, getattr(request, "param", "imaps"), imap_messages)
    yield fake
    fake.stop()


def test_imap_dry_run_examines_then_real_run_marks_handled_mail_seen(
        sent: Path, run_cli: RunCli, server: FakeImap, ca: trustme.CA, tmp_path: Path) -> None:
    url = f"imaps://info%40mirageproject.eu@127.0.0.1:{server.port}/INBOX"
    env = imap_env(ca, tmp_path)
    dry = run_cli("process-unsubscribes", "--imap", url, "--dry-run", env=env)
    assert dry.code == 0, dry.err
    assert dry.out.splitlines() == [
        f"imap UID 3: would unsubscribe {JEAN} (issue {ISSUE})",
        "imap UID 7: skipped: no unsubscribe token in the subject or the address",
        "process-unsubscribes: 2 message(s): 1 to unsubscribe, 0 already unsubscribed, "
        "1 skipped; dry run, nothing changed"]
    assert "EXAMINE INBOX" in server.commands
    assert "LOGIN info@mirageproject.eu" in server.commands
    assert not any(c.startswith("UID STORE") for c in server.commands)

    real = run_cli("process-unsubscribes", "--imap", url, env=env)
    assert real.code == 0, real.err
    assert real.out.splitlines()[0] == f"imap UID 3: unsubscribed {JEAN} (issue {ISSUE})"
    assert server.messages[3][1] == {"\\Seen"}
    assert server.messages[7][1] == set()  # a person's mail stays unread
    assert suppression(run_cli, JEAN) is not None and suppression(run_cli, MARIA) is None
    rerun = run_cli("process-unsubscribes", "--imap", url, env=env)
    assert rerun.out.splitlines()[-1].startswith("process-unsubscribes: 1 message(s): 0 unsub")


@pytest.mark.parametrize("server", ["starttls"], indirect=True)
def test_imap_url_uses_starttls(sent: Path, run_cli: RunCli, server: FakeImap, ca: trustme.CA,
                                tmp_path: Path) -> None:
    url = f"imap://info@127.0.0.1:{server.port}/INBOX"
    result = run_cli("process-unsubscribes", "--imap", url, env=imap_env(ca, tmp_path))
    assert result.code == 0, result.err
    assert server.commands.index("STARTTLS") < server.commands.index("LOGIN info")
    assert f"unsubscribed {JEAN}" in result.out


@pytest.mark.parametrize("server", ["plain"], indirect=True)
def test_no_password_in_clear_when_starttls_is_missing(sent: Path, run_cli: RunCli,
                                                       server: FakeImap, ca: trustme.CA,
                                                       tmp_path: Path) -> None:
    url = f"imap://info@127.0.0.1:{server.port}/INBOX"
    result = run_cli("process-unsubscribes", "--imap", url, env=imap_env(ca, tmp_path))
    assert result.code == 3
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"--imap: STARTTLS with 127.0.0.1:{server.port} failed")
    assert not any(c.startswith("LOGIN") for c in server.commands)


def test_imap_login_refused_is_exit_3(sent: Path, run_cli: RunCli, server: FakeImap,
                                      ca: trustme.CA, tmp_path: Path) -> None:
    url = f"imaps://info@127.0.0.1:{server.port}/INBOX"
    result = run_cli("process-unsubscribes", "--imap", url,
                     env=imap_env(ca, tmp_path, password="wrong"))
    assert result.code == 3
    (line,) = result.err.strip().splitlines()
    assert f"127.0.0.1:{server.port} refused the login of info" in line
    assert not any(c.startswith("UID") for c in server.commands)


def test_a_symbolic_link_in_the_maildir_is_never_followed(
        sent: Path, run_cli: RunCli) -> None:
    """The twin of the bounce reader's rule: a link could point anywhere the process can read."""
    inbox = maildir(sent / "inbox")
    outside = sent / "outside.eml"
    outside.write_bytes(request(mailto_subject(sent, JEAN), sender=JEAN))
    (inbox / "new/1.link.host").symlink_to(outside)
    result = run_cli("process-unsubscribes", "--maildir", "inbox")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == (
        "inbox/new/1.link.host: skipped: not a regular file (a symbolic link); left in place")
    assert suppression(run_cli, JEAN) is None
    assert listing(inbox) == ["new/1.link.host"]
