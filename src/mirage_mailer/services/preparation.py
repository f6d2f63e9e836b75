"""An issue made ready to build messages: rendered once per language, signer and message
factory set up. ``send``, ``send --to``, ``--dry-run`` and ``preview`` all start here, so the
signing key and the factory are made in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mirage_mailer.compose.message import MessageFactory
from mirage_mailer.compose.render import RenderedLanguage
from mirage_mailer.project.config import Settings
from mirage_mailer.services.loader import Project, render, template_fields
from mirage_mailer.util.tokens import Signer, load_secret


@dataclass
class Preparation:
    """An issue rendered once per language, ready to build every message: nothing sent yet."""

    project: Project
    rendered: dict[str, RenderedLanguage]
    factory: MessageFactory
    fields: set[str]  # list columns templates may use, read once from the list headers


def signer_for(settings: Settings) -> Signer:
    """The project's token signer (creates the secret on first use; refuses a short one)."""
    return Signer(load_secret(settings.state_dir, settings.tracking.secret_env))


def prepare_issue(project: Project, *, languages: tuple[str, ...] | None = None,
                  subject_prefix: str = "", sign: bool = True) -> Preparation:
    """Render ``languages`` (default: every issue language) once; raises ``InputError``
    before anything is built or sent. The DKIM key is checked either way; ``sign=False``
    (a dry run, which transmits nothing) leaves the messages unsigned."""
    finish = dkim_finish(project.settings) if project.settings.dkim is not None else None
    fields = template_fields(project)
    rendered = render(project, fields, languages=languages, subject_prefix=subject_prefix)
    factory = MessageFactory(project.settings, project.issue.id, rendered,
                             signer_for(project.settings), finish=finish if sign else None)
    return Preparation(project, rendered, factory, fields)


def dkim_finish(settings: Settings) -> Callable[[bytes], bytes]:
    """The DKIM signer's ``sign``, applied to every final message; raises ``InputError``
    (exit 2) when the configured key cannot be used. Imported only for a project that
    signs: cryptography and the suffix list cost start-up time."""
    from mirage_mailer.services.dkim_keys import dkim_signer

    signer = dkim_signer(settings)
    assert signer is not None
    return signer.sign
