"""Language names for people: each language named in itself, as language pickers should."""

from __future__ import annotations

from mirage_mailer.project.config import Settings
from mirage_mailer.util.langs import babel_locale


def label(code: str) -> str:
    locale = babel_locale(code)
    name = locale.get_display_name(locale) if locale is not None else None
    return (name[:1].upper() + name[1:]) if name else code


def choices(settings: Settings, published: set[str]) -> list[tuple[str, str]]:
    """(code, label): the project language first, then languages the project publishes in."""
    default = settings.project.language
    others = (set(settings.disclaimer.translations) | published) - {default}
    return [(code, label(code)) for code in [default, *sorted(others)]]
