"""`python -m mirage_mailer` and the console script's entry point, light on purpose: a
Ctrl-C while Python still imports the commands (about 0.15 s of every start) ends the run
quietly with 130, not with a KeyboardInterrupt traceback from inside click or jinja2.
The dataclasses those imports define are built from code kept since the last run
(``util.classcode``), and what the render's libraries derive from the templates' text is kept
too (``util.kept``)."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from mirage_mailer.commands.streams import open_standard_streams
from mirage_mailer.util import classcode, kept


def _interrupted(signum: int, frame: FrameType | None) -> None:
    sys.stderr.write("mirage-mailer: interrupted\n")
    os._exit(130)  # nothing has been read or written yet: nothing to clean up


def main() -> None:
    open_standard_streams()  # before any file is opened: a closed stdout's number is free
    previous = signal.signal(signal.SIGINT, _interrupted)
    classcode.install()  # before the first dataclass
    kept.install()  # what libraries derive from the templates' text, kept (``util.kept``)
    from mirage_mailer.cli import main as run  # the heavy imports

    signal.signal(signal.SIGINT, previous)  # from here on, the commands' own handling
    run()


if __name__ == "__main__":
    main()
