"""Verified TLS end to end: CLI runs against real STARTTLS and smtps relays on 127.0.0.1 with
trustme certificates. The right CA (``transport.ca_file``) delivers; an unknown CA, another host
name or an expired certificate stops the run with exit 3 and one line, everyone still pending;
``tls_insecure`` delivers with a warning on every sending command; and no relay ever sees AUTH
before the link is encrypted."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from helpers import SAMPLE_ISSUE, RunCli, edit, statuses
from mirage_mailer.delivery.tls import client_context
from support.tls_relay import TranscriptSink, server_context, write_ca

# The relays here take AUTH without TLS on purpose (a client that tried would be seen);
# aiosmtpd warns about exactly that.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
SAMPLE_COUNT = 5
LOGIN = ("officer", "s3cret")
ENV = {"MIRAGE_SMTP_USER": LOGIN[0], "MIRAGE_SMTP_PASSWORD": LOGIN[1]}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def other_ca() -> trustme.CA:
    return trustme.CA()


def relay(context: ssl.SSLContext, mode: str) -> TranscriptSink:
    """A relay that would take AUTH in the clear (so a client that tried would be seen)."""
    tls = {"starttls": context} if mode == "starttls" else {"implicit_tls": context}
    return TranscriptSink(auth=LOGIN, auth_required=True, auth_require_tls=False, **tls)


def configure(project: Path, sink: TranscriptSink, *, ca_file: Path | None = None,
              insecure: bool = False) -> None:
    extra = ""
    if ca_file is not None:
        extra += f"\n  ca_file: {ca_file}"
    if insecure:
        extra += "\n  tls_insecure: true"
    edit(project / "mirage.yaml", "  url: maildir:outbox", f"  url: {sink.url}")
    edit(project / "mirage.yaml", "  rate_per_second: 10", "  rate_per_second: null" + extra)
    edit(project / "mirage.yaml", "  timeout: 30", "  timeout: 5")


def assert_never_auth_in_clear(sink: TranscriptSink) -> None:
    assert sink.plaintext_auth() == []
    for conn, verb, secure in sink.transcript:
        if verb == "MAIL":
            assert secure, f"connection {conn} sent mail unencrypted"


def assert_stopped(run_err: str, code: int, sink: TranscriptSink, run_cli: RunCli) -> str:
    """Exit 3, one line naming the relay, nothing sent, everyone still pending."""
    assert code == 3, run_err
    lines = [line for line in run_err.strip().splitlines() if ": warning: " not in line]
    assert len(lines) == 1, run_err  # (the sample project warns of a missing translation)
    assert f"127.0.0.1:{sink.port}" in lines[0]
    assert sink.received == [] and sink.count("AUTH") == 0
    assert [verb for _, verb, _ in sink.transcript if verb != "STARTTLS"] == []
    assert set(statuses(run_cli).values()) == {"pending"}
    return lines[0]


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_private_ca_in_ca_file_delivers_over_tls(mode: str, project: Path, run_cli: RunCli,
                                                 ca: trustme.CA, tmp_path: Path) -> None:
    sink = relay(server_context(ca, "127.0.0.1"), mode)
    with sink.running_in_thread():
        configure(project, sink, ca_file=write_ca(ca, project / "relay-ca.pem"))
        edit(project / "mirage.yaml", "  ca_file: " + str(project / "relay-ca.pem"),
             "  ca_file: relay-ca.pem")  # relative to mirage.yaml, whatever the cwd
        result = run_cli("--config", str(project / "mirage.yaml"), "send", str(
            project / SAMPLE_ISSUE), "--yes", env=ENV, cwd=tmp_path)
    assert result.code == 0, result.err
    assert len(sink.received) == SAMPLE_COUNT and all(m.tls for m in sink.received)
    assert sink.count("AUTH") >= 1
    assert_never_auth_in_clear(sink)
    if mode == "starttls":  # every connection asked for TLS before anything else
        first = {}
        for conn, verb, _ in sink.transcript:
            first.setdefault(conn, verb)
        assert set(first.values()) == {"STARTTLS"}


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_unknown_ca_stops_with_one_line(mode: str, project: Path, run_cli: RunCli,
                                        ca: trustme.CA, other_ca: trustme.CA) -> None:
    sink = relay(server_context(other_ca, "127.0.0.1"), mode)
    with sink.running_in_thread():
        configure(project, sink, ca_file=write_ca(ca, project / "relay-ca.pem"))
        result = run_cli("send", SAMPLE_ISSUE, "--yes", env=ENV)
        line = assert_stopped(result.err, result.code, sink, run_cli)
    assert "not signed by the CA in transport.ca_file" in line
    assert line.startswith("mirage.yaml:")  # at the transport's line


def test_starttls_auto_does_not_fall_back_to_plaintext(project: Path, run_cli: RunCli,
                                                       ca: trustme.CA,
                                                       other_ca: trustme.CA) -> None:
    """'auto' uses STARTTLS when offered; a certificate that fails is not a reason to go on
    in the clear (that is what an attacker in the middle would want)."""
    sink = relay(server_context(other_ca, "127.0.0.1"), "starttls")
    with sink.running_in_thread():
        configure(project, sink, ca_file=write_ca(ca, project / "relay-ca.pem"))
        edit(project / "mirage.yaml", "  starttls: always", "  starttls: auto")
        edit(project / "mirage.yaml", "  max_attempts: 5",
             "  max_attempts: 5\n  allow_plaintext_auth: true")
        result = run_cli("send", SAMPLE_ISSUE, "--yes", env=ENV)
        assert_stopped(result.err, result.code, sink, run_cli)


def test_verification_is_on_without_any_tls_setting(project: Path, run_cli: RunCli,
                                                    ca: trustme.CA) -> None:
    """No ca_file: the system's CAs, which do not know a private CA."""
    sink = relay(server_context(ca, "127.0.0.1"), "starttls")
    with sink.running_in_thread():
        configure(project, sink)
        result = run_cli("send", SAMPLE_ISSUE, "--yes", env=ENV)
        line = assert_stopped(result.err, result.code, sink, run_cli)
    assert "unknown CA" in line


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_certificate_for_another_host_stops(mode: str, project: Path, run_cli: RunCli,
                                            ca: trustme.CA) -> None:
    sink = relay(server_context(ca, "relay.example.org"), mode)
    with sink.running_in_thread():
        configure(project, sink, ca_file=write_ca(ca, project / "relay-ca.pem"))
        result = run_cli("send", SAMPLE_ISSUE, "--yes", env=ENV)
        line = assert_stopped(result.err, result.code, sink, run_cli)
    assert "does not match the host name" in line


