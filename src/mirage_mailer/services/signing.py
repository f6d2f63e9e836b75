"""The signing secret of a project, read the one way every command and the web side share.

A missing ``.mirage/secret`` is created on first use in a new project, and refused (exit 2)
in one that has sent: links already sent were signed with the lost key (``util.tokens``).
"Has sent" is ``.mirage/sent``, or a store that holds recipients (a project that sent with a
version before the marker), which writes the marker here before the key is read.
"""

from __future__ import annotations

from mirage_mailer.project.config import Settings
from mirage_mailer.store.guard import remember_sent
from mirage_mailer.util.tokens import (
    Rotation,
    Secret,
    check_secret,
    load_secret,
    refuse_lost,
    rotate_secret,
    secret_missing,
)


def _note_earlier_sends(settings: Settings) -> None:
    """Before a missing key is judged: an older store's recipients count as having sent."""
    if secret_missing(settings.state_dir, settings.tracking.secret_env):
        remember_sent(settings.tracking.database, settings.state_dir)


def signing_secret(settings: Settings) -> Secret:
    """The project's keys; creates the first one, refuses to replace a lost one (exit 2)."""
    _note_earlier_sends(settings)
    return load_secret(settings.state_dir, settings.tracking.secret_env)


def existing_secret(settings: Settings) -> Secret | None:
    """The keys, or None when no token was ever made (nothing is created here); a lost key
    of a project that has sent is refused (exit 2), not taken for "no token was made"."""
    if secret_missing(settings.state_dir, settings.tracking.secret_env):
        _note_earlier_sends(settings)
        refuse_lost(settings.state_dir)
        return None
    return load_secret(settings.state_dir, settings.tracking.secret_env)


def check_signing_secret(settings: Settings) -> None:
    """``signing_secret``'s refusals without writing a key (``validate``, ``doctor``)."""
    _note_earlier_sends(settings)
    check_secret(settings.state_dir, settings.tracking.secret_env)


def rotate(settings: Settings, *, replace_lost: bool = False) -> Rotation:
    """A new current key (``rotate-secret``); see ``util.tokens.rotate_secret``."""
    _note_earlier_sends(settings)
    return rotate_secret(settings.state_dir, settings.tracking.secret_env,
                         replace_lost=replace_lost)
