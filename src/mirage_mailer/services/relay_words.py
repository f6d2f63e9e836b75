"""The relay's side of a send in the officer's words: which credentials, and what an aborted
run means for them (nothing lost, how many a rerun resumes).

The delivery layer knows bytes, not config: it gets the variables' names as plain words from
here, never their values.
"""

from __future__ import annotations

import os

from mirage_mailer.delivery import DeliveryAborted
from mirage_mailer.services.loader import Project
from mirage_mailer.util.errors import InputError, Problem, display_path


def credentials(project: Project) -> tuple[str, str] | None:
    """The SMTP login from the variables the config names; half of one is a mistake (exit 2,
    before the store is touched), none at all is an anonymous relay."""
    transport = project.settings.transport
    user = os.environ.get(transport.username_env or "") if transport.username_env else None
    password = os.environ.get(transport.password_env or "") if transport.password_env else None
    if user and password:
        return user, password
    names = {"username_env": transport.username_env, "password_env": transport.password_env}
    for have, lack, value in (("username_env", "password_env", user),
                              ("password_env", "username_env", password)):
        if value and names[lack]:  # half set: the officer meant to log in
            raise InputError(Problem(
                display_path(project.settings.path),
                project.settings.line_of.get(f"transport.{lack}"),
                f"{names[have]} is set but {names[lack]} is not",
                f"export {names[lack]}=... (or unset {names[have]})"))
    return None


def credential_words(project: Project) -> tuple[str, str]:
    """The credential variables' names, and what to say if a relay wants a login without
    them (the delivery layer has no config): names only, never values."""
    transport = project.settings.transport
    if not (transport.username_env and transport.password_env):
        return "", ("transport.username_env and transport.password_env are not set: name the "
                    "environment variables that hold the user name and password, and export "
                    "them")
    names = f"{transport.username_env} and {transport.password_env}"
    unset = [n for n in (transport.username_env, transport.password_env)
             if not os.environ.get(n)]
    said = " and ".join(unset)
    verb = "is" if len(unset) == 1 else "are"
    return names, (f"{said} {verb} not set: export {'it' if len(unset) == 1 else 'them'} "
                   "(see transport.username_env/password_env)")


def resumable(project: Project, aborted: DeliveryAborted,
              counts: dict[str, int] | None = None) -> DeliveryAborted:
    """An aborted run in the officer's words: at the config line of the relay, and (for a
    recorded send) that nothing was lost and how many a rerun picks up."""
    problem = aborted.problems[0]
    text = problem.message + (f": {problem.hint}" if problem.hint else "")
    if counts is not None:
        pending, unknown = counts.get("pending", 0), counts.get("unknown", 0)
        text += (f"; nothing was lost: {pending} recipient{'s' if pending != 1 else ''} "
                 "stay pending, run the same command again to resume")
        if unknown:
            text += f" ({unknown} unknown: check them, then add --resend-unknown)"
    settings = project.settings
    where = Problem(display_path(settings.path), settings.line_of.get("transport.url"), text)
    return DeliveryAborted(where, aborted.stats)
