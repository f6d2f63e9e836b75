"""Refusals to RCPT TO that are about the session or the sender, not the recipient.

The table behind ``delivery/refusals.py`` at RCPT, without a socket: which words stop the
run at once, which replies count as "the same for everyone" once the recipient's address is
masked, and which stay the recipient's own (a bad mailbox fails, as before)."""

from __future__ import annotations

import pytest

from mirage_mailer.delivery.classify import session_refusal, session_reply
from mirage_mailer.delivery.refusals import Judgement, MessageRefusals


@pytest.mark.parametrize(("code", "text", "kind"), [
    (554, "5.7.1 <a@x.org>: Relay access denied", "relay"),  # Postfix
    (550, "relay not permitted", "relay"),  # Exim
    (550, "5.7.54 SMTP; Unable to relay recipient in non-accepted domain", "relay"),  # Exchange
    (550, "5.7.1 <a@x.org>... Relaying denied. Proper authentication required.", "relay"),
    (553, "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "relay"),  # qmail
    (530, "5.7.1 Authentication required", "login"),
    (550, "5.7.1 Client must authenticate first", "login"),
    (553, "5.7.1 <news@x.org>: Sender address rejected: not logged in", "login"),
    (553, "5.7.1 <news@x.org>: Sender address rejected: not owned by user bob", "sender"),
    (550, "5.1.1 <a@x.org>: Recipient address rejected: User unknown in virtual mailbox "
          "table", None),
    (550, "5.1.1 User unknown", None),
    (550, "5.7.1 <a@x.org>: Recipient address rejected: Access denied", None),
    (550, "5.7.1 Message rejected as spam", None),
    (450, "4.7.1 <a@x.org>: Relay access denied", None),  # a 4xx is retried, never a stop
])
def test_words_about_the_session_or_the_sender(code: int, text: str, kind: str | None) -> None:
    assert session_refusal("RCPT", code, text) == kind


def test_the_end_of_data_has_its_own_rule() -> None:
    assert session_refusal("DOT", 554, "5.7.1 Relay access denied") is None
    assert session_refusal("MAIL", 553, "5.7.1 Sender address rejected") is None  # aborts anyway


@pytest.mark.parametrize(("text", "same"), [
    ("5.7.1 <{a}>: Client host rejected: cannot find your hostname, [192.0.2.7]", True),
    ("5.7.1 Service unavailable; client [192.0.2.7] blocked using zen.spamhaus.org", True),
    ("Administrative prohibition", True),
    ("5.1.1 <{a}>: Recipient address rejected: User unknown in virtual mailbox table", False),
    ("<{a}>: Recipient address rejected: User unknown in virtual mailbox table", False),
    ("5.1.1 User unknown", False),
    ("No such user here", False),
    ("Requested action not taken: mailbox unavailable", False),
    ("5.2.1 <{a}>: account disabled", False),
])
def test_which_rcpt_replies_may_be_the_sessions(text: str, same: bool) -> None:
    """Masked of the recipient's address, the reply reads the same for everyone."""
    replies = {session_reply("RCPT", 554, text.format(a=a), a)
               for a in ("reader1@example.org", "Reader2@Example.org")}
    if same:
        [reply] = replies
        assert reply is not None and "reader" not in reply.lower()
    else:
        assert replies == {None}


def test_only_rcpt_is_masked_and_counted_here() -> None:
    assert session_reply("DOT", 554, "5.6.0 content rejected", "a@x.org") is None
    assert session_reply("DATA", 554, "No valid recipients", "a@x.org") is None


DENIED = "5.7.1 <{a}>: Relay access denied"


def test_relay_denied_stops_at_once_and_everyone_in_flight_stays_pending() -> None:
    judge = MessageRefusals()
    assert judge.judge(1, "a@x.org", "RCPT", 554, DENIED.format(a="a@x.org")) \
        is Judgement.REFUSED
    assert judge.judge(2, "b@x.org", "RCPT", 554, DENIED.format(a="b@x.org")) \
        is Judgement.REFUSED


def test_after_a_stop_the_held_recipient_is_not_counted_but_the_next_one_stops() -> None:
    judge = MessageRefusals()
    assert judge.judge(1, "a@x.org", "RCPT", 554, DENIED.format(a="a@x.org"),
                       refused_before=True) is Judgement.HOLD
    assert judge.judge(2, "b@x.org", "RCPT", 554, DENIED.format(a="b@x.org")) \
        is Judgement.REFUSED


def test_a_held_session_refusal_is_the_recipients_once_others_got_through() -> None:
    """One group that wants logged-in senders: after one stop, its refusal is its own."""
    judge = MessageRefusals()
    words = "5.7.1 Authentication required for this group"
    assert judge.judge(1, "g@x.org", "RCPT", 550, words, refused_before=True) \
        is Judgement.HOLD
    judge.accepted()
    assert judge.judge(1, "g@x.org", "RCPT", 550, words) is Judgement.FAILED


def test_the_same_masked_reply_for_three_recipients_stops_the_run() -> None:
    judge = MessageRefusals()
    host = "5.7.1 <{a}>: Client host rejected: cannot find your hostname, [192.0.2.7]"
    got = [judge.judge(key, a, "RCPT", 554, host.format(a=a))
           for key, a in enumerate(["a@x.org", "b@x.org", "c@x.org"])]
    assert got == [Judgement.HOLD, Judgement.HOLD, Judgement.STOP]


def test_bad_mailboxes_in_a_row_fail_at_once() -> None:
    judge = MessageRefusals()
    for key, a in enumerate(["bad1@x.org", "bad2@x.org", "bad3@x.org", "bad4@x.org"]):
        for text in ("5.1.1 <{a}>: Recipient address rejected: User unknown in virtual "
                     "mailbox table", "5.1.1 User unknown", "No such user here"):
            assert judge.judge(key, a, "RCPT", 550, text.format(a=a)) is Judgement.FAILED
