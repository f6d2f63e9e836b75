"""The store's two errors, shared by both backends."""

from __future__ import annotations

from mirage_mailer.util.errors import ExitCode, MirageError


class StoreError(MirageError):
    """The tracking database cannot be opened or is newer than this program."""

    exit_code = ExitCode.INVALID_INPUT


class StoreUnavailable(StoreError):
    """A write could not be made (locked too long, disk full, I/O error, the server gone):
    nothing was half-written, and a rerun resumes, so delivery stops with exit 3 as for a
    lock held."""

    exit_code = ExitCode.CANNOT_DELIVER
