"""``init``'s questions: asked on a terminal (a wrong answer is asked again), answered by
flags in scripts (a wrong one stops with exit 2 and one line, before any file is written).

The checks themselves are ``project.init_answers``'s; this module only asks and reports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from mirage_mailer.project.init_answers import (
    INIT_PRESETS,
    PRESET_HELP,
    ProjectAnswers,
    check_authority,
    check_contact,
    check_lang,
    check_name,
    check_preset,
    check_privacy_url,
    check_website,
    default_contact,
)
from mirage_mailer.util.errors import InputError, Problem
from mirage_mailer.util.langs import normalise_language

Check = Callable[[str], str | None]
# every flag given: nothing to ask
_ASKED = ("name", "website", "contact", "lang", "preset", "privacy-url")


def ask_project(directory: Path, given: dict[str, str | None], *,
                interactive: bool) -> ProjectAnswers | None:
    """The answers, from the flags and (on a terminal) the prompts; None to keep the MIraGE
    sample's settings (no terminal and no flag: how ``init DIR`` always behaved)."""
    if not interactive and all(value is None for value in given.values()):
        return None
    asking = interactive and any(given[key] is None for key in _ASKED)
    if asking:
        click.echo("A few questions about the project (Enter keeps the [default]; the "
                   "flags --name, --website, --contact, --lang, --preset and --privacy-url "
                   "answer them in scripts).")

    def answer(key: str, prompt: str, check: Check, default: str | None,
               required: bool = False, what: str | None = None) -> str:
        value = given[key]
        if value is None and not asking:
            if default is None and required:
                raise InputError(Problem(f"--{key}", None, f"is needed: the {what or key}",
                                         f"add --{key}, or run init on a terminal to be "
                                         "asked"))
            value = default or ""
        while True:
            if value is None:
                value = click.prompt(prompt, default=default, show_default=bool(default))
            problem = check(value)
            if problem is None:
                return value.strip()
            if not asking:
                raise InputError(Problem(f"--{key}", None, problem))
            click.echo(f"  {problem}", err=True)
            value = None

    name = answer("name", "Project name", check_name, directory.resolve().name)
    website = answer("website", "Project website (Enter: none)", check_website, "")
    contact = answer("contact", "Contact address readers can write to", check_contact,
                     default_contact(website), required=True,
                     what="address readers can write to, e.g. --contact info@example.org")
    privacy_url = answer("privacy-url", "Address of your privacy notice (Enter: none yet; "
                         "sign-up needs it)", check_privacy_url, "")
    lang = answer("lang", "Default language of the newsletter (ISO 639-1)", check_lang, "en")
    if asking and given["preset"] is None:
        click.echo("EU disclaimer presets:")
        for preset in INIT_PRESETS:
            click.echo(f"  {preset}: {PRESET_HELP[preset]}")
    preset = answer("preset", "EU disclaimer preset", check_preset, INIT_PRESETS[0])
    authority = None
    if preset == "eu-2021-2027-direct":
        authority = answer("authority", "Granting authority, as your grant agreement names "
                           "it", check_authority, None, required=True,
                           what="granting authority that eu-2021-2027-direct names, e.g. "
                           "--authority 'the European Commission'")
    return ProjectAnswers(name=name, website=website or None, contact=contact,
                          language=normalise_language(lang), preset=preset,
                          authority=authority, privacy_url=privacy_url or None)
