"""Ctrl-C and SIGTERM during a send: the process's signals belong to the command line, so the
handlers are installed here and the send service only sees a stop event (``StopSource``).

Stopping means: take no new recipients, let the messages on the wire finish and be recorded,
then exit 130 (SIGINT) or 143 (SIGTERM) so cron sees that the run did not finish.

Before the delivery loop runs (rendering, planning a long list into the store, the prompt)
there is nothing on the wire to finish: a SIGTERM then raises ``StoppedEarly`` (a
``BaseException``, as Ctrl-C's ``KeyboardInterrupt`` is, so no ``except Exception`` takes
it), which unwinds the store's transaction and the locks, and the command line exits 143
with one line, instead of the default action killing the process mid-plan.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from mirage_mailer.util.errors import StoppedEarly

if TYPE_CHECKING:
    import asyncio


class SignalStop:
    """Sets the run's stop event on the first SIGINT or SIGTERM and remembers which it was."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    @contextmanager
    def early(self) -> Iterator[None]:
        """For the whole command: SIGTERM before the delivery loop stops the run (exit 143)
        rather than killing it; after the loop, it is remembered for the summary."""
        try:
            previous = signal.signal(signal.SIGTERM, self._before)
        except ValueError:  # not the main thread: the default action, as before
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _before(self, signum: int, _frame: FrameType | None) -> None:
        raise StoppedEarly(signum, signal.Signals(signum).name)

    def _after(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signal.Signals(signum)

    def arm(self, stop: asyncio.Event) -> Callable[[], None]:
        """Install the handlers on the running loop; returns the call that removes them."""
        import asyncio

        loop = asyncio.get_running_loop()
        installed = []
        outer = signal.getsignal(signal.SIGTERM)

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
                loop.remove_signal_handler(sig)  # leaves SIGTERM at its default: a kill
            if signal.SIGTERM in installed and outer == self._before:
                signal.signal(signal.SIGTERM, self._after)  # messages went: no "none sent"
        return disarm
