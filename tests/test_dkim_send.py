"""Signed mail as a relay receives it: every message of a real send (both languages of the
sample, each personalised), a ``--to`` test copy, the Maildir outbox and the preview ``.eml``
verified by dkimpy against the public key in a stubbed DNS answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit, use_relay
from mirage_mailer.compose.message import Personal
from mirage_mailer.delivery import Envelope
from mirage_mailer.project.config import load_settings
from mirage_mailer.services import presign
from mirage_mailer.services.loader import open_project
from mirage_mailer.services.outbound import send_one
from mirage_mailer.services.preparation import for_the_wire
from mirage_mailer.services.presign import presigned
from mirage_mailer.services.sending import SendOptions, prepare
from mirage_mailer.web.confirmation import confirmation_message
from support.smtp_sink import SmtpSink
from test_dkim_config import ENV, add_dkim, pem
from test_dkim_signer import rsa_key
from test_dkim_signer import verify as verify_for

SAMPLE = {"maria.georgiou@example.org", "jean.dupont@example.org", "amina.haddad@example.org",
          "peter.novak@example.org", "sofia.rossi@example.org"}


@pytest.fixture
def signing(project: Path) -> dict[str, str]:
    """The sample project signing as mirageproject.eu, with https unsubscribe links (so
    List-Unsubscribe-Post is there to be signed); the environment that holds the key."""
    edit(project / "mirage.yaml", "  # base_url: https://news.mirageproject.eu",
         "  base_url: https://news.mirageproject.eu")
    add_dkim(project, f"  domain: mirageproject.eu\n  selector: news2026\n  key_env: {ENV}\n")
    return {ENV: pem(rsa_key())}


def verify(message: bytes) -> bool:
    return verify_for(message, rsa_key(), "mirageproject.eu", "news2026")


def header(message: bytes, name: bytes) -> bytes:
    head = message.partition(b"\r\n\r\n")[0].replace(b"\r\n ", b" ")
    [value] = [line.partition(b":")[2].strip() for line in head.split(b"\r\n")
               if line.lower().startswith(name.lower() + b":")]
    return value


def test_every_received_message_verifies(project: Path, run_cli: RunCli, sink: SmtpSink,
                                         signing: dict[str, str]) -> None:
    use_relay(project, sink.url, paced=True)
    result = run_cli("send", SAMPLE_ISSUE, "--yes", env=signing)
    assert result.code == 0, result.err
    assert {r for m in sink.received for r in m.recipients} == SAMPLE
    languages, links = set(), set()
    for message in sink.received:
        data = message.data  # as received: CRLF, dot-stuffing undone
        assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; "
                               b"d=mirageproject.eu; s=news2026;")
        assert verify(data), message.recipients
        assert message.recipients[0].encode() in header(data, b"To")
        languages.add(header(data, b"Content-Language"))
        links.add(header(data, b"List-Unsubscribe"))
        assert header(data, b"List-Unsubscribe-Post") == b"List-Unsubscribe=One-Click"
        # the same bytes tampered with: a signed header, the body, an added unsubscribe
        unsubscribe = header(data, b"List-Unsubscribe")
        token_end = unsubscribe.index(b">")
        changed = data.replace(unsubscribe[token_end - 3:token_end],
                               unsubscribe[token_end - 3:token_end - 1] + b"_", 1)
        assert changed != data and not verify(changed)
        greeting = data.index(b"Dear ") if b"Dear " in data else data.index(b"Bonjour")
        assert not verify(data[:greeting] + b"X" + data[greeting + 1:])
    assert languages == {b"en", b"fr"}
    assert len(links) == len(SAMPLE)  # personalised per recipient, each under its signature


def test_a_test_copy_is_signed(project: Path, run_cli: RunCli, sink: SmtpSink,
                               signing: dict[str, str]) -> None:
    use_relay(project, sink.url, paced=True)
    result = run_cli("send", SAMPLE_ISSUE, "--to", "officer@example.net", "--lang", "fr",
                     env=signing)
    assert result.code == 0, result.err
    [message] = sink.received
    subject = make_header(decode_header(header(message.data, b"Subject").decode()))
    assert str(subject).startswith("[TEST] Nouvelles")
    assert header(message.data, b"Content-Language") == b"fr"
    assert verify(message.data)


def test_maildir_and_preview_show_the_signature_a_relay_gets(project: Path, run_cli: RunCli,
                                                             signing: dict[str, str]) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--yes", env=signing)
    assert result.code == 0, result.err
    files = sorted((project / "outbox" / "new").iterdir())
    assert len(files) == len(SAMPLE)
    for path in files:
        data = path.read_bytes()
        assert b"\nDKIM-Signature: " in data and verify(data), path.name
    result = run_cli("preview", SAMPLE_ISSUE, "--out", "pv", env=signing)
    assert result.code == 0, result.err
    for lang in ("en", "fr"):
        eml = (project / "pv" / f"{lang}.eml").read_bytes()
        assert eml.startswith(b"DKIM-Signature: ") and verify(eml)


def test_a_dry_run_checks_the_key_but_signs_nothing(project: Path, signing: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A dry run transmits nothing, so it spends no RSA operation per message; the key is
    still loaded and checked (a missing one stops it: test_dkim_config). A send signs each
    message on its way out, after the factory built it."""
    monkeypatch.setenv(ENV, signing[ENV])
    opened = open_project(project / "mirage.yaml", project / SAMPLE_ISSUE)
    prep = prepare(opened, SendOptions(dry_run=True))
    person = Personal("reader@example.org", "Reader", "subscribers", {})
    built = prep.factory.build(person, "en")
    assert prep.dkim is not None and not built.startswith(b"DKIM-Signature:")
    [out] = for_the_wire(prep, iter([Envelope(1, "news@mirageproject.eu", person.email,
                                              built)]))
    assert out.data.startswith(b"DKIM-Signature:") and out.data.endswith(built)
    assert verify(out.data.replace(b"\n", b"\r\n"))


