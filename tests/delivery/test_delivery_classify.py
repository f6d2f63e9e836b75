"""The reply table: which answers fail a recipient, defer it, or stop the run."""

from __future__ import annotations

import pytest

from mirage_mailer.delivery.classify import (
    BurstDetector,
    Verdict,
    classify,
    is_throttle,
    message_refusal,
)
from mirage_mailer.delivery.refusals import Judgement, MessageRefusals


@pytest.mark.parametrize(("stage", "code", "verdict"), [
    ("DOT", 250, Verdict.SENT),  # the end of DATA accepted: the only "sent"
    ("RCPT", 550, Verdict.FAILED),  # unknown user: this recipient only
    ("RCPT", 553, Verdict.FAILED),
    ("DATA", 554, Verdict.FAILED),  # no DATA for this transaction
    ("DOT", 554, Verdict.FAILED),  # content refused (for this one; several: delivery/refusals)
    ("MAIL", 552, Verdict.ABORT),  # the message is too big: for everyone, not this one
    ("MAIL", 553, Verdict.ABORT),  # sender refused: everyone would fail the same way
    ("MAIL", 550, Verdict.ABORT),
    ("RCPT", 530, Verdict.ABORT),  # authentication required
    ("RCPT", 450, Verdict.DEFERRED),
    ("RCPT", 451, Verdict.DEFERRED),
    ("MAIL", 421, Verdict.DEFERRED),
    ("DATA", 452, Verdict.DEFERRED),
    ("DOT", 451, Verdict.DEFERRED),  # a clear "not now" after the body: retried
    # a reply that does not fit its command: out of step, or not SMTP. Before the end of
    # DATA the relay cannot have the message (retried); after it, it may (unknown)
    ("DATA", -1, Verdict.DEFERRED),
    ("DATA", 250, Verdict.DEFERRED),  # 250 where 354 is due: the body never went
    ("RCPT", 354, Verdict.DEFERRED),
    ("MAIL", 220, Verdict.DEFERRED),
    ("DOT", -1, Verdict.UNKNOWN),  # "OK queued as 12345": maybe queued
    ("DOT", 25, Verdict.UNKNOWN),  # a cut reply
    ("DOT", 354, Verdict.UNKNOWN),
    ("DOT", 150, Verdict.UNKNOWN),
    ("DOT", 251, Verdict.UNKNOWN),  # RFC 5321: 250 is the one answer that says "accepted"
])
def test_classify(stage: str, code: int, verdict: Verdict) -> None:
    assert classify(stage, code) is verdict


@pytest.mark.parametrize(("stage", "code", "text", "verdict"), [
    ("DATA", 552, "5.3.4 message size exceeds fixed limit", Verdict.ABORT),
    ("RCPT", 552, "5.3.4 Message too big", Verdict.ABORT),
    ("DATA", 552, "5.2.2 Mailbox full", Verdict.FAILED),  # that mailbox's
    ("RCPT", 552, "Too many recipients", Verdict.FAILED),
])
def test_a_message_too_big_stops_the_run(stage: str, code: int, text: str,
                                         verdict: Verdict) -> None:
    assert classify(stage, code, text) is verdict


@pytest.mark.parametrize(("stage", "code", "text", "reply"), [
    ("DOT", 554, "5.6.0 content rejected", "554 5.6.0 content rejected"),  # the usual place
    ("DOT", 554, "  5.6.0   content\r\n rejected ", "554 5.6.0 content rejected"),
    ("DOT", 550, "5.7.1 Message rejected as spam", "550 5.7.1 Message rejected as spam"),
    ("DOT", 554, "Transaction failed", "554 Transaction failed"),  # the words, not just 554
    ("DOT", 550, "5.1.1 <a@example.org>: no such user", None),  # the address's
    ("DOT", 552, "5.2.2 Mailbox full", None),  # the mailbox's
    # a relay without enhanced codes: its words say it is about the recipient
    ("DOT", 550, "Requested action not taken: mailbox unavailable", None),
    ("DOT", 550, "5.7.1 Recipient address rejected: Access denied", None),
    ("DOT", 554, "No such user here", None),
    ("DOT", 550, "unknown addressee", None),
    # before the content went out a relay cannot be refusing it
    ("DATA", 554, "5.6.0 content rejected", None),
    ("DATA", 554, "No valid recipients", None),
    ("RCPT", 554, "5.6.0 content rejected", None),
    ("DOT", 451, "4.6.0 try later", None),
])
def test_which_refusals_may_be_the_messages(stage: str, code: int, text: str,
                                            reply: str | None) -> None:
    assert message_refusal(stage, code, text, "maria.georgiou@example.org") == reply


