"""DKIM signing a batch or two of messages ahead of the wire, on a worker thread.

The RSA operation of a signature costs about as much as everything else ``send`` does for a
message (bench/dkim_cost.py), and cryptography releases the GIL while OpenSSL does it, so a
worker thread signs the next messages while the event loop talks SMTP. It signs them in
batches of ``BATCH``: one hand-off (a future, a wake-up of each thread) per batch instead of
per message, which cost 40 to 100 µs of CPU a message in futex calls and context switches
when both cores were busy (bench/dkim_cost.py's same-path loops, and docs/design.md).
Signing stays the last step before the wire: each envelope's bytes are final, only the
signature header is added, and envelopes come out in the order they went in.

Nothing here touches state: an envelope signed ahead but never taken (a run stopped by a
signal) was never claimed, and is built again by the next run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from itertools import islice

from mirage_mailer.delivery import Envelope

BATCH = 8  # messages a worker task signs in one go
AHEAD = 2  # batches in flight: the loop sends one while the worker signs the next


def presigned(envelopes: Iterator[Envelope], sign: Callable[[bytes], bytes], *,
              batch: int = BATCH, ahead: int = AHEAD) -> Iterator[Envelope]:
    """``envelopes`` with their data signed, up to ``batch * ahead`` of them in advance."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="mirage-dkim")
    waiting: deque[tuple[list[Envelope], Future[list[bytes]]]] = deque()
    try:
        while True:
            taken = list(islice(envelopes, batch))
            if taken:
                waiting.append((taken, pool.submit(_sign_all, sign, taken)))
                if len(waiting) < ahead:
                    continue
            if not waiting:
                return
            done, signed = waiting.popleft()
            for envelope, data in zip(done, signed.result(), strict=True):
                yield replace(envelope, data=data, wired=False)
    finally:  # closed early (stop, abort): drop what was not started, wait for the rest
        pool.shutdown(wait=True, cancel_futures=True)


def _sign_all(sign: Callable[[bytes], bytes], envelopes: list[Envelope]) -> list[bytes]:
    return [sign(envelope.data) for envelope in envelopes]
