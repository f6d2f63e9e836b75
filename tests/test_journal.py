"""The claim journal (issue 13): a crashed send's last claims and outcomes, replayed forward.

Units against a real SQLite store (a line cut in the middle, a journal of another issue, the
journal and the store disagreeing, replaying twice), then recovery after SIGKILL at random
moments: ``send`` subprocesses against an aiosmtpd relay on 127.0.0.1 that stores some
messages and drops the connection instead of answering, killed over and over.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, statuses, use_relay
from mirage_mailer.services.journal import (
    Journal,
    journal_path,
    read_journal,
    settle,
    settle_all,
)
from mirage_mailer.services.recorder import SendRecorder
from mirage_mailer.store import NewRecipient, Store, hashed_key
from support.processes import send_killed_after, states_after_kill
from support.smtp_sink import Call, SmtpSink, StoreThenFail

ISSUE = "2021-10-partners-meeting"
AT = "2026-11-30T10:00:00.000+00:00"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / ".mirage"


@pytest.fixture
def store(state: Path) -> Iterator[Store]:
    with Store(state / "tracking.sqlite") as s:
        yield s


def queue(store: Store, issue: str, *emails: str) -> list[int]:
    store.add_recipients(issue, [NewRecipient(e, None, None, "main") for e in emails])
    ids = {r.email: r.id for r in store.iter_pending(issue)}
    return [ids[e] for e in emails]


def row(store: Store, rid: int) -> tuple[str, int, str | None]:
    status, attempts, mid = store._conn.execute(
        "SELECT status, attempts, message_id FROM recipients WHERE id = ?", (rid,)).fetchone()
    return status, attempts, mid


def crashed_run(state: Path, issue: str, store: Store, *emails: str) -> tuple[Journal, list[int]]:
    """Rows queued and a journal opened, as a send has them when it is killed."""
    return Journal(journal_path(state, issue), issue), queue(store, issue, *emails)


def test_replay_applies_outcomes_and_leaves_claims_on_the_wire_unknown(
        state: Path, store: Store) -> None:
    journal, (a, b, c) = crashed_run(state, ISSUE, store, "a@x.org", "b@x.org", "c@x.org")
    journal.claim(a, hashed_key("a@x.org"), 0, "<a@x>", AT)
    journal.outcome(a, hashed_key("a@x.org"), 0, "sent", 250, "2.0.0 ok", "<a@x>", AT)
    journal.claim(b, hashed_key("b@x.org"), 0, "<b@x>", AT)  # on the wire at the kill
    journal.claim(c, hashed_key("c@x.org"), 0, "<c@x>", AT)
    journal.outcome(c, hashed_key("c@x.org"), 0, "deferred", 451, "later", "<c@x>", AT)
    journal.close()  # SIGKILL: nothing else happens
    settle(store, state, ISSUE)
    store.recover_inflight(ISSUE)
    assert row(store, a) == ("sent", 1, "<a@x>")
    assert row(store, b)[0] == "unknown"
    assert row(store, c) == ("pending", 1, "<c@x>")
    assert not journal_path(state, ISSUE).exists()


def relay_of(store: Store, rid: int) -> str | None:
    found = store._conn.execute("SELECT relay FROM recipients WHERE id = ?", (rid,)).fetchone()
    return found[0]  # type: ignore[no-any-return]


def test_a_replayed_outcome_keeps_the_relay_that_answered(state: Path, store: Store) -> None:
    """With several relays, the relay is in the outcome's line: after SIGKILL, the replay
    records who carried each message (the last attempt's relay), not NULL."""
    first, second = "smtp://127.0.0.1:2721", "smtp://127.0.0.1:2722"
    journal, (a, b, c) = crashed_run(state, ISSUE, store, "a@x.org", "b@x.org", "c@x.org")
    wa, wb, wc = (hashed_key(f"{n}@x.org") for n in "abc")
    journal.claim(a, wa, 0, "<a@x>", AT)
    journal.outcome(a, wa, 0, "sent", 250, "ok", "<a@x>", AT, first)
    journal.claim(b, wb, 0, "<b@x>", AT)
    journal.outcome(b, wb, 0, "deferred", 451, "later", "<b@x>", AT, first)
    journal.claim(b, wb, 1, "<b@x>", AT)
    journal.outcome(b, wb, 1, "sent", 250, "ok", "<b@x>", AT, second)  # retried elsewhere
    journal.claim(c, wc, 0, "<c@x>", AT)  # on the wire at the kill
    journal.close()
    replay = read_journal(journal_path(state, ISSUE))
    assert replay.relays == [(a, wa, 0, first), (b, wb, 0, first), (b, wb, 1, second)]
    settle(store, state, ISSUE)
    assert (row(store, a), relay_of(store, a)) == (("sent", 1, "<a@x>"), first)
    assert (row(store, b), relay_of(store, b)) == (("sent", 2, "<b@x>"), second)
    assert relay_of(store, c) is None
    assert store.relay_counts(ISSUE) == {first: {"sent": 1}, second: {"sent": 1}}
    settle(store, state, ISSUE)  # nothing left to replay: nothing changes
    assert relay_of(store, b) == second


def test_a_relay_never_lands_on_another_person_or_a_later_attempt(state: Path,
                                                                  store: Store) -> None:
    journal, (a, b) = crashed_run(state, ISSUE, store, "a@x.org", "b@x.org")
    journal.outcome(a, hashed_key("someone@else.org"), 0, "sent", 250, "ok", "<a@x>", AT,
                    "smtp://old:25")  # a journal of a store started over: other people
    journal.outcome(b, hashed_key("b@x.org"), 3, "sent", 250, "ok", "<b@x>", AT,
                    "smtp://old:25")  # the store is further on than this line
    journal.close()
    settle(store, state, ISSUE)
    assert relay_of(store, a) is None and relay_of(store, b) is None
    assert row(store, a) == ("pending", 0, None)


def test_a_journal_without_relays_from_an_older_version_still_replays(state: Path,
                                                                      store: Store) -> None:
    (a,) = queue(store, ISSUE, "a@x.org")
    who = hashed_key("a@x.org")
    path = journal_path(state, ISSUE)
    path.parent.mkdir(parents=True)
    path.write_text(f'mirage-mailer journal 1 "{ISSUE}"\n'
                    f'c {a} {who} 0 {AT} "<a@x>"\n'
                    f'o {a} {who} 0 {AT} sent 250 ["<a@x>", "2.0.0 ok"]\n', encoding="utf-8")
    replay = read_journal(path)
    assert len(replay.outcomes) == 1 and replay.relays == [] and replay.skipped == 0
    settle(store, state, ISSUE)
    assert row(store, a) == ("sent", 1, "<a@x>") and relay_of(store, a) is None


def test_a_row_on_the_wire_reports_its_attempt_before_any_rerun(state: Path,
                                                                store: Store) -> None:
    """``report`` right after a kill: the in-flight row is unknown with the attempt that went
    out and the words the next run records, not 0 attempts and no response."""
    journal, (a,) = crashed_run(state, ISSUE, store, "a@x.org")
    journal.claim(a, hashed_key("a@x.org"), 0, "<a@x>", AT)
    journal.close()
    settle(store, state, ISSUE)
    before = {r["email"]: r for r in store.recipients(ISSUE)}["a@x.org"]
    store.recover_inflight(ISSUE)  # what the next send does first
    after = {r["email"]: r for r in store.recipients(ISSUE)}["a@x.org"]
    assert before["status"] == "unknown" and before["attempts"] == 1
    assert before["smtp_response"] is not None
    assert before == after


def test_a_line_cut_in_the_middle_is_skipped_and_the_rest_replayed(state: Path,
                                                                     store: Store) -> None:
    journal, (a, b) = crashed_run(state, ISSUE, store, "a@x.org", "b@x.org")
    journal.claim(a, hashed_key("a@x.org"), 0, "<a@x>", AT)
    journal.outcome(a, hashed_key("a@x.org"), 0, "sent", 250, "ok", "<a@x>", AT)
    journal.close()
    path = journal_path(state, ISSUE)
    whole = f"c {b} {hashed_key('b@x.org')} 0 {AT} \"<b@x>\"\n".encode()
    with path.open("ab") as f:
        f.write(whole[:25])  # killed inside the write of b's claim: b never left
    replay = read_journal(path)
    assert replay.skipped == 1 and len(replay.outcomes) == 1 and replay.claims == []
    settle(store, state, ISSUE)
    store.recover_inflight(ISSUE)
    assert row(store, a)[0] == "sent"
    assert row(store, b) == ("pending", 0, None)  # its message never went: sent next run


def test_a_cut_outcome_line_leaves_the_claim_unknown(state: Path, store: Store) -> None:
    journal, (a,) = crashed_run(state, ISSUE, store, "a@x.org")
    journal.claim(a, hashed_key("a@x.org"), 0, "<a@x>", AT)
    journal.close()
    with journal_path(state, ISSUE).open("ab") as f:
        f.write(b"o 1 sha256:")  # the 250 came, the process died writing it down
    settle(store, state, ISSUE)
    store.recover_inflight(ISSUE)
    assert row(store, a)[0] == "unknown"


def test_a_journal_of_another_issue_is_never_replayed_onto_this_one(state: Path,
                                                                    store: Store) -> None:
    journal, (a,) = crashed_run(state, "2021-09-older", store, "a@x.org")
    (b,) = queue(store, ISSUE, "a@x.org")
    journal.claim(a, hashed_key("a@x.org"), 0, "<a@x>", AT)
    journal.outcome(a, hashed_key("a@x.org"), 0, "sent", 250, "ok", "<a@x>", AT)
    journal.close()
    older = journal_path(state, "2021-09-older")
    assert settle(store, state, ISSUE) is None  # this issue's send leaves it alone
    assert older.exists() and row(store, a) == ("pending", 0, None)
    # a file of the older issue found under this issue's name is kept aside, not applied
    mine = journal_path(state, ISSUE)
    mine.write_bytes(older.read_bytes())
    settle(store, state, ISSUE)
    assert not mine.exists() and mine.with_suffix(".foreign").exists()
    assert row(store, a) == ("pending", 0, None) and row(store, b) == ("pending", 0, None)
    # the older issue's own next send (or a report) replays it
    settle_all(store, state)
    assert row(store, a) == ("sent", 1, "<a@x>") and row(store, b) == ("pending", 0, None)


def test_the_store_wins_where_it_is_further_on(state: Path, store: Store) -> None:
    journal, (a, b, c) = crashed_run(state, ISSUE, store, "a@x.org", "b@x.org", "c@x.org")
    store.record([(a, "sent", 250, "stored earlier")])  # attempts 1: past the journal's 0
    store.suppress("b@x.org", source="test")  # unsubscribed: not to be made unknown
    journal.claim(a, hashed_key("a@x.org"), 0, "<a@x>", AT)
    journal.outcome(a, hashed_key("a@x.org"), 0, "deferred", 451, "later", "<a@x>", AT)
    journal.claim(b, hashed_key("b@x.org"), 0, "<b@x>", AT)
    # a record naming another person (a store started over reuses row ids)
    journal.outcome(c, hashed_key("someone@else.org"), 0, "sent", 250, "ok", "<c@x>", AT)
    journal.close()
    path = journal_path(state, ISSUE)
    kept = path.read_bytes()
    settle(store, state, ISSUE)
    store.recover_inflight(ISSUE)
    assert row(store, a)[:2] == ("sent", 1)
    assert row(store, b)[0] == "suppressed"
    assert row(store, c) == ("pending", 0, None)
    # replaying the same journal again (killed between the commit and the restart) is a no-op
    path.write_bytes(kept)
    events = len(store.events(ISSUE))
    settle(store, state, ISSUE)
    assert row(store, a)[:2] == ("sent", 1) and len(store.events(ISSUE)) == events


def test_replay_twice_counts_an_outcome_once(state: Path, store: Store) -> None:
    journal, (a,) = crashed_run(state, ISSUE, store, "a@x.org")
    journal.claim(a, hashed_key("a@x.org"), 0, "<a@x>", AT)
    journal.outcome(a, hashed_key("a@x.org"), 0, "deferred", 451, "later", "<a@x>", AT)
    journal.close()
    kept = journal_path(state, ISSUE).read_bytes()
    settle(store, state, ISSUE)
    journal_path(state, ISSUE).write_bytes(kept)
    settle(store, state, ISSUE)
    assert row(store, a) == ("pending", 1, "<a@x>")
    assert [e["kind"] for e in store.events(ISSUE)].count("deferred") == 1


class _RefusesOnce:
    """A store whose first batch commit fails (a full disk, a lock held too long)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.refused = False

    def claimable(self, recipient_id: int) -> bool:
        return self.store.claimable(recipient_id)

    def stamp(self) -> str:
        return AT

    def record_batch(self, outcomes: list[object], inflight: list[object],
                     relays: list[tuple[int, str]] = ()) -> None:  # type: ignore[assignment]
        if not self.refused:
            self.refused = True
            raise OSError("disk full")
        self.store.record_batch(outcomes, inflight, relays)  # type: ignore[arg-type]

    def note_sent(self, issue: str) -> None:
        self.store.note_sent(issue)


def test_a_batch_the_store_refuses_stays_in_the_journal_and_stops_the_run(
        state: Path, store: Store) -> None:
    journal, (a, b) = crashed_run(state, ISSUE, store, "a@x.org", "b@x.org")
    who = hashed_key("a@x.org")

    async def run() -> None:
        recorder = SendRecorder(_RefusesOnce(store), journal)  # type: ignore[arg-type]
        assert recorder.claim(a, who, 0, "<a@x>")
        recorder.hold(a, who, 0, "<a@x>", "sent", 250, "ok")
        recorder._on_timer()  # the timed batch is refused
        # killed now, the next run would still find a's outcome in the journal
        assert [o[0] for o in read_journal(journal.path).outcomes] == [a]
        with pytest.raises(OSError):
            recorder.claim(b, hashed_key("b@x.org"), 0, "<b@x>")
        recorder.close()  # the store works again: nothing was dropped

    asyncio.run(run())
    assert row(store, a) == ("sent", 1, "<a@x>") and row(store, b) == ("pending", 0, None)


def test_the_journal_is_private(state: Path, store: Store) -> None:
    journal = Journal(journal_path(state, ISSUE), ISSUE)
    assert journal.path.stat().st_mode & 0o777 == 0o600
    assert journal.path.parent.stat().st_mode & 0o777 == 0o700
    journal.remove()
    assert not journal.path.exists()


# ----------------------------------------------------------------- SIGKILL at random points

ROUNDS = 20
CONCURRENCY = 3


def _slow(call: Call) -> None:
    if call.stage == "DATA":
        time.sleep(0.004)  # messages stay on the wire long enough to be killed in flight


@pytest.fixture
def relay() -> Iterator[tuple[SmtpSink, StoreThenFail]]:
    drops = StoreThenFail(0.04)  # stores the message, then drops instead of answering 250
    server = SmtpSink(rules=[drops, _slow])
    with server.running_in_thread():
        yield server, drops


def test_sigkill_at_random_points_loses_nobody_and_doubles_only_unknown(
        project: Path, run_cli: RunCli, relay: tuple[SmtpSink, StoreThenFail]) -> None:
    sink, drops = relay
    use_relay(project, sink.url, timeout=1, concurrency=CONCURRENCY)
    addresses = [f"reader{n:04d}@example.org" for n in range(400)]
    lines = ["email,name,lang"] + [f"{a},Reader {n},en" for n, a in enumerate(addresses)]
    (project / "lists/subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rng = random.Random(13)
    unknown: set[str] = set()
    kills = 0
    for _ in range(ROUNDS):
        target = len(sink.received) + rng.randint(1, 12)
        if send_killed_after(project, SAMPLE_ISSUE, lambda: len(sink.received), target, rng):
            kills += 1
        states = states_after_kill(project, ISSUE)
        new_unknown = {a for a, s in states.items() if s == "unknown"} - unknown
        # a kill leaves at most `concurrency` in flight; the rest are the relay's drops
        assert len(new_unknown - drops.hit) <= CONCURRENCY, new_unknown
        unknown |= new_unknown
        have = set(sink.recipients())
        # nobody the relay has is left pending: a rerun would double them unreported
        assert {a for a in have if states[a] not in ("sent", "unknown")} == set()
        assert set(states.values()) <= {"sent", "pending", "unknown"}
    assert kills >= ROUNDS // 2
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    finished = {a for a, s in statuses(run_cli).items() if s == "unknown"}
    assert finished >= unknown and finished - unknown <= drops.hit  # drops without a kill
    unknown = finished
    assert run_cli("send", SAMPLE_ISSUE, "--yes", "--resend-unknown").code == 0
    received = Counter(sink.recipients())
    assert set(received) == set(addresses)  # every recipient accounted for
    doubled = {a for a, n in received.items() if n > 1}
    assert doubled <= unknown  # duplicates only among the reported unknown
    last = statuses(run_cli)  # a resent message may meet the relay's first drop for it
    assert {a for a, s in last.items() if s != "sent"} <= drops.hit
