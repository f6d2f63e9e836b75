"""Test support, not part of the wheel: a real SMTP server that records and injects faults.

``smtp_sink.SmtpSink`` (aiosmtpd on 127.0.0.1) and its fault rules (``faults``) serve the tests
and ``bench/``. They need the ``test`` extra (aiosmtpd), so they live here rather than in
``mirage_mailer``. Importable as ``support`` because ``tests/`` is on ``sys.path`` (pytest puts it
there for ``tests/conftest.py``; the bench scripts add it themselves).
"""
