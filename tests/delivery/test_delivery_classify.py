"""The reply table: which answers fail a recipient, defer it, or stop the run."""

from __future__ import annotations

import pytest

from mirage_mailer.delivery.classify import Verdict, classify, is_throttle


@pytest.mark.parametrize(("stage", "code", "verdict"), [
    ("DATA", 250, Verdict.SENT),
    ("RCPT", 550, Verdict.FAILED),  # unknown user: this recipient only
    ("RCPT", 553, Verdict.FAILED),
    ("DATA", 554, Verdict.FAILED),  # content refused
    ("MAIL", 552, Verdict.FAILED),  # this message is too big
    ("MAIL", 553, Verdict.ABORT),  # sender refused: everyone would fail the same way
    ("MAIL", 550, Verdict.ABORT),
    ("RCPT", 530, Verdict.ABORT),  # authentication required
    ("RCPT", 450, Verdict.DEFERRED),
    ("RCPT", 451, Verdict.DEFERRED),
    ("MAIL", 421, Verdict.DEFERRED),
    ("DATA", 452, Verdict.DEFERRED),
    ("DATA", -1, Verdict.DEFERRED),  # a garbled answer never loses a recipient
])
def test_classify(stage: str, code: int, verdict: Verdict) -> None:
    assert classify(stage, code) is verdict


def test_throttle_codes() -> None:
    assert [c for c in (250, 421, 450, 451, 452, 454, 550) if is_throttle(c)] == [
        421, 450, 451, 452]
    assert not is_throttle(None)
