"""Connection security and the problems that stop a run (exit 3) before anything is marked sent."""

from __future__ import annotations

import ssl

import pytest
from delivery_support import Deliver, Run, make_envelopes, make_transport, resolved_after_abort

from mirage_mailer.delivery import Outcome, RetryPolicy
from support.ports import RefusingPorts
from support.smtp_sink import SmtpSink

CREDS = ("officer", "s3cret")


def assert_aborted_before_sending(run: Run, sink: SmtpSink | None = None) -> str:
    assert run.aborted is not None, "expected DeliveryAborted"
    assert run.aborted.exit_code == 3
    assert run.rec.attempts == [] and run.rec.results == []
    if sink is not None:
        assert sink.received == [] and sink.count("MAIL") == 0
    return str(run.aborted)


@pytest.mark.smtp_server(auth=CREDS, auth_require_tls=False)
def test_refused_authentication_aborts(sink: SmtpSink, deliver: Deliver) -> None:
    transport = make_transport(sink.url, allow_plaintext_auth=True)
    run = deliver(transport, make_envelopes(3), credentials=("officer", "wrong"))
    message = assert_aborted_before_sending(run, sink)
    assert message.startswith(f"127.0.0.1:{sink.port}: ")
    assert "refused the user name and password" in message and "(535 " in message
    assert "password_env" in message and "wrong" not in message
    assert sink.connections == 1  # a wrong password is not retried


@pytest.mark.smtp_server(auth=CREDS, auth_require_tls=False)
def test_plaintext_auth_needs_explicit_opt_in(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, starttls="auto"), make_envelopes(3), credentials=CREDS)
    assert "without encryption" in assert_aborted_before_sending(run, sink)
    assert sink.count("AUTH") == 0  # the password never left the process

    allowed = make_transport(sink.url, starttls="auto", allow_plaintext_auth=True)
    run = deliver(allowed, make_envelopes(3), credentials=CREDS)
    assert run.stats is not None and run.stats.sent == 3
    assert sink.count("AUTH") == sink.connections - 1  # every new connection logged in


def test_plaintext_auth_is_refused_before_connecting(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, starttls="never"), make_envelopes(1),
                  credentials=CREDS)
    assert "allow_plaintext_auth" in assert_aborted_before_sending(run)
    assert sink.connections == 0


def test_starttls_always_without_server_support_aborts(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, starttls="always"), make_envelopes(3))
    assert "does not offer STARTTLS" in assert_aborted_before_sending(run, sink)


@pytest.mark.smtp_server(tls="starttls", auth=CREDS, auth_required=True)
def test_starttls_then_auth_delivers_encrypted(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url, starttls="always"), make_envelopes(5),
                  credentials=CREDS)
    assert run.stats is not None and run.stats.sent == 5
    assert all(m.tls for m in sink.received)


@pytest.mark.smtp_server(tls="implicit", auth=CREDS)
def test_smtps_implicit_tls(sink: SmtpSink, deliver: Deliver) -> None:
    assert sink.url.startswith("smtps://")
    run = deliver(make_transport(sink.url), make_envelopes(3), credentials=CREDS)
    assert run.stats is not None and run.stats.sent == 3
    assert all(m.tls for m in sink.received)


@pytest.mark.smtp_server(tls="implicit")
def test_untrusted_certificate_aborts(sink: SmtpSink, deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url), make_envelopes(2),
                  tls_context=ssl.create_default_context())  # system CAs: test CA unknown
    assert "certificate" in assert_aborted_before_sending(run, sink).lower()


@pytest.mark.smtp_server(auth=CREDS, auth_required=True)
def test_server_requiring_auth_aborts_without_failing_anyone(sink: SmtpSink,
                                                             deliver: Deliver) -> None:
    run = deliver(make_transport(sink.url), make_envelopes(4))
    assert run.aborted is not None and "530" in str(run.aborted)
    assert run.rec.keys(Outcome.FAILED) == set() and run.rec.keys(Outcome.SENT) == set()
    resolved_after_abort(run.rec)


def test_unreachable_server_aborts_quickly(deliver: Deliver,
                                           refusing_port: RefusingPorts) -> None:
    port = refusing_port()  # a port nobody listens on
    run = deliver(make_transport(f"smtp://127.0.0.1:{port}"), make_envelopes(5),
                  policy=RetryPolicy())  # the real reconnect backoff
    message = assert_aborted_before_sending(run)
    assert f"127.0.0.1:{port}: cannot connect" in message
    assert run.elapsed < 5