def test_signing_ahead_keeps_order_and_stops_cleanly() -> None:
    """The worker thread signs ahead in batches, one task each, but what comes out is every
    envelope, in order; it runs at most ``batch * ahead`` envelopes ahead of the wire; a
    consumer that stops early (a signal) leaves no signing thread behind."""
    batches: list[int] = []

    def sign_all(sign: Callable[[bytes], bytes], taken: list[Envelope]) -> list[bytes]:
        batches.append(len(taken))
        return [sign(e.data) for e in taken]

    def sign(data: bytes) -> bytes:
        assert threading.current_thread().name.startswith("mirage-dkim")
        return b"S:" + data

    source = [Envelope(n, "a@example.org", "b@example.org", str(n).encode())
              for n in range(50)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(presign, "_sign_all", sign_all)
        out = list(presigned(iter(source), sign, batch=4, ahead=2))
    assert [e.data for e in out] == [b"S:" + str(n).encode() for n in range(50)]
    assert [e.key for e in out] == list(range(50))
    assert batches == [4] * 12 + [2]
    pulled = iter(source)
    stream = presigned(pulled, sign, batch=3, ahead=2)
    assert next(stream).data == b"S:0"
    assert next(pulled).key == 6  # two batches of 3 built and handed over, no more
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("mirage-dkim")]


def test_a_confirmation_mail_is_signed_too(project: Path, signing: dict[str, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The web's double opt-in message leaves through the same outbound path, signed."""
    monkeypatch.setenv(ENV, signing[ENV])
    settings = load_settings(project / "mirage.yaml")
    data = confirmation_message(settings, list_name="subscribers", email="new@example.net",
                                link="https://news.mirageproject.eu/c/x")
    sent = asyncio.run(send_one(settings, "new@example.net", data))
    assert sent.accepted
    [path] = (project / "outbox" / "new").iterdir()
    assert verify(path.read_bytes())
