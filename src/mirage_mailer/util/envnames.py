"""Is a ``*_env`` value the name of an environment variable, or the secret pasted in its place?

Every ``*_env`` key (and ``--password-env``) names a variable; the value itself never sits in
``mirage.yaml``. Someone who pastes the password there gets a message, and that message must
not print it back into cron mail and logs. A name is letters, digits and ``_``, not starting
with a digit, written in one case (``MIRAGE_SMTP_PASSWORD`` or ``mirage_smtp_password``);
a value that mixes upper- and lower-case letters (``Sup3rS3cretPassw0rd``), or that has a
letter right after a digit and no ``_`` (``a3f9c2e1``, a generated token), looks like a
password and is refused without being shown. A name that fails this rule is never echoed.
"""

from __future__ import annotations

import re

from mirage_mailer.util.errors import Problem

_SHAPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_DIGIT_THEN_LETTER = re.compile(r"[0-9][A-Za-z]")
RULE = "letters, digits and _, in one case, e.g. MIRAGE_SMTP_PASSWORD"


def is_env_name(value: str) -> bool:
    """True for a plausible variable name; False for anything else, a password above all."""
    if not _SHAPE.fullmatch(value):
        return False
    if value != value.upper() and value != value.lower():  # mixed case: Sup3rS3cret
        return False
    return "_" in value or not _DIGIT_THEN_LETTER.search(value)  # a3f9c2e1: a token


def not_an_env_name(option: str, example: str) -> Problem:
    """A command-line ``--...-env`` value that is no variable name, without showing it."""
    return Problem(option, None, "must name an environment variable (letters, digits and _, "
                   f"in one case, e.g. {example}); what was given is not shown, as it may be "
                   "the secret itself", f"give the variable's name, e.g. {option} {example}, "
                   "and put the value in that variable")
