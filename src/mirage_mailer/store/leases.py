"""Leases: several senders on one PostgreSQL store, each recipient sent exactly once.

A sender registers a row in ``senders`` (a random owner id, its host and pid) whose
``expires_at`` it pushes forward while it lives (``heartbeat``). It takes pending rows in
batches (``claim``: ``FOR UPDATE SKIP LOCKED``, so two senders never get the same row) by
writing its owner id into ``recipients.lease_owner``; right before a message goes on the wire
the row becomes ``sending`` only while it is still ``pending`` and leased to that sender
(``mark``), in the same commit as the outcomes held since the previous one, each applied only
while its row is still ``sending`` (or ``pending``, for a closing word without a claim) and
leased to that sender. A sender whose ``expires_at`` has passed is dead: ``reap`` turns its
``sending`` rows into ``unknown`` (the relay may have them) and gives its other rows back to
the pool, in one transaction, so a late word from a sender that was only stalled changes
nothing: its conditions fail.

Every lease time is the database server's clock (``clock_timestamp()``), never a host's, so
clock skew between sending hosts cannot expire a live lease. PostgreSQL only: the SQLite store
has one sender per issue (the send lock and the claim journal, ``services/journal.py``).
docs/design.md ("Several senders") has the reasoning and the arithmetic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mirage_mailer.store.core import Recipient, StoreCore
from mirage_mailer.store.recipients import _OUTCOME_SQL, INFLIGHT_WORDS

# (id, kind, code, response, message id, time, claimed, relay): an attempt's outcome for
# ``mark``; ``claimed`` False is the closing word on a retry that will not happen (its row is
# pending); ``relay`` names the relay with ``transport.relays`` (None: the single one)
LeaseOutcome = tuple[int, str, int | None, str, str, str, bool, str | None]

# One held outcome as a row of ``mark``'s VALUES (typed: parameters in VALUES are unknown).
_VALUES = "(?::bigint, ?::text, ?::bigint, ?::text, ?::text, ?::text, ?::text, ?::text)"
# The outcomes of ``v``, each only on a row still leased to the sender (the parameter after
# ``v``'s) and in the state its attempt left it; a deferral keeps the lease (the sender
# retries it), any other outcome ends it. The new status as ``_OUTCOME_SQL`` gives it.
_OUTCOMES_CTE = (
    "o AS (UPDATE recipients r SET status = CASE v.kind"
    f" WHEN 'deferred' THEN {_OUTCOME_SQL['deferred']} ELSE v.kind END,"
    " attempts = r.attempts + 1, smtp_code = v.code, smtp_response = v.response,"
    " last_attempt_at = v.at, message_id = v.message_id,"
    " lease_owner = CASE WHEN v.kind = 'deferred' THEN r.lease_owner END,"
    " relay = coalesce(v.relay, r.relay)"
    " FROM v WHERE r.id = v.id AND r.lease_owner = ? AND r.status = v.expect"
    " RETURNING r.id, r.issue, r.email, v.kind, v.code, v.response, v.at)")
# Rows about to go on the wire: ``sending`` only while pending and leased to the sender.
_CLAIM = "(?::bigint, ?::text, ?::text)"
_CLAIMS_CTE = (
    "c AS (UPDATE recipients r SET status = 'sending', message_id = w.message_id,"
    " last_attempt_at = w.at FROM w WHERE r.id = w.id AND r.status = 'pending'"
    " AND r.lease_owner = ? RETURNING r.id)")
_EVENTS_CTE = (
    "e AS (INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
    " SELECT id, issue, email, kind, CASE WHEN code IS NULL THEN response"
    " ELSE code || ' ' || response END, at FROM o)")

_RETURNING = ("r.id, r.issue, r.email, r.name, r.lang, r.list_name, r.fields, r.status,"
              " r.attempts, r.message_id, r.subject, r.smtp_code")


@dataclass(frozen=True)
class SenderInfo:
    """A registered sender of an issue, for the summary and ``report``."""

    owner: str
    issue: str
    host: str
    pid: int
    started_at: str
    expires_in: float  # seconds until its lease runs out (server clock); < 0: dead
    in_flight: int  # its rows on the wire now (``sending``): the report counts them unknown
    held: int = 0  # its pending rows (claimed, not yet on the wire)

    def as_json(self) -> dict[str, Any]:
        """The report's extra ``senders`` entry (no owner id: it means nothing to a reader)."""
        return {"host": self.host, "pid": self.pid, "started_at": self.started_at,
                "lease_left": round(self.expires_in, 1), "in_flight": self.in_flight,
                "held": self.held}


