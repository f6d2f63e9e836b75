"""An issue made ready to build messages: rendered once per language, signer and message
factory set up. ``send``, ``send --to``, ``--dry-run`` and ``preview`` all start here, so the
signing key and the factory are made in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mirage_mailer.compose.message import MessageFactory
from mirage_mailer.compose.render import RenderedLanguage
from mirage_mailer.compose.spam_checks import ratio_problems
from mirage_mailer.delivery import Envelope
from mirage_mailer.project.config import Settings
from mirage_mailer.services.loader import Project, render, template_fields
from mirage_mailer.services.presign import presigned
from mirage_mailer.services.signing import signing_secret
from mirage_mailer.util.errors import Problem
from mirage_mailer.util.tokens import Signer

if TYPE_CHECKING:
    from mirage_mailer.compose.dkim import DkimSigner


@dataclass
class Preparation:
    """An issue rendered once per language, ready to build every message: nothing sent yet."""

    project: Project
    rendered: dict[str, RenderedLanguage]
    factory: MessageFactory
    fields: set[str]  # list columns templates may use, read once from the list headers
    dkim: DkimSigner | None = None  # the DKIM signer (dkim: configured)
    warnings: list[Problem] = field(default_factory=list)  # seen in the rendered issue


def signer_for(settings: Settings) -> Signer:
    """The project's token signer (creates the secret on first use; refuses a short one,
    and a lost one in a project that has sent)."""
    return Signer(signing_secret(settings))


def prepare_issue(project: Project, *, languages: tuple[str, ...] | None = None,
                  subject_prefix: str = "", sign_as_built: bool = True) -> Preparation:
    """Render ``languages`` (default: every issue language) once; raises ``InputError``
    before anything is built or sent (a DKIM key that cannot sign included).

    With ``dkim:`` configured, ``sign_as_built`` signs each message as the factory builds it
    (a preview); a send builds them unsigned and signs them on their way out
    (``for_the_wire``), and a dry run, which transmits nothing, does not sign at all."""
    dkim = dkim_signer_for(project.settings) if project.settings.dkim is not None else None
    fields = template_fields(project)
    rendered = render(project, fields, languages=languages, subject_prefix=subject_prefix)
    factory = MessageFactory(project.settings, project.issue.id, rendered,
                             signer_for(project.settings),
                             finish=dkim.sign if dkim is not None and sign_as_built else None)
    if dkim is not None:
        for skeleton in factory.skeletons.values():
            dkim.body.learn(skeleton.constant_runs())
    return Preparation(project, rendered, factory, fields, dkim,
                       ratio_problems(project.issue, rendered))


def for_the_wire(prep: Preparation, envelopes: Iterator[Envelope]) -> Iterator[Envelope]:
    """The envelopes as they leave: the last step on each message's final bytes, right
    before the transport. Today that is the DKIM signature, made a batch or two ahead on a
    worker thread (``presign``) unless the factory signs already."""
    if prep.dkim is None or prep.factory.finish is not None:
        return envelopes
    return presigned(envelopes, prep.dkim.sign)


def dkim_signer_for(settings: Settings) -> DkimSigner:
    """The DKIM signer of every final message; raises ``InputError`` (exit 2) when the
    configured key cannot be used. Imported only for a project that signs: cryptography
    and the suffix list cost start-up time."""
    from mirage_mailer.services.dkim_keys import dkim_signer

    signer = dkim_signer(settings)
    assert signer is not None
    return signer