@pytest.mark.parametrize(("text", "about_her"), [
    ("mailbox bad1@example.org unavailable", True),
    ("550 <BAD1@Example.org> refused", True),
    ("bad1: refused by local policy", True),
    ("refused for 'bad1'", True),
    ("bad10: refused by local policy", False),  # another local part
    ("refused by policy (bad1x)", False),
    ("refused by local policy", False),
])
def test_a_reply_that_names_the_recipient_is_hers(text: str, about_her: bool) -> None:
    assert (message_refusal("DOT", 550, text, "bad1@example.org") is None) is about_her


def test_a_short_local_part_is_no_evidence() -> None:
    """"a" or "jo" are ordinary words: only the whole address names such a recipient."""
    assert message_refusal("DOT", 554, "a message refused by policy", "a@x.org") is not None
    assert message_refusal("DOT", 554, "refused by policy: a@x.org", "a@x.org") is None


CONTENT = ("DOT", 554, "5.6.0 content rejected")


def test_the_same_refusal_for_three_recipients_in_a_row_is_the_messages() -> None:
    judge = MessageRefusals()
    assert judge.judge(1, "a@x.org", *CONTENT) is Judgement.HOLD
    assert judge.judge(2, "b@x.org", *CONTENT) is Judgement.HOLD
    assert judge.judge(3, "c@x.org", *CONTENT) is Judgement.STOP


def test_a_message_accepted_between_makes_the_refusals_the_recipients() -> None:
    judge = MessageRefusals()
    assert judge.judge(1, "a@x.org", *CONTENT) is Judgement.HOLD
    assert judge.judge(2, "b@x.org", *CONTENT) is Judgement.HOLD
    judge.accepted()
    assert judge.judge(3, "c@x.org", *CONTENT) is Judgement.HOLD  # counted anew
    assert judge.judge(1, "a@x.org", *CONTENT) is Judgement.FAILED  # held once already
    assert judge.judge(4, "d@x.org", "DOT", 550, "5.7.1 spam") is Judgement.HOLD
    assert judge.judge(5, "e@x.org", *CONTENT) is Judgement.HOLD  # another reply: anew
    assert judge.judge(6, "f@x.org", "DOT", 550, "5.1.1 no such user") is Judgement.FAILED


def test_replies_that_differ_in_words_are_not_the_same() -> None:
    """A relay without enhanced codes says 550 to everything; the code alone is no proof."""
    judge = MessageRefusals()
    for key, words in enumerate(["refused (policy alpha)", "refused (policy beta)",
                                 "refused (policy gamma)", "refused (policy delta)"]):
        assert judge.judge(key, f"r{key}@x.org", "DOT", 550, words) is Judgement.HOLD


def test_refusals_to_the_data_command_never_stop_the_run() -> None:
    judge = MessageRefusals()
    for key in range(5):
        assert judge.judge(key, f"r{key}@x.org", "DATA", 554,
                           "5.6.0 content rejected") is Judgement.FAILED


def test_recipients_held_by_an_earlier_stop_are_held_again_but_not_counted() -> None:
    """Else the same three rows at the top of the list stop every rerun: the issue could
    never be delivered. The next three recipients still tell a real content filter."""
    judge = MessageRefusals()
    for key in (1, 2, 3, 4):
        assert judge.judge(key, f"r{key}@x.org", *CONTENT,
                           refused_before=True) is Judgement.HOLD
    assert judge.judge(5, "e@x.org", *CONTENT) is Judgement.HOLD
    assert judge.judge(6, "f@x.org", *CONTENT) is Judgement.HOLD
    assert judge.judge(7, "g@x.org", *CONTENT) is Judgement.STOP


