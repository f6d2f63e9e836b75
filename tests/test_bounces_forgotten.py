"""A bounce or complaint about a reader erased with ``forget`` is said to be about an erased
reader, never a forgery (which would tell the operator that someone forges bounces), and
records nothing about the person: sent with VERP to aiosmtpd, erased in the real store,
``process-bounces`` run as the CLI on a real Maildir."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import RunCli
from mirage_mailer.store import open_store
from test_bounces_e2e import (
    AMINA,
    JEAN,
    MARIA,
    PETER,
    SOFIA,
    bounce,
    drop,
    events,
    sent,
    suppressed,
)

__all__ = ["sent"]  # the fixture
Sent = tuple[dict[str, str], dict[str, str]]
PLAIN = "bounces@mirageproject.eu"  # the return path without a token
ERASED = "unmatched: matches a reader erased with forget; ignored"


def test_bounces_of_forgotten_readers_are_named_so_and_record_nothing(
        project: Path, run_cli: RunCli, sent: Sent) -> None:
    senders, ids = sent
    with open_store(project / ".mirage" / "tracking.sqlite") as store:
        for reader in (MARIA, JEAN, AMINA, PETER, SOFIA):
            store.forget(reader)
    box = project / "bouncebox"
    # by the token, checked against the failed address the report names
    drop(box, "hard", bounce("postfix.eml", verp=senders[MARIA], rcpt=MARIA,
                             message_id=ids[MARIA]))
    drop(box, "arf", bounce("arf-complaint.eml", verp=senders[SOFIA], rcpt=SOFIA,
                            message_id=ids[SOFIA]))
    # no token: our Message-ID, with the failed address (a bounce) or alone (a complaint)
    drop(box, "m365", bounce("microsoft365.eml", verp=PLAIN, rcpt=PETER,
                             message_id=ids[PETER]))
    drop(box, "arf-plain", bounce("arf-complaint.eml", verp=PLAIN, rcpt=AMINA,
                                  message_id=ids[AMINA], mail_id="arf-2@isp.example"))
    # the token of an erased reader, but the report names the address Jean forwards to
    drop(box, "forwarded", bounce("gmail.eml", verp=senders[JEAN],
                                  rcpt="jean.forwarded@gmail.example", message_id="<o@x>"))
    # a forged MAC on an erased reader's row is still a forgery
    forged = re.sub(r"-[0-9a-f]{20}@", "-" + "a" * 20 + "@", senders[MARIA])
    drop(box, "forged", bounce("exim.eml", verp=forged, rcpt=MARIA, message_id=ids[MARIA]))

    result = run_cli("process-bounces")
    assert result.code == 0, result.err
    lines = dict(line.split(".mirage-test: ", 1) for line in result.out.splitlines()
                 if ".mirage-test: " in line)
    assert lines == {
        "bouncebox/new/hard": ERASED,
        "bouncebox/new/arf": ERASED,
        "bouncebox/new/m365": ERASED,
        "bouncebox/new/arf-plain": ERASED,
        "bouncebox/new/forwarded": "unmatched: its VERP token names a reader erased with "
        "forget, and the mail names no address to check it against; ignored",
        "bouncebox/new/forged": "unmatched: its VERP token is forged (altered, or not ours); "
        "ignored",
    }
    assert result.out.strip().splitlines()[-1] == (
        "process-bounces: 6 mail(s): 6 unmatched; 0 address(es) suppressed")
    assert events(project) == []  # no bounce or complaint recorded, not even as a hash
    assert set(suppressed(project).values()) == {"forget"}
    for reader in (MARIA, JEAN, AMINA, PETER, SOFIA):
        assert reader not in result.out