@dataclass(frozen=True)
class Reaped:
    """What one ``reap`` did: senders found dead, rows made ``unknown``, rows given back."""

    senders: int = 0
    unknown: int = 0
    released: int = 0
    names: tuple[str, ...] = ()  # "host pid N" of each dead sender, for the officer

    def words(self) -> str:
        """One line for the run's notes (printed as a warning): which senders, what became
        of their rows."""
        named = f" ({', '.join(self.names)})" if self.names else ""
        who = (f"{self.senders} sender(s) of this issue stopped renewing their lease{named}"
               if self.senders else "a send before leases left rows in flight")
        return (f"{who}: {self.unknown} recipient(s) they had on the wire are unknown "
                f"(check, then --resend-unknown), {self.released} others are back in the pool")


class LeasesMixin(StoreCore):
    """The lease SQL (PostgreSQL); see the module docstring."""

    def register_sender(self, owner: str, issue: str, host: str, pid: int,
                        lease_seconds: float, *, durable: bool = False) -> None:
        """Enter this sender for ``issue``; its lease runs ``lease_seconds`` from now (the
        server's now). The session's commits stop waiting for the server's disk
        (``synchronous_commit = off``) unless ``durable``: see docs/design.md ("Several
        senders"); its open
        transactions end when idle for half the lease. The issue's rows were just planned:
        their statistics are refreshed for the claims' plan."""
        # ``durable`` (tracking.durable_commits): each commit waits for the server's disk,
        # whatever the server's default, so a crash of the server itself cannot undo an
        # "on the wire" mark
        self._conn.execute(f"SET synchronous_commit = {'on' if durable else 'off'}")
        # a sender stopped inside a transaction (a paused VM) must not keep its row locks
        # until it wakes: the server ends its session well before its lease runs out, so a
        # reaper never waits for it (its next statement then fails: exit 3, rerun resumes)
        idle = max(500, int(lease_seconds * 1000 / 2))
        self._conn.execute(f"SET idle_in_transaction_session_timeout = {idle}")
        # an issue planned a moment ago has no statistics yet, and without them the planner
        # read every row of the issue for each claim (a bitmap scan and a sort: 5 to 14 ms
        # at 20,000 rows, against 0.2 ms along the index); a sample of two columns is cheap
        self._conn.execute("ANALYZE recipients (issue, id)")
        with self._write(shared=True) as conn:
            conn.execute(
                "INSERT INTO senders (owner, issue, host, pid, started_at, expires_at)"
                " VALUES (?, ?, ?, ?, clock_timestamp(),"
                " clock_timestamp() + make_interval(secs => ?))",
                (owner, issue, host, pid, float(lease_seconds)))

    def heartbeat(self, owner: str, lease_seconds: float) -> bool:
        """Extend the lease; False when this sender is no longer registered (it was reaped
        as dead: it stalled longer than its lease), so it must stop at once."""
        with self._write(shared=True) as conn:
            cur = conn.execute(
                "UPDATE senders SET expires_at = clock_timestamp()"
                " + make_interval(secs => ?) WHERE owner = ?", (float(lease_seconds), owner))
            return cur.rowcount == 1

    def reap(self, issue: str) -> Reaped:
        """Dead senders of ``issue`` (lease run out): their ``sending`` rows become
        ``unknown`` with an event, their other rows go back to the pool, their row goes.

        One transaction under the store's write lock (planning holds it too, so no reaper
        meets a reconcile half-way, and two reapers take turns); the senders rows are taken
        ``FOR UPDATE SKIP LOCKED`` and the recipients rows in id order. A ``sending`` row
        with no owner (left by a send before leases) is made ``unknown`` too. A look without
        any lock comes first: a sender that runs out of rows reaps from its event loop, and
        its heartbeat must not wait behind another sender's planning for nothing.
        """
        if not self._conn.execute(  # most of the time: nobody to reap, and no lock to wait for
                "SELECT EXISTS (SELECT 1 FROM senders WHERE issue = ?"
                " AND expires_at < clock_timestamp()) OR EXISTS (SELECT 1 FROM recipients"
                " WHERE issue = ? AND status = 'sending' AND lease_owner IS NULL)",
                (issue, issue)).fetchone()[0]:
            return Reaped()
        with self._write() as conn:
            dead = [(owner, host, pid) for owner, host, pid in conn.execute(
                "SELECT owner, host, pid FROM senders WHERE issue = ?"
                " AND expires_at < clock_timestamp() ORDER BY owner FOR UPDATE SKIP LOCKED",
                (issue,)).fetchall()]
            owners = [owner for owner, _h, _p in dead]
            rows = conn.execute(
                "SELECT id FROM recipients WHERE issue = ? AND (lease_owner = ANY(?)"
                " OR (status = 'sending' AND lease_owner IS NULL)) ORDER BY id FOR UPDATE",
                (issue, owners)).fetchall()
            if not rows and not owners:
                return Reaped()
            ids = [rid for (rid,) in rows]
            who = {owner: f"{host} pid {pid}" for owner, host, pid in dead}
            now = self._now()
            unknown = conn.execute(
                "WITH u AS (UPDATE recipients SET status = 'unknown', lease_owner = NULL,"
                " attempts = attempts + 1, smtp_code = NULL, smtp_response = ?2"
                " WHERE id = ANY(?1) AND status = 'sending' RETURNING id, issue, email)"
                " INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
                " SELECT id, issue, email, 'unknown', ?3, ?4 FROM u ORDER BY id",
                (ids, INFLIGHT_WORDS, _lost_words(who), now)).rowcount
            released = conn.execute(
                "UPDATE recipients SET lease_owner = NULL WHERE id = ANY(?)"
                " AND lease_owner IS NOT NULL", (ids,)).rowcount
            conn.execute("DELETE FROM senders WHERE owner = ANY(?)", (owners,))
            return Reaped(len(owners), max(unknown, 0), max(released, 0),
                          tuple(sorted(who.values())))

    def claim(self, owner: str, issue: str, size: int, *, after: int = 0,
              keys: Sequence[str] | None = None,
              langs: Sequence[str] | None = None) -> list[Recipient] | None:
        """Lease up to ``size`` pending rows nobody holds, lowest ids above ``after`` first;
        None when this sender is no longer registered (reaped: it must stop).

        No index on ``status`` or ``lease_owner``: each would turn every claim and every
        outcome into an update of every index of the row (HOT updates need unindexed
        columns), as the SQLite store's dropped status index did. The caller passes the
        highest id it claimed so far (``after``), so a claim reads the primary key from
        there instead of the issue's finished rows, and sweeps from 0 once before it stops.

        ``keys`` (``--limit``: the plan's first N addresses) and ``langs`` (``--lang``: the
        stored ``lang`` values that read this language; '' for none) narrow the rows taken.
        The sender's own row is held ``FOR SHARE`` while it claims, so a reaper cannot
        delete it half-way and leave rows leased to nobody alive.
        """
        where, params = _narrowed([issue, after], keys, langs)
        with self._write(shared=True) as conn:
            alive = conn.execute("SELECT 1 FROM senders WHERE owner = ? FOR SHARE",
                                 (owner,)).fetchone()
            if alive is None:
                return None
            rows = conn.execute(
                "WITH c AS (SELECT id FROM recipients WHERE issue = ? AND id > ?"
                f" AND status = 'pending' AND lease_owner IS NULL{where}"
                " ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED)"
                f" UPDATE recipients r SET lease_owner = ? FROM c WHERE r.id = c.id"
                f" RETURNING {_RETURNING}", (*params, size, owner)).fetchall()
        rows.sort(key=lambda row: row[0])
        return [Recipient(rid, iss, email, name, lang, list_name,
                          json.loads(fields) if fields != "{}" else {}, status, attempts,
                          mid, subject, code)
                for rid, iss, email, name, lang, list_name, fields, status, attempts, mid,
                subject, code in rows]

    def mark(self, owner: str, outcomes: Iterable[LeaseOutcome],
             claims: Sequence[tuple[int, str, str]] = ()) -> set[int]:
        """Held outcomes, then ``claims`` (id, message id, time: rows about to go on the
        wire), in one commit; returns the ids claimed: those still pending and leased to
        ``owner`` (not unsubscribed, withdrawn, or taken back from a dead sender).

        Each outcome applies only while its row is still leased to ``owner`` and in the
        state its attempt left it (``sending``; ``pending`` for a closing word), so a
        sender reaped as dead changes nothing.

        Usually this is one statement, so one round trip to the server in autocommit (a
        transaction of four statements took 1.2 ms a message here); a statement sees one
        snapshot, so when a claimed row also has an outcome in the batch (a retry after a
        deferral) the outcome must land first: then it is a transaction, rows in id order.
        """
        held = list(outcomes)
        if not held and not claims:
            return set()
        if {c[0] for c in claims} & {o[0] for o in held}:
            return self._mark_in_steps(owner, held, claims)
        parts: list[str] = []
        params: list[Any] = []
        if held:
            parts.append(f"v (id, kind, code, response, message_id, at, expect, relay) AS"
                         f" (VALUES {', '.join([_VALUES] * len(held))})")
            for rid, kind, code, response, message_id, at, was_claimed, relay in held:
                params += [rid, kind, code, response, message_id, at,
                           "sending" if was_claimed else "pending", relay]
            parts.append(_OUTCOMES_CTE)
            params.append(owner)
            parts.append(_EVENTS_CTE)
        if claims:
            parts.append(f"w (id, message_id, at) AS (VALUES {', '.join([_CLAIM] * len(claims))})")
            for claim in claims:
                params += claim
            parts.append(_CLAIMS_CTE)
            params.append(owner)
        tail = "SELECT id FROM c" if claims else "SELECT 0 AS id"
        rows = self._conn.execute(f"WITH {', '.join(parts)} {tail}", params).fetchall()
        return {int(rid) for (rid,) in rows} if claims else set()

    def _mark_in_steps(self, owner: str, held: list[LeaseOutcome],
                       claims: Sequence[tuple[int, str, str]]) -> set[int]:
        """``mark`` as a transaction: one statement a row, an outcome before its row's
        claim, rows in id order (see ``mark`` and ``reap``)."""
        steps: list[tuple[int, int, LeaseOutcome | None, tuple[int, str, str] | None]] = [
            *((o[0], 0, o, None) for o in held), *((c[0], 1, None, c) for c in claims)]
        steps.sort(key=lambda step: (step[0], step[1]))
        made: set[int] = set()
        with self._write(shared=True) as conn:
            for _rid, _order, outcome, claim in steps:
                if claim is not None:
                    made |= {int(r) for (r,) in conn.execute(
                        f"WITH w (id, message_id, at) AS (VALUES {_CLAIM}), {_CLAIMS_CTE}"
                        " SELECT id FROM c", (*claim, owner)).fetchall()}
                elif outcome is not None:
                    rid, kind, code, response, message_id, at, was_claimed, relay = outcome
                    conn.execute(
                        f"WITH v (id, kind, code, response, message_id, at, expect, relay) AS"
                        f" (VALUES {_VALUES}), {_OUTCOMES_CTE}, {_EVENTS_CTE} SELECT 0",
                        (rid, kind, code, response, message_id, at,
                         "sending" if was_claimed else "pending", relay, owner))
        return made

    def release(self, owner: str) -> tuple[int, int]:
        """This sender is done (finished, stopped, or aborted): its ``sending`` rows (no
        outcome came) become ``unknown``, its other rows go back to the pool, and its
        ``senders`` row goes, in one commit. Returns (unknown, released)."""
        now = self._now()
        with self._write(shared=True) as conn:
            conn.execute("SELECT id FROM recipients WHERE lease_owner = ? ORDER BY id"
                         " FOR UPDATE", (owner,))
            unknown = conn.execute(
                "WITH u AS (UPDATE recipients SET status = 'unknown', lease_owner = NULL,"
                " attempts = attempts + 1, smtp_code = NULL, smtp_response = ?2"
                " WHERE lease_owner = ?1 AND status = 'sending' RETURNING id, issue, email)"
                " INSERT INTO events (recipient_id, issue, email, kind, detail, at)"
                " SELECT id, issue, email, 'unknown', ?2, ?3 FROM u ORDER BY id",
                (owner, INFLIGHT_WORDS, now)).rowcount
            released = conn.execute(
                "UPDATE recipients SET lease_owner = NULL WHERE lease_owner = ?",
                (owner,)).rowcount
            conn.execute("DELETE FROM senders WHERE owner = ?", (owner,))
        return max(unknown, 0), max(released, 0)

    def unclaimed(self, issue: str, *, keys: Sequence[str] | None = None,
                  langs: Sequence[str] | None = None) -> int:
        """Pending rows of ``issue`` that nobody holds now (narrowed as ``claim`` narrows):
        what a sender may still take, for its progress total. One read of the issue's rows
        (no index on ``status``), so a sender asks now and then, not per claim."""
        where, params = _narrowed([issue], keys, langs)
        row = self._conn.execute(
            "SELECT count(*) FROM recipients WHERE issue = ? AND status = 'pending'"
            f" AND lease_owner IS NULL{where}", params).fetchone()
        return int(row[0])

    def leased_elsewhere(self, issue: str) -> tuple[int, int]:
        """(pending, on the wire) rows of ``issue`` that registered senders hold now."""
        row = self._conn.execute(
            "SELECT count(CASE WHEN status = 'pending' THEN 1 END),"
            " count(CASE WHEN status = 'sending' THEN 1 END) FROM recipients"
            " WHERE issue = ? AND lease_owner IS NOT NULL", (issue,)).fetchone()
        return int(row[0]), int(row[1])

    def senders(self, issue: str) -> list[SenderInfo]:
        """The registered senders of ``issue``, oldest first, each with its rows on the
        wire (``report``); none on SQLite, which has no leases."""
        if not self.is_postgres:
            return []
        return [SenderInfo(owner, iss, host, int(pid), str(started), float(left), int(wire),
                           int(held))
                for owner, iss, host, pid, started, left, wire, held in self._conn.execute(
                    "SELECT owner, issue, host, pid, to_char(started_at AT TIME ZONE 'UTC',"
                    " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                    " extract(epoch FROM expires_at - clock_timestamp()), w.sending, w.pending"
                    " FROM senders s, LATERAL (SELECT"
                    " count(CASE WHEN r.status = 'sending' THEN 1 END) AS sending,"
                    " count(CASE WHEN r.status = 'pending' THEN 1 END) AS pending"
                    " FROM recipients r WHERE r.lease_owner = s.owner) w"
                    " WHERE issue = ? ORDER BY started_at, owner",
                    (issue,)).fetchall()]

    def lost_to_dead_senders(self, issue: str) -> dict[str, int]:
        """Rows of ``issue`` still ``unknown`` because a reaper found their sender dead,
        by sender ("host pid N", as ``reap`` recorded it in each row's last ``unknown``
        event); empty on SQLite, which has no leases."""
        if not self.is_postgres:
            return {}
        found: dict[str, int] = {}
        for detail, count in self._conn.execute(
                "SELECT detail, count(*) FROM (SELECT DISTINCT ON (e.recipient_id) e.detail"
                " FROM events e JOIN recipients r ON r.id = e.recipient_id"
                " WHERE e.issue = ? AND r.issue = ? AND r.status = 'unknown'"
                " AND e.kind = 'unknown' ORDER BY e.recipient_id, e.id DESC) t"
                " WHERE detail LIKE ? GROUP BY detail ORDER BY detail",
                (issue, issue, _LOST_HEAD + "%" + _LOST_TAIL)).fetchall():
            names = str(detail)[len(_LOST_HEAD):-len(_LOST_TAIL)]
            found[names] = found.get(names, 0) + int(count)
        return found

    def pending_langs(self, issue: str) -> list[str]:
        """The distinct stored ``lang`` values ('' for none) of the issue's pending rows."""
        return [str(value) for (value,) in self._conn.execute(
            "SELECT DISTINCT coalesce(lang, '') FROM recipients WHERE issue = ?"
            " AND status = 'pending'", (issue,)).fetchall()]


_LOST_HEAD = "in flight when its sender ("  # the detail of a reaped row's event ...
_LOST_TAIL = ") stopped renewing its lease"  # ... which ``lost_to_dead_senders`` reads back


def _lost_words(who: dict[str, str]) -> str:
    """The event's detail for rows a dead sender left on the wire."""
    if not who:
        return "in flight when its send stopped (no sender holds it)"
    return _LOST_HEAD + ", ".join(sorted(who.values())) + _LOST_TAIL


def _narrowed(params: list[Any], keys: Sequence[str] | None,
              langs: Sequence[str] | None) -> tuple[str, list[Any]]:
    """The ``--limit`` and ``--lang`` narrowing of a claim, as SQL after ``params``: the
    claim and the progress count must narrow alike or a bar never ends full."""
    where = ""
    if keys is not None:
        where += " AND email_key = ANY(?)"
        params.append(list(keys))
    if langs is not None:
        where += " AND coalesce(lang, '') = ANY(?)"
        params.append(list(langs))
    return where, params