def test_refused_again_with_nothing_accepted_meanwhile_stays_pending() -> None:
    """Too few recipients left to tell a content filter: none is failed on that evidence."""
    judge = MessageRefusals()
    assert judge.judge(1, "a@x.org", *CONTENT, refused_before=True) is Judgement.HOLD
    assert judge.judge(2, "b@x.org", *CONTENT) is Judgement.HOLD
    assert judge.judge(1, "a@x.org", *CONTENT, refused_before=True) is Judgement.KEEP
    assert judge.judge(2, "b@x.org", *CONTENT) is Judgement.KEEP
    judge.accepted()
    assert judge.judge(2, "b@x.org", *CONTENT) is Judgement.FAILED


def test_throttle_codes_need_words_about_pace() -> None:
    slow = "4.7.1 Rate limit exceeded, try again later"
    assert [c for c in (250, 421, 450, 451, 452, 454, 550) if is_throttle(c, slow)] == [
        421, 450, 451, 452]
    assert not is_throttle(None, slow)


@pytest.mark.parametrize("text", [
    "4.7.1 Rate limit exceeded",
    "4.7.0 Too many messages, slow down; closing",
    "Throttling: please retry later",
    "4.7.28 Our system has detected an unusual rate of unsolicited mail",
    "Slow down",
    "4.3.2 Too many connections from your host",
    "Daily sending quota exceeded",
])
def test_replies_about_pace_are_throttles(text: str) -> None:
    assert is_throttle(451, text)


@pytest.mark.parametrize(("code", "text"), [
    (451, "4.7.1 Greylisted, please try again later"),
    (450, "4.2.0 Greylisted for 300 seconds"),
    (450, "4.7.1 <r@example.net>: Recipient address rejected: try again later"),
    (452, "4.2.2 Mailbox full"),
    (452, "4.2.2 The email account is over quota"),  # one mailbox: never the pool's pace
    (450, "4.2.1 The user is receiving mail at a rate that prevents more messages"),
    (421, "4.3.2 Service shutting down"),
    (451, "4.3.0 Temporary lookup failure"),
    (452, "4.3.4 Message size exceeds fixed limit"),  # this message, not our pace
])
def test_replies_about_one_recipient_are_not_throttles(code: int, text: str) -> None:
    assert not is_throttle(code, text)


def test_a_burst_of_plain_4xx_across_recipients_is_throttling() -> None:
    bursts = BurstDetector(window=1.0, least=8, share=0.5)
    now = 100.0
    for i in range(90):  # one in ten greylisted: never a burst
        now += 0.001
        if i % 10 == 0:
            assert not bursts.refusal(now, f"g{i}@example.net")
        else:
            bursts.success(now)
    # then most answers are refusals, from many recipients: the relay refuses our pace
    seen = [bursts.refusal(now + 0.001 * i, f"r{i}@example.net") for i in range(100)]
    assert not seen[0] and seen[-1]


def test_one_recipient_refused_again_and_again_is_not_a_burst() -> None:
    bursts = BurstDetector(window=1.0, least=8, share=0.5)
    assert not any(bursts.refusal(100 + 0.01 * i, "same@example.net") for i in range(50))


def test_a_filters_queue_id_or_score_does_not_hide_one_refusal_of_the_message() -> None:
    """Content filters put a queue id or a score in every reply: a word holding a digit is
    masked, so three refusals of the message read the same; other words still differ."""
    first = message_refusal("DOT", 554, "5.6.0 Rejected as spam, id 4Xy2Zq12 score 7.3",
                            "a@example.org")
    second = message_refusal("DOT", 554, "5.6.0 Rejected as spam, id 9Q8w7E score 8.1",
                             "b@example.org")
    assert first == second == "554 5.6.0 Rejected as spam, id # score #"
    assert message_refusal("DOT", 554, "5.6.0 Rejected: bad attachment, id 9Q8w7E",
                           "c@example.org") != first
