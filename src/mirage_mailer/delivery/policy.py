"""Retry timing: how long to wait before trying a recipient or a connection again.

Transient failures back off exponentially with jitter so that a pool of connections does not
retry in lockstep. Throttle answers (the relay wants a slower pace) get short delays and, while
the relay keeps accepting other messages, do not count toward ``max_attempts``: the pacer is the
thing that fixes them, and a recipient must not be given up because the pacer was still learning.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    backoff_base: float = 1.0  # first retry after a transient failure (s)
    backoff_max: float = 60.0
    throttle_base: float = 0.05  # first retry after a throttle answer (s)
    throttle_max: float = 5.0
    free_throttle_retries: int = 25  # per recipient, not counted toward max_attempts
    connect_attempts: int = 4  # tries to (re)open a connection before giving it up
    connect_backoff: float = 0.25  # doubles after each failed try
    idle_noop_after: float = 20.0  # check an idle connection with NOOP before reusing it
    quit_timeout: float = 2.0  # a polite QUIT must not hold up the end of a run
    stall_timeout: float = 300.0  # nothing accepted or refused for good this long: abort
    jitter: float = 0.25  # +/- fraction applied to every delay
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def _jittered(self, delay: float) -> float:
        return delay * self.rng.uniform(1 - self.jitter, 1 + self.jitter)

    def retry_delay(self, strikes: int) -> float:
        """Delay before the next try after the ``strikes``-th counted transient failure."""
        return self._jittered(min(self.backoff_max, self.backoff_base * 2 ** max(0, strikes - 1)))

    def throttle_delay(self, free_retries: int) -> float:
        """Delay after the ``free_retries``-th throttle answer for the same recipient."""
        base = self.throttle_base * 2 ** max(0, free_retries - 1)
        return self._jittered(min(self.throttle_max, base))

    def connect_delay(self, failures: int) -> float:
        """Delay before reconnect try number ``failures + 1``."""
        return self._jittered(self.connect_backoff * 2 ** max(0, failures - 1))