@pytest.mark.parametrize(("valid", "said"), [("expired", "has expired"),
                                             ("future", "is not valid yet")])
def test_certificate_out_of_its_dates_stops(valid: str, said: str, project: Path,
                                            run_cli: RunCli, ca: trustme.CA) -> None:
    sink = relay(server_context(ca, "127.0.0.1", valid=valid), "smtps")
    with sink.running_in_thread():
        configure(project, sink, ca_file=write_ca(ca, project / "relay-ca.pem"))
        result = run_cli("send", SAMPLE_ISSUE, "--yes", env=ENV)
        line = assert_stopped(result.err, result.code, sink, run_cli)
    assert said in line


def test_tls_insecure_delivers_and_warns_on_every_sending_command(
        project: Path, run_cli: RunCli, other_ca: trustme.CA) -> None:
    sink = relay(server_context(other_ca, "relay.example.org"), "starttls")
    with sink.running_in_thread():
        configure(project, sink, insecure=True)
        test_copy = run_cli("send", SAMPLE_ISSUE, "--to", "me@example.org", env=ENV)
        real = run_cli("send", SAMPLE_ISSUE, "--yes", env=ENV)
        edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
             "send_at: 2021-10-29T09:00:00+02:00")
        due = run_cli("run-due", env=ENV)
    for run in (test_copy, real, due):
        assert run.code == 0, run.err
        warnings = [line for line in run.err.splitlines() if "tls_insecure" in line]
        assert len(warnings) == 1, run.err
        assert "warning:" in warnings[0] and "not checked" in warnings[0]
        assert "remove tls_insecure" in warnings[0]
    assert len(sink.received) == 1 + SAMPLE_COUNT and all(m.tls for m in sink.received)
    assert_never_auth_in_clear(sink)
    checked = run_cli("validate", SAMPLE_ISSUE)  # a warning there too: exit 0
    assert checked.code == 0 and "warning: transport.tls_insecure is true" in checked.err
    quiet = run_cli("report", SAMPLE_ISSUE)  # reads the store only: no warning
    assert "tls_insecure" not in quiet.err


