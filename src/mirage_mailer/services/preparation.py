"""An issue made ready to build messages: rendered once per language, signer and message
factory set up. ``send``, ``send --to``, ``--dry-run`` and ``preview`` all start here, so the
signing key and the factory are made in one place.
"""

from __future__ import annotations

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
                  subject_prefix: str = "") -> Preparation:
    """Render ``languages`` (default: every issue language) once; raises ``InputError``
    before anything is built or sent."""
    fields = template_fields(project)
    rendered = render(project, fields, languages=languages, subject_prefix=subject_prefix)
    factory = MessageFactory(project.settings, project.issue.id, rendered,
                             signer_for(project.settings))
    return Preparation(project, rendered, factory, fields)
