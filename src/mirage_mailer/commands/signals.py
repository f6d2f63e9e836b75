"""Ctrl-C and SIGTERM during a send: the process's signals belong to the command line, so the
handlers are installed here and the send service only sees a stop event (``StopSource``).

Stopping means: take no new recipients, let the messages on the wire finish and be recorded,
then exit 130 (SIGINT) or 143 (SIGTERM) so cron sees that the run did not finish.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable


class SignalStop:
    """Sets the run's stop event on the first SIGINT or SIGTERM and remembers which it was."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    def arm(self, stop: asyncio.Event) -> Callable[[], None]:
        """Install the handlers on the running loop; returns the call that removes them."""
        loop = asyncio.get_running_loop()
        installed = []

        def stopped_by(sig: signal.Signals) -> None:
            if self.signal is None:
                self.signal = sig
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stopped_by, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or a platform without them: no early stop

        def disarm() -> None:
            for sig in installed:
                loop.remove_signal_handler(sig)
        return disarm
