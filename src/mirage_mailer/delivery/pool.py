"""The SMTP run: a pool of long-lived connections sharing one queue, one pacer, one retry policy.

Guarantees the caller relies on:

* ``on_attempt`` is awaited right before a transmission, ``on_result`` called after every
  attempt; every envelope handed out gets a final Result before this returns or raises,
  except one that ``on_attempt`` withdrew or whose callbacks themselves failed.
* Network faults and refusals never raise: they become Results. Only a problem that stops the
  whole run (unreachable, auth refused, TLS missing, sender refused) raises ``DeliveryAborted``,
  after the in-flight messages have finished.
* The stop event stops pulling new envelopes; in-flight transactions finish (each command is
  bounded by the configured timeout) and pending retries are closed as final DEFERRED.
* A message whose reused link the relay had already ended (it hung up after the message
  before, ``Attempt.hung_up``) is offered again at once on a fresh link, under the same
  claim: no Result, no attempt counted, no backoff, and never after the end of DATA.
* With PIPELINING and no pace to keep, the next message's commands go with the body before
  them (``_ahead``); ``on_attempt`` for it is awaited once the relay has answered them,
  before its body, so each link has at most one claimed message awaiting its outcome. Until
  that claim nothing of it reached the relay: a link lost meanwhile puts it back, uncounted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

from mirage_mailer.delivery.classify import (
    BurstDetector,
    Verdict,
    is_auth_required,
    is_throttle,
    is_too_big,
    session_refusal,
)
from mirage_mailer.delivery.connection import Attempt, ConnectFailure, Connection, ConnectSettings
from mirage_mailer.delivery.hangups import Hangups
from mirage_mailer.delivery.model import (
    Claim,
    DeliveryAborted,
    DeliveryStats,
    Envelope,
    Outcome,
    Result,
)
from mirage_mailer.delivery.pacer import Pacer
from mirage_mailer.delivery.policy import RetryPolicy
from mirage_mailer.delivery.refusals import Judgement, MessageRefusals
from mirage_mailer.delivery.work import Job, Queue, WorkQueue
from mirage_mailer.util.errors import Problem


class SmtpRun:
    def __init__(
        self,
        settings: ConnectSettings,
        *,
        concurrency: int,
        max_attempts: int,
        pacer: Pacer,
        policy: RetryPolicy,
        on_attempt: Claim,
        on_result: Callable[[Result], None],
        stop: asyncio.Event | None,
        name: str = "",
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.name = name  # the relay's URL without a login: each Result says who carried it
        self.concurrency = max(1, concurrency)
        self.max_attempts = max(1, max_attempts)
        self.pacer = pacer
        self.policy = policy
        self.on_attempt = on_attempt
        self.on_result = on_result
        self.stop_event = stop
        self.on_notice = on_notice  # one warning line for the officer, said at once
        self.auth_offered = False  # a connection saw AUTH in the relay's EHLO reply
        self.queue: Queue | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.alive = 0
        self.stopped = False
        self.last_progress = 0.0  # when a message was last accepted or refused for good
        self.abort: Problem | None = None
        self.failure: Exception | None = None
        self.sent = self.failed = self.deferred_final = self.unknown = 0
        self.attempts = self.connections = self.throttled = 0
        self.bursts = BurstDetector()  # 4xx across many recipients at once: pace, unsaid
        self.refusals = MessageRefusals()  # the same 5xx after DATA to all: the message's
        # the relay throttles at the end of DATA: a 354 is no sign it accepts the message,
        # so the pacer hears of a success at the 250 to the end of DATA, not at the 354
        self.paced_at_dot = False
        self.hangups = Hangups()  # a relay that takes a few messages a link, then hangs up
        self.reoffered = 0  # messages offered again on a fresh link after a hang-up
        # the envelopes' source or a chained claim failed inside a transaction: raised after
        self._ahead_failure: Exception | None = None
        # commands written with the body before them (RFC 2920 3.1); off for the rest of the
        # run once such commands got no reply in time: a relay (or a proxy before it) that
        # drops what follows the end of DATA would cost a timeout a message
        self.chaining = True
        self._ended: set[Connection] = set()  # workers whose re-offer's connect gave up

    async def run(self, envelopes: Iterator[Envelope], *,
                  lane: Queue | None = None) -> DeliveryStats:
        """Deliver ``envelopes``, or (several relays) the work of a shared queue's ``lane``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        queue = self.queue = lane if lane is not None else WorkQueue(envelopes, loop.time)
        self.last_progress = started
        watcher = loop.create_task(self._watch_stop(queue))
        try:
            first = Connection(self.settings)
            self.alive = 1
            if await self._connect(first):
                self._spawn(first)
            self.alive -= 1
            while self.tasks:  # workers may spawn more workers while we wait
                pending = [t for t in self.tasks if not t.done()]
                if not pending:
                    break
                await asyncio.wait(pending)
        finally:
            watcher.cancel()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(watcher, *self.tasks, return_exceptions=True)
        self._close_leftovers(queue)
        stats = DeliveryStats(
            sent=self.sent, failed=self.failed, deferred_final=self.deferred_final,
            unknown=self.unknown, attempts=self.attempts, connections=self.connections,
            throttled=self.throttled, rate_cuts=self.pacer.cuts, elapsed=loop.time() - started,
            stopped=self.stopped, paced_rate=self.pacer.rate, reoffered=self.reoffered,
        )
        if self.failure is not None:
            raise self.failure
        if self.abort is not None:
            raise DeliveryAborted(self.abort, stats)
        return stats

    async def _watch_stop(self, queue: Queue) -> None:
        if self.stop_event is None:
            return
        await self.stop_event.wait()
        self.stopped = True
        queue.stop()

    def _spawn(self, conn: Connection) -> None:
        self.alive += 1
        self.tasks.append(asyncio.get_running_loop().create_task(self._worker(conn)))

    def _abort_with(self, failure: ConnectFailure) -> None:
        if self.abort is None:
            self.abort = Problem(self.settings.where, None, failure.message, failure.hint)
        assert self.queue is not None
        self.queue.stop()

    async def _connect(self, conn: Connection) -> bool:
        """Open ``conn`` with a few tries; False when this worker should end.

        A fatal failure aborts the run. Repeated transient failures retire the worker while
        other connections still carry the run (a relay may cap connections), and abort it when
        this was the last one.
        """
        assert self.queue is not None
        failures = 0
        while not self.queue.stopping:
            try:
                if not await self._open(conn):
                    return False
            except ConnectFailure as failure:
                if failure.fatal:
                    self._abort_with(failure)
                    return False
                failures += 1
                if failures >= self.policy.connect_attempts:
                    if self.alive <= 1:
                        self._abort_with(failure)
                    return False
                if not await self.queue.sleep(self.policy.connect_delay(failures)):
                    return False
            else:
                self.connections += 1
                self._note_auth(conn)
                return True
        return False

    async def _open(self, conn: Connection) -> bool:
        """``conn.open()``; False, the half-open link dropped, when the run stops meanwhile.
        Nothing is on a link before its greeting and EHLO: a stop (Ctrl-C, SIGTERM, another
        link's abort) must not wait out a silent or unreachable relay's timeout for it.
        Raises ``ConnectFailure`` as ``open`` does."""
        assert self.queue is not None
        queue = self.queue
        opening = asyncio.ensure_future(conn.open())

        async def stopped() -> None:
            while await queue.sleep(3600.0):
                pass

        watch = asyncio.ensure_future(stopped())
        try:
            await asyncio.wait((opening, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not opening.done():  # stopped, or this worker itself cancelled
                opening.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectFailure):
                    await opening
                conn.drop()
        if opening.cancelled():
            return False
        opening.result()  # its ConnectFailure, if it failed
        return True

    def _note_auth(self, conn: Connection) -> None:
        """The relay offers AUTH and this run has no login: said once, before the first
        message, since such a relay may refuse every recipient ("Relay access denied")."""
        if not conn.auth_offered or self.auth_offered:
            return
        self.auth_offered = True
        if self.settings.credentials is None and self.on_notice is not None:
            self.on_notice(f"{self.settings.where} offers AUTH, but this run does not log in: "
                           f"{self._missing_login()}")

    def _missing_login(self) -> str:
        return (self.settings.missing_credentials or "export the user name and password in "
                "the environment variables that transport.username_env/password_env name")

    def _login_hint(self) -> str:
        """What to do about a relay that turns this client away."""
        s = self.settings
        if s.credentials is not None:
            names = s.credential_names or "the environment variables"
            return f"check the relay's settings for the account in {names}"
        if self.auth_offered:
            return f"the relay offers AUTH and this run does not log in: {self._missing_login()}"
        return ("the relay offers no AUTH: send from a host it relays for, or ask its "
                "administrator")

    async def _worker(self, conn: Connection) -> None:
        queue = self.queue
        assert queue is not None
        try:
            following: Job | None = None
            while following is not None or await queue.wait_ready():
                if following is not None:  # its commands went with the last body
                    following = await self._chained(conn, following)
                    continue
                if not await self._pace():
                    break
                job = queue.take()
                if job is None:
                    self.pacer.unclaim()  # no message for that start: not the budget's
                    continue
                # after the pacer's wait: a link idle meanwhile may have been dropped
                await conn.check_idle(self.policy.idle_noop_after)
                if not conn.connected:
                    if conn.hung_up:  # seen in time, before the claim: learnt, not paid for
                        self.hangups.after(conn.carried)
                    if not await self._connect(conn):
                        queue.put_back(job)  # never attempted: first in line elsewhere
                        break
                if len(self.tasks) < self.concurrency and not queue.exhausted:
                    self._spawn(Connection(self.settings))  # more work: one more link
                following = await self._attempt(conn, job)
                if conn in self._ended:  # its re-offer found no link: as a failed connect
                    break
        except Exception as exc:  # the caller's iterator or callbacks failed: stop, re-raise
            if self.failure is None:
                self.failure = exc
            queue.stop()
        finally:
            self.alive -= 1
            await conn.close(self.policy.quit_timeout)

    async def _pace(self) -> bool:
        """Wait for the pacer's go; False when the run stops meanwhile."""
        assert self.queue is not None
        while (wait := self.pacer.claim()) > 0:
            if not await self.queue.sleep(wait):
                return False
        return True

    async def _attempt(self, conn: Connection, job: Job) -> Job | None:
        """Claim and send ``job``; the next job when its commands went with this body."""
        assert self.queue is not None
        envelope = job.envelope
        if not await self.on_attempt(envelope):  # withdrawn by the caller: not sent
            self.queue.done(job)
            return None
        job.attempts += 1
        self.attempts += 1
        taken: list[Job] = []
        attempt = await self._transmit(conn, envelope, ahead=self._ahead(conn, taken))
        if attempt.hung_up and not is_throttle(attempt.code, attempt.response):
            attempt = await self._offer_again(conn, envelope, attempt)
        self._settle(conn, job, attempt)
        return self._following(conn, taken)

    async def _chained(self, conn: Connection, job: Job) -> Job | None:
        """Send ``job``, whose MAIL, RCPT and DATA went with the body before: it is claimed
        only once the relay has answered them (``Connection.send(claim=...)``). Until then
        nothing of it can have reached the relay, so a link lost, a reply that fits no
        command, a relay saying goodbye, or the run stopping puts it back, unclaimed and
        uncounted (the next link takes it, the usual way)."""
        assert self.queue is not None
        queue = self.queue
        envelope = job.envelope
        state = ""  # "claimed", or "withdrawn" by the caller (unsubscribed since queued)

        async def claim() -> bool:
            nonlocal state
            if queue.stopping:
                return False
            try:
                accepted = await self.on_attempt(envelope)
            except Exception as exc:  # the caller's: raised once this job is put back, not
                self._ahead_failure = exc  # taken for a network fault inside the transaction
                return False
            if not accepted:
                state = "withdrawn"
                return False
            state = "claimed"
            job.attempts += 1
            self.attempts += 1
            return True

        taken: list[Job] = []
        attempt = await self._transmit(conn, envelope, claim=claim,
                                       ahead=self._ahead(conn, taken))
        # a clear refusal of its commands came before any claim: claimed now, to record it
        if not state and attempt.code is not None and not attempt.hung_up:
            await claim()
        if state != "claimed":
            if attempt.hung_up:
                self.hangups.after(conn.carried)
            elif conn.timed_out:
                self.chaining = False
            if state == "withdrawn":
                queue.done(job)
            else:
                queue.put_back(job)  # nothing of it reached the relay
            return self._following(conn, taken)
        self._settle(conn, job, attempt)
        return self._following(conn, taken)

    def _ahead(self, conn: Connection, taken: list[Job]) -> Callable[[], bytes] | None:
        """What may ride with this body: the next job's commands, when one is ready at once
        and nothing paces the run (a pace or hourly budget decides each start's moment, so
        those runs keep one message at a time); the job is kept in ``taken``. Not with
        several relays: a job chained behind a message its relay holds would wait for that
        relay, where another relay could have sent it."""
        assert self.queue is not None
        queue = self.queue
        if not self.chaining or queue.reroutes or not self.pacer.free():
            return None

        def ahead() -> bytes:
            limit = self.hangups.limit
            if (queue.stopping or self.abort is not None or not conn.connected
                    or (limit is not None and conn.carried + 1 >= limit)
                    or not self.chaining or not self.pacer.free()
                    or self._ahead_failure is not None):
                return b""
            try:
                job = queue.take()
            except Exception as exc:  # the caller's iterator: raised once this body's done
                self._ahead_failure = exc
                return b""
            if job is None:
                return b""
            envelope = job.envelope
            commands = conn.ahead_commands(envelope.sender, envelope.recipient,
                                           envelope.data, wired=envelope.wired)
            if not commands:
                queue.put_back(job)  # the usual way, first in line
                return b""
            taken.append(job)
            return commands

        return ahead

    def _following(self, conn: Connection, taken: list[Job]) -> Job | None:
        """The job whose commands went with the last body, while its link still carries
        them; put back, unclaimed, when the link was dropped meanwhile."""
        assert self.queue is not None
        if self._ahead_failure is not None:
            failure, self._ahead_failure = self._ahead_failure, None
            if taken:
                self.queue.put_back(taken[0])
            raise failure
        if not taken:
            return None
        if conn.chained:
            return taken[0]
        self.queue.put_back(taken[0])
        return None

    def _settle(self, conn: Connection, job: Job, attempt: Attempt) -> None:
        """A claimed job's attempt, recorded and followed up."""
        assert self.queue is not None
        if attempt.verdict is Verdict.SENT:
            if self.paced_at_dot:
                self.pacer.success()
            limit = self.hangups.limit
            if limit is not None and conn.carried >= limit:
                conn.drop()  # the relay hangs up here: the next message opens a fresh link
            self.sent += 1
            self.last_progress = self.queue.clock()
            self.bursts.success(self.last_progress)
            self.refusals.accepted()
            self._finish(job, Outcome.SENT, attempt)
        elif attempt.verdict is Verdict.UNKNOWN:
            # the final dot left, the reply did not come: the relay may hold the message, so
            # retrying could deliver it twice; the caller records it unknown, for good
            self.unknown += 1
            self._check_stall(attempt)
            self._finish(job, Outcome.UNKNOWN, attempt)
        elif attempt.verdict is Verdict.FAILED and self._refused_message(job, attempt):
            pass  # held back as deferred, or the run stops: not failed for good
        elif attempt.verdict is Verdict.FAILED:
            self.failed += 1
            self.last_progress = self.queue.clock()
            self._finish(job, Outcome.FAILED, attempt)
        elif attempt.verdict is Verdict.ABORT:
            self._abort_with(self._session_refused(attempt))
            self._keep_pending(job, attempt)
        else:
            self._defer(job, attempt)

    async def _offer_again(self, conn: Connection, envelope: Envelope,
                           attempt: Attempt) -> Attempt:
        """The relay had hung up on ``conn`` after its last message, before it answered this
        one's MAIL: nothing of it reached the relay, so it goes at once on a fresh link under
        the same claim, once (a fresh link is never ``hung_up``). ``attempt`` stands when no
        link opens (the run stops, or the relay is unreachable): a counted failure, as ever.
        A 421 whose words are about pace is no hang-up: the pacer must hear it (``_defer``)."""
        self.hangups.after(conn.carried)
        if not await self._connect(conn):
            # this worker should end, as after any failed connect: else a sibling retiring
            # beside it would leave no one to say the relay is down
            self._ended.add(conn)
            return attempt

        self.reoffered += 1
        return await self._transmit(conn, envelope)

    def _transmit(self, conn: Connection, envelope: Envelope, *,
                  claim: Callable[[], Awaitable[bool]] | None = None,
                  ahead: Callable[[], bytes] | None = None) -> Coroutine[Any, Any, Attempt]:
        """``conn.send`` of ``envelope``, the pacer told at the relay's go: the coroutine
        itself, which the caller awaits (no await layer more on every message's path)."""
        return conn.send(envelope.sender, envelope.recipient, envelope.data,
                         None if self.paced_at_dot else self.pacer.success,
                         wired=envelope.wired, claim=claim, ahead=ahead)

    def _keep_pending(self, job: Job, attempt: Attempt) -> None:
        """The run stops for a reason not this recipient's: it stays pending."""
        assert self.queue is not None
        if self.queue.reroutes:  # not delivered: another relay may take it
            self._reroute(job, attempt)
        else:
            self.deferred_final += 1
            self._finish(job, Outcome.DEFERRED, attempt)

    def _refused_message(self, job: Job, attempt: Attempt) -> bool:
        """A 5xx to the end of DATA that may refuse the message rather than this recipient
        (``delivery/refusals.py``): held back as deferred, to be tried once more; or, the
        same reply having come for several recipients with none accepted, the run stops
        (exit 3) and they stay pending. True when the attempt is taken care of."""
        assert self.queue is not None
        envelope = job.envelope
        judgement = self.refusals.judge(envelope.key, envelope.recipient, attempt.stage,
                                        attempt.code, attempt.response,
                                        refused_before=envelope.refused_before)
        if judgement is Judgement.FAILED:
            return False
        if judgement is Judgement.KEEP:
            self._keep_pending(job, attempt)
            return True
        if judgement is Judgement.REFUSED:  # the session's or the sender's, said outright
            self._abort_with(self._session_refused(attempt))
            self._keep_pending(job, attempt)
            return True
        if judgement is Judgement.HOLD:
            result = Result(envelope, Outcome.DEFERRED, attempt.code, attempt.response,
                            False, self.name)
            job.last = result
            self.on_result(result)
            self.queue.retry(job, self.policy.retry_delay(1))
            return True
        # the evidence is "the same words, nothing accepted": say that, not more
        count = len(self.refusals.recipients)
        reply = f"{attempt.code} {attempt.response}"
        if attempt.stage == "RCPT":
            self._abort_with(ConnectFailure(
                f"the relay gave {count} different recipients in a row the same refusal to "
                f"RCPT TO and accepted no message: {reply}", fatal=True,
                hint=f"it may be refusing this client or the sender: {self._login_hint()}; "
                "then rerun; a rerun does not count these recipients again"))
        else:
            self._abort_with(ConnectFailure(
                f"the relay gave {count} different recipients in a row the same refusal "
                f"after the end of DATA and accepted no message: {reply}", fatal=True,
                hint="it may be refusing the message itself (its content or sender): ask "
                "the relay's administrator or change the issue, then rerun; a rerun does "
                "not count these recipients again"))
        self._keep_pending(job, attempt)
        return True

    def _session_refused(self, attempt: Attempt) -> ConnectFailure:
        """Why the whole run stops: a message too big, a login the relay wants, a client it
        will not relay for, or the sender it refuses."""
        reply = f"{attempt.code} {attempt.response}"
        s = self.settings
        if attempt.stage == "SIZE" or is_too_big(attempt.stage, attempt.code,
                                                   attempt.response):
            said = attempt.response if attempt.stage == "SIZE" else f"answered {reply}"
            return ConnectFailure(f"the message is too big for the relay: {said}",
                                  fatal=True, hint="make the issue smaller (fewer or smaller "
                                  "images) or ask the relay's administrator for a higher "
                                  "limit")
        kind = session_refusal(attempt.stage, attempt.code, attempt.response)
        if kind == "relay":
            return ConnectFailure(f"the relay refuses to relay for this client ({reply})",
                                  fatal=True, hint=self._login_hint())
        if kind != "login" and not is_auth_required(attempt.code, attempt.response):
            hint = ("check sender.return_path (or sender.from): the relay must accept it as "
                    "a sender")
            if s.credentials is not None and s.credential_names:
                hint += f" from the login with {s.credential_names}"
            elif s.credentials is None and self.auth_offered:
                hint += f"; it offers AUTH and this run does not log in: {self._missing_login()}"
            return ConnectFailure(f"refused the sender: {reply}", fatal=True, hint=hint)
        if s.credentials is None and s.missing_credentials:
            return ConnectFailure(f"the relay requires authentication ({reply}), and "
                                  f"{s.missing_credentials}", fatal=True)
        if s.credentials is None:
            return ConnectFailure(f"the relay requires authentication ({reply})", fatal=True,
                                  hint="export the user name and password in environment "
                                  "variables named by transport.username_env/password_env")
        names = s.credential_names or "the environment variables"
        return ConnectFailure(f"the relay still requires authentication ({reply}) after the "
                              f"login with {names}", fatal=True,
                              hint="check the relay's settings for this account")

    def _is_throttle(self, job: Job, attempt: Attempt) -> bool:
        """A reply about our pace (its words say so, or 4xx are coming from everyone at
        once), as opposed to one about this recipient (greylisting, a full mailbox)."""
        assert self.queue is not None
        if is_throttle(attempt.code, attempt.response):
            return True
        if attempt.code is None or not 400 <= attempt.code < 500:
            return False  # a lost connection says nothing about pace
        return self.bursts.refusal(self.queue.clock(), job.envelope.recipient)

    def _defer(self, job: Job, attempt: Attempt) -> None:
        """Retry later. A throttled message waits briefly and for free (the pacer fixes the
        cause); any other 4xx or fault backs off for this recipient only and counts."""
        assert self.queue is not None
        delay: float
        throttle = self._is_throttle(job, attempt)
        if throttle:
            self.throttled += 1
            self.pacer.throttled()
            if attempt.stage == "DOT":  # its limiter counts at the end of DATA, not at RCPT
                self.paced_at_dot = True
        if (throttle and self.pacer.accepting()
                and job.free_retries < self.policy.free_throttle_retries):
            job.free_retries += 1
            delay = self.policy.throttle_delay(job.free_retries)
        else:
            job.strikes += 1
            delay = self.policy.retry_delay(job.strikes)
        self._check_stall(attempt)
        # a relay taken out of rotation hands its retries on; a stopped run closes them
        out = self.queue.stopping and not self.queue.reroutes
        final = job.strikes >= self.max_attempts or out
        result = Result(job.envelope, Outcome.DEFERRED, attempt.code, attempt.response, final,
                        self.name)
        job.last = result
        if final:
            self.deferred_final += 1
        self.on_result(result)
        if final:
            self.queue.done(job)
        else:
            self.queue.retry(job, delay)

    def _check_stall(self, attempt: Attempt) -> None:
        """A relay that answers but accepts nothing for long (a quota used up) ends the run:
        crawling through the whole list at the slowest pace would only postpone exit 3."""
        assert self.queue is not None
        quiet = self.queue.clock() - self.last_progress
        if quiet >= self.policy.stall_timeout:
            answer = f"{attempt.code} {attempt.response}" if attempt.code else attempt.response
            self._abort_with(ConnectFailure(
                f"the relay accepted nothing for {quiet:.0f} s; last answer: {answer}",
                fatal=True,
                hint="the provider's sending quota may be used up; rerun later to resume",
            ))

    def _reroute(self, job: Job, attempt: Attempt) -> None:
        """This relay is out; the message never reached the end of DATA: it waits for
        another relay (a deferral that does not count toward max_attempts)."""
        assert self.queue is not None
        result = Result(job.envelope, Outcome.DEFERRED, attempt.code, attempt.response, False,
                        self.name)
        job.last = result
        self.on_result(result)
        self.queue.put_back(job)

    def _finish(self, job: Job, outcome: Outcome, attempt: Attempt) -> None:
        assert self.queue is not None
        result = Result(job.envelope, outcome, attempt.code, attempt.response, True, self.name)
        job.last = result
        self.on_result(result)
        self.queue.done(job)

    def _close_leftovers(self, queue: Queue) -> None:
        """Give every retry that will not happen its final word, repeating the last reply."""
        reason = "delivery aborted" if self.abort is not None else "run stopped"
        for job in queue.leftovers():
            last = job.last
            if last is None:
                code, text = None, f"not attempted: {reason}"
            else:
                code, text = last.code, f"{last.response} (not retried: {reason})"
            self.deferred_final += 1
            result = Result(job.envelope, Outcome.DEFERRED, code, text, True, self.name)
            if self.failure is None:
                self.on_result(result)
            else:
                with contextlib.suppress(Exception):
                    self.on_result(result)