def test_starttls_auto_never_sends_the_password_in_the_clear(project: Path,
                                                             run_cli: RunCli) -> None:
    sink = TranscriptSink(auth=LOGIN, auth_required=True, auth_require_tls=False)  # no TLS
    with sink.running_in_thread():
        configure(project, sink)
        edit(project / "mirage.yaml", "  starttls: always", "  starttls: auto")
        result = run_cli("send", SAMPLE_ISSUE, "--yes", env=ENV)
    assert result.code == 3, result.err
    assert "without encryption" in result.err and "allow_plaintext_auth" in result.err
    assert sink.count("AUTH") == 0 and sink.received == []


@pytest.mark.parametrize(("value", "said"), [
    ("missing.pem", "does not exist"),
    ("mirage.yaml", "holds no PEM certificate"),
    ("lists", "is a folder"),
])
def test_bad_ca_file_is_exit_2_at_its_line(value: str, said: str, project: Path,
                                           run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  max_attempts: 5", f"  max_attempts: 5\n  ca_file: {value}")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    line = next(line for line in result.err.splitlines() if "ca_file" in line)
    number = (project / "mirage.yaml").read_text().splitlines().index(f"  ca_file: {value}") + 1
    assert line.startswith(f"mirage.yaml:{number}: ") and said in line


def test_ca_file_and_tls_insecure_contradict(project: Path, run_cli: RunCli,
                                             ca: trustme.CA) -> None:
    write_ca(ca, project / "ca.pem")
    edit(project / "mirage.yaml", "  max_attempts: 5",
         "  max_attempts: 5\n  ca_file: ca.pem\n  tls_insecure: true")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2 and "contradict" in result.err


def test_client_context_floor_and_checks(ca: trustme.CA, tmp_path: Path) -> None:
    strict = client_context(ca_file=write_ca(ca, tmp_path / "ca.pem"))
    assert strict.minimum_version == ssl.TLSVersion.TLSv1_2
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    assert len(strict.get_ca_certs()) == 1  # only the private CA, not the system's too
    lax = client_context(insecure=True)
    assert lax.verify_mode == ssl.CERT_NONE and not lax.check_hostname
    assert lax.minimum_version == ssl.TLSVersion.TLSv1_2


def test_serve_warns_about_tls_insecure(project: Path) -> None:
    """serve mails sign-up confirmations through the same relay: it warns at start."""
    edit(project / "mirage.yaml", "  url: maildir:outbox", "  url: smtps://127.0.0.1:9")
    edit(project / "mirage.yaml", "  max_attempts: 5", "  max_attempts: 5\n  tls_insecure: true")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "serve", "--port", str(port)],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # printed once serving
        assert banner.startswith("serving "), banner
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    warnings = [line for line in err.splitlines() if "tls_insecure" in line]
    assert len(warnings) == 1 and "warning:" in warnings[0], err
    assert "Traceback" not in err


def test_every_tls_client_context_comes_from_delivery_tls() -> None:
    """One builder of client contexts (delivery/tls.py), so the TLS 1.2 floor and the host-name
    check are the same for the SMTP relay, the bounce mailbox and the unsubscribe mailbox.
    project/cafile.py only loads ``ca_file`` to report a bad file at its line; it never
    connects."""
    import mirage_mailer

    root = Path(mirage_mailer.__file__).parent
    allowed = {root / "delivery" / "tls.py", root / "project" / "cafile.py"}
    builders = ("create_default_context(", "SSLContext(", "_create_unverified_context(")
    found = [f"{path.relative_to(root)}:{number}"
             for path in sorted(root.rglob("*.py")) if path not in allowed
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if any(builder in line for builder in builders)]
    assert found == [], found


def test_imap_contexts_have_the_relays_floor_and_checks(ca: trustme.CA, tmp_path: Path) -> None:
    from mirage_mailer.services.bounce_mailbox import tls_context
    from mirage_mailer.services.unsubmail import imap_context

    bounces = tls_context(write_ca(ca, tmp_path / "ca.pem"))
    assert len(bounces.get_ca_certs()) == 1  # bounces.ca_file alone, not the system's too
    for context in (bounces, imap_context()):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
