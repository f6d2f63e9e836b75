"""Ctrl-C and SIGTERM during a send: the process's signals belong to the command line, so the
handlers are installed here and the send service only sees a stop event (``StopSource``).

Stopping means: take no new recipients, let the messages on the wire finish and be recorded,
then exit 130 (SIGINT) or 143 (SIGTERM) so cron sees that the run did not finish.

Before the delivery loop runs (rendering, planning a long list into the store, the prompt)
there is nothing on the wire to finish: a SIGTERM or a Ctrl-C then raises ``StoppedEarly``
(a ``BaseException``, as Ctrl-C's ``KeyboardInterrupt`` is, so no ``except Exception`` takes
it), which unwinds the store's transaction and the locks, and the command line exits 143 or
130 with one line saying that nothing was sent, instead of the default action killing the
process mid-plan (SIGTERM) or a bare "aborted" (Ctrl-C).

From the moment messages may go without this process's event loop (sending processes are
about to be forked: ``remember``) until the command ends, a signal is only remembered: the
loop that arms next stops at once, and the summary says what was sent. Raising then would
claim "nothing was sent" while the children send, or be swallowed where Python runs the
handler inside ``os.fork``'s own hooks ("Exception ignored"), losing the stop.
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


STOPS = (signal.SIGINT, signal.SIGTERM)


class SignalStop:
    """Sets the run's stop event on the first SIGINT or SIGTERM and remembers which it was."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    @contextmanager
    def early(self) -> Iterator[None]:
        """For the whole command: a stop signal before the delivery loop stops the run (exit
        130 or 143) rather than killing it; after the loop, it is remembered for the summary."""
        try:
            previous = {sig: signal.signal(sig, self._before) for sig in STOPS}
        except ValueError:  # not the main thread: the default actions, as before
            yield
            return
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _before(self, signum: int, _frame: FrameType | None) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        raise StoppedEarly(signum, name)

    def _after(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signal.Signals(signum)

    def remember(self) -> None:
        """From now on a stop signal never raises: it is kept for ``arm`` (whose loop then
        stops at once) and for the summary. Called before sending processes are forked."""
        try:
            for sig in STOPS:
                signal.signal(sig, self._after)
        except ValueError:  # not the main thread: nothing was installed to take back
            pass

    def arm(self, stop: asyncio.Event) -> Callable[[], None]:
        """Install the handlers on the running loop; returns the call that removes them."""
        import asyncio

        loop = asyncio.get_running_loop()
        installed = []
        outer = {sig: signal.getsignal(sig) for sig in STOPS}

        def stopped_by(sig: signal.Signals) -> None:
            if self.signal is None:
                self.signal = sig
            stop.set()

        for sig in STOPS:
            try:
                loop.add_signal_handler(sig, stopped_by, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or a platform without them: no early stop
        if self.signal is not None:  # came while remembered (``remember``): stop at once
            stop.set()

        def disarm() -> None:
            for sig in installed:
                loop.remove_signal_handler(sig)  # leaves SIGTERM at its default: a kill
                if outer[sig] in (self._before, self._after):
                    signal.signal(sig, self._after)  # messages went: no "none sent"
        return disarm
