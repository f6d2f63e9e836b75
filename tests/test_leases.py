"""The lease SQL of several senders on one PostgreSQL store (``store/leases.py``).

Against a real PostgreSQL server (tests/support/postgres.py): two senders claiming at once
never get the same row (``FOR UPDATE SKIP LOCKED``), a sender reaped as dead changes nothing
with its late claims and outcomes, a lost heartbeat is seen, and lease times are the
server's clock, whatever a host's clock says.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from mirage_mailer.commands.send import summary
from mirage_mailer.services.lease_recorder import LeaseRecorder
from mirage_mailer.services.sending import SendOutcome
from mirage_mailer.store import NewRecipient, Store, open_store
from mirage_mailer.util.database import PostgresUrl

ISSUE = "2026-01-leases"


def _rows(n: int) -> list[NewRecipient]:
    return [NewRecipient(f"reader{k:04d}@example.org", None, None, "subscribers")
            for k in range(n)]


@pytest.fixture
def store(pg_url: PostgresUrl) -> Iterator[Store]:
    with open_store(pg_url) as s:
        s.add_recipients(ISSUE, _rows(300))
        yield s


def _expire(url: PostgresUrl, owner: str) -> None:
    """What a stall longer than the lease looks like to the others: its lease has run out."""
    with psycopg.connect(str(url), autocommit=True) as conn:
        conn.execute("UPDATE senders SET expires_at = clock_timestamp() - interval '1 second'"
                     " WHERE owner = %s", (owner,))


def _status(url: PostgresUrl) -> dict[int, tuple[str, str | None]]:
    with psycopg.connect(str(url), autocommit=True) as conn:
        return {rid: (status, owner) for rid, status, owner in conn.execute(
            "SELECT id, status, lease_owner FROM recipients WHERE issue = %s", (ISSUE,))}


def test_two_senders_claiming_at_once_never_share_a_row(pg_url: PostgresUrl, store: Store) -> None:
    with open_store(pg_url) as other:
        store.register_sender("a", ISSUE, "host-a", 1, 60)
        other.register_sender("b", ISSUE, "host-b", 2, 60)
        got: dict[str, list[int]] = {"a": [], "b": []}
        start = threading.Barrier(2)

        def take(s: Store, owner: str) -> None:
            start.wait()
            while rows := s.claim(owner, ISSUE, 7):
                got[owner] += [r.id for r in rows]

        threads = [threading.Thread(target=take, args=(s, o))
                   for s, o in ((store, "a"), (other, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not set(got["a"]) & set(got["b"])
        assert sorted(got["a"] + got["b"]) == sorted(_status(pg_url))
        assert got["a"] and got["b"]  # both took part
        assert {o for _s, o in _status(pg_url).values()} == {"a", "b"}


def test_a_claim_skips_rows_another_claim_holds_instead_of_waiting(
        pg_url: PostgresUrl, store: Store) -> None:
    store.register_sender("b", ISSUE, "host-b", 2, 60)
    ids = sorted(_status(pg_url))
    with psycopg.connect(str(pg_url)) as holder:  # a claim of the first ten, not yet committed
        holder.execute("SELECT id FROM recipients WHERE id = ANY(%s) FOR UPDATE",
                       (ids[:10],))
        done: list[list[int]] = []
        worker = threading.Thread(
            target=lambda: done.append([r.id for r in store.claim("b", ISSUE, 5) or []]))
        worker.start()
        worker.join(5)
        assert done == [ids[10:15]]  # at once, the next free ones
        holder.rollback()


def test_a_reaped_sender_changes_nothing_with_its_late_words(
        pg_url: PostgresUrl, store: Store) -> None:
    with open_store(pg_url) as other:
        store.register_sender("dead", ISSUE, "host-a", 1, 60)
        rows = store.claim("dead", ISSUE, 3)
        assert rows is not None and len(rows) == 3
        on_wire, leased, answered = (r.id for r in rows)
        stamp = store.stamp()
        assert store.mark("dead", [], [(on_wire, "<m1@x>", stamp)])
        assert store.mark("dead", [], [(answered, "<m3@x>", stamp)])
        _expire(pg_url, "dead")
        other.register_sender("live", ISSUE, "host-b", 2, 60)
        reaped = other.reap(ISSUE)
        assert (reaped.senders, reaped.unknown, reaped.released) == (1, 2, 1)
        assert reaped.words() == (  # one line: which sender, what became of its rows
            "1 sender(s) of this issue stopped renewing their lease (host-a pid 1): 2 "
            "recipient(s) they had on the wire are unknown (check, then --resend-unknown), "
            "1 others are back in the pool")
        after = _status(pg_url)
        assert after[on_wire] == after[answered] == ("unknown", None)
        assert after[leased] == ("pending", None)
        # the stalled sender wakes up: nothing it says lands
        assert not store.mark("dead", [(answered, "sent", 250, "ok", "<m3@x>", stamp, True,
                                        None)], [(leased, "<m2@x>", stamp)])
        assert store.claim("dead", ISSUE, 5) is None
        assert not store.heartbeat("dead", 60)
        assert _status(pg_url) == after
        # and the live sender may take the row back
        took = other.claim("live", ISSUE, 300)
        assert took is not None and leased in {r.id for r in took}
        # an unknown row sent again (--resend-unknown) by the live sender: the dead one's
        # late answer for it still lands nowhere
        other.requeue_unknown(ISSUE)
        again = other.claim("live", ISSUE, 300)
        assert again is not None and on_wire in {r.id for r in again}
        assert other.mark("live", [], [(on_wire, "<m9@x>", stamp)])
        assert not store.mark("dead", [(on_wire, "failed", 550, "no", "<m1@x>", stamp, True,
                                        None)])
        assert _status(pg_url)[on_wire] == ("sending", "live")


def test_outcomes_land_only_on_rows_still_on_the_wire_for_that_sender(
        pg_url: PostgresUrl, store: Store) -> None:
    store.register_sender("a", ISSUE, "host-a", 1, 60)
    rows = store.claim("a", ISSUE, 2)
    assert rows is not None
    first, second = rows[0].id, rows[1].id
    stamp = store.stamp()
    assert store.mark("a", [], [(first, "<m1@x>", stamp)])
    assert store.mark("a", [(first, "sent", 250, "2.0.0 ok", "<m1@x>", stamp, True, None)],
                      [(second, "<m2@x>", stamp)])
    assert not store.mark("a", [(second, "deferred", 451, "later", "<m2@x>", stamp, True,
                                 None)])  # no claim in this commit
    states = _status(pg_url)
    assert states[first] == ("sent", None)
    assert states[second] == ("pending", "a")  # deferred: still this sender's to retry
    assert store.counts(ISSUE)["sent"] == 1
    # its retry: the deferral and the new claim of the same row in one commit, in that order
    assert store.mark("a", [], [(rows[0].id, "<m0@x>", stamp)]) == set()  # sent: not again
    assert store.mark("a", [], [(second, "<m2@x>", stamp)])  # the retry goes on the wire
    assert store.mark("a", [(second, "deferred", 451, "later", "<m2@x>", stamp, True, None)],
                      [(second, "<m2@x>", stamp)])  # deferred once more, and tried again
    assert _status(pg_url)[second] == ("sending", "a")
    assert store.mark("a", [(second, "deferred", 451, "again", "<m2@x>", stamp, True,
                             None)]) == set()
    # the reader leaves the list between two attempts: the closing word does not bring
    # the row back
    store.reconcile(ISSUE, [rows[1].email])
    assert _status(pg_url)[second] == ("withdrawn", "a")
    store.mark("a", [(second, "deferred", 451, "gave up", "<m2@x>", stamp, False, None)])
    assert _status(pg_url)[second] == ("withdrawn", "a")
    assert store.release("a") == (0, 1)
    assert _status(pg_url)[second] == ("withdrawn", None)
    assert store.claim("a", ISSUE, 1) is None  # released: no longer registered


def test_lease_times_are_the_servers_clock_not_the_hosts(pg_url: PostgresUrl) -> None:
    past = datetime(2001, 1, 1, tzinfo=UTC)
    future = datetime(2099, 1, 1, tzinfo=UTC)
    with Store(pg_url, clock=lambda: past) as slow, Store(pg_url, clock=lambda: future) as fast:
        slow.add_recipients(ISSUE, _rows(3))
        slow.register_sender("slow", ISSUE, "behind", 1, 30)
        fast.register_sender("fast", ISSUE, "ahead", 2, 30)
        assert fast.reap(ISSUE).senders == 0  # a host far ahead does not end a live lease
        assert slow.reap(ISSUE).senders == 0
        for info in fast.senders(ISSUE):
            assert 25 < info.expires_in <= 30
        before = slow.senders(ISSUE)[0].expires_in
        time.sleep(0.3)
        assert slow.heartbeat("slow", 30)
        assert slow.senders(ISSUE)[0].expires_in > before


def test_a_lost_heartbeat_is_seen(pg_url: PostgresUrl, store: Store) -> None:
    store.register_sender("a", ISSUE, "host-a", 1, 60)
    assert store.heartbeat("a", 60)
    _expire(pg_url, "a")
    with open_store(pg_url) as other:
        assert other.reap(ISSUE).senders == 1
    assert not store.heartbeat("a", 60)


def test_the_recorder_stops_at_a_lost_heartbeat(pg_url: PostgresUrl, store: Store) -> None:
    store.register_sender("a", ISSUE, "host-a", 1, 30)
    rows = store.claim("a", ISSUE, 1)
    assert rows is not None
    lost: list[bool] = []
    recorder = LeaseRecorder(store, "a", 0.3, on_lost=lambda: lost.append(True))

    async def run() -> None:
        recorder.start()
        _expire(pg_url, "a")
        with open_store(pg_url) as other:
            assert other.reap(ISSUE).senders == 1
        await asyncio.sleep(0.35)  # a heartbeat every 0.1 s
        recorder.close()

    asyncio.run(run())
    assert lost == [True] and recorder.lost
    assert not asyncio.run(recorder.claim(rows[0].id, "<m@x>"))  # nothing more on the wire
    assert _status(pg_url)[rows[0].id] == ("pending", None)


def test_the_summary_tells_apart_what_other_senders_still_hold() -> None:
    counts = {"sent": 90, "failed": 0, "pending": 5, "unknown": 3, "suppressed": 0,
              "invalid": 0, "withdrawn": 0}
    outcome = SendOutcome("i", "send", counts=counts, elsewhere=4, elsewhere_on_wire=2)
    assert summary(outcome).endswith(
        "; this run: sent 0, failed 0; 6 held by other senders (4 pending, 2 on the wire): "
        "theirs to finish, or a rerun's after tracking.lease_seconds if one has died; "
        "1 pending: rerun send to resume; 1 unknown: check, then rerun with "
        "--resend-unknown")
    alone = SendOutcome("i", "send", counts=counts)
    assert summary(alone).endswith("; this run: sent 0, failed 0; 5 pending: rerun send to "
                                   "resume; 3 unknown: check, then rerun with --resend-unknown")


def test_claims_narrowed_by_address_and_language_take_only_those(pg_url: PostgresUrl) -> None:
    with open_store(pg_url) as s:
        s.add_recipients(ISSUE, [NewRecipient(f"r{n}@example.org", None,
                                              "fr" if n % 2 else None, "l") for n in range(8)])
        s.register_sender("a", ISSUE, "host-a", 1, 60)
        french = s.claim("a", ISSUE, 10, langs=["fr"])
        assert french is not None
        assert [r.email for r in french] == ["r1@example.org", "r3@example.org",
                                             "r5@example.org", "r7@example.org"]
        some = s.claim("a", ISSUE, 10, keys=["r2@example.org", "r3@example.org"], langs=[""])
        assert some is not None and [r.email for r in some] == ["r2@example.org"]
        assert sorted(s.pending_langs(ISSUE)) == ["", "fr"]


def test_durable_commits_leave_the_servers_synchronous_commit(pg_url: PostgresUrl) -> None:
    """By default a sender's session commits without waiting for the server's disk; with
    tracking.durable_commits it waits, whatever the server's default (the test cluster's is
    off), so a crash of the server cannot undo an "on the wire" mark (the acceptance pass
    saw duplicates reported sent after an immediate stop)."""
    with Store(pg_url) as fast, Store(pg_url) as durable:
        fast.register_sender("fast", ISSUE, "host", 1, 30)
        durable.register_sender("durable", ISSUE, "host", 2, 30, durable=True)
        assert fast._conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"
        assert durable._conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"


def test_durable_commits_is_read_from_the_config(tmp_path: Path) -> None:
    from mirage_mailer.project.config import load_settings
    from mirage_mailer.project.scaffold import init_project
    from mirage_mailer.util.errors import InputError

    init_project(tmp_path / "p")
    config = tmp_path / "p" / "mirage.yaml"
    text = config.read_text(encoding="utf-8")
    assert load_settings(config).tracking.durable_commits is True  # the safe side by default
    config.write_text(text.replace("tracking:\n", "tracking:\n  durable_commits: false\n", 1),
                      encoding="utf-8")
    assert load_settings(config).tracking.durable_commits is False
    config.write_text(text.replace("tracking:\n", "tracking:\n  durable_commits: yes please\n",
                                   1), encoding="utf-8")
    with pytest.raises(InputError, match="durable_commits"):
        load_settings(config)
