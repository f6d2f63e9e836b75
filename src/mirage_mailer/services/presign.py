"""DKIM signing a few messages ahead of the wire, on a worker thread.

The RSA operation of a signature costs about as much as everything else ``send`` does for a
message (bench/dkim_cost.py), and cryptography releases the GIL while OpenSSL does it, so a
worker thread signs the next messages on the other core while the event loop talks SMTP.
Signing stays the last step before the wire: each envelope's bytes are final, only the
signature header is added, and envelopes come out in the order they went in.

Nothing here touches state: an envelope signed ahead but never taken (a run stopped by a
signal) was never claimed, and is built again by the next run.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from mirage_mailer.delivery import Envelope

AHEAD = 16  # envelopes signed ahead: enough to keep the worker busy, few to redo if stopped


def presigned(envelopes: Iterator[Envelope], sign: Callable[[bytes], bytes], *,
              ahead: int = AHEAD, workers: int = 1) -> Iterator[Envelope]:
    """``envelopes`` with their data signed, up to ``ahead`` of them signed in advance."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="mirage-dkim")
    waiting: deque[tuple[Envelope, Future[bytes]]] = deque()
    try:
        for envelope in envelopes:
            waiting.append((envelope, pool.submit(sign, envelope.data)))
            if len(waiting) >= ahead:
                yield _signed(*waiting.popleft())
        while waiting:
            yield _signed(*waiting.popleft())
    finally:  # closed early (stop, abort): drop what was not started, wait for the rest
        pool.shutdown(wait=True, cancel_futures=True)


def _signed(envelope: Envelope, signature: Future[bytes]) -> Envelope:
    return dataclasses.replace(envelope, data=signature.result())
