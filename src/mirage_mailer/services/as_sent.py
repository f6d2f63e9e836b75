"""The issue as sent: what a real send keeps of each language for the archive and the
view-online page, and the warning when an issue changed after some readers got it.

A send's first real run records, per language, the rendered form before personalisation
(``store.SentForm``) with a digest of the inputs that decided it. Later runs compare their
inputs: while no reader has the issue, the record follows the files (a run that sent nothing
is no edition); once readers have it, it stays, and a changed issue is sent to the rest with
a warning naming the files, never refused (a typo corrected mid-send is legitimate).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from mirage_mailer.compose.disclaimer import EMBLEM_CID
from mirage_mailer.compose.images import InlineImage
from mirage_mailer.compose.message import fill
from mirage_mailer.compose.render import RenderedLanguage
from mirage_mailer.compose.slots import FRAGMENT_PREFIX, split_slots
from mirage_mailer.compose.strings import strings_for
from mirage_mailer.services.loader import Project
from mirage_mailer.store import RecorderStore, SentForm

# the links a page fills where it is shown (server or static archive): kept as slots
PAGE_SLOTS = ("unsubscribe_url", "view_online_url")


@dataclass(frozen=True)
class Inputs:
    """What decides an issue's messages, each by its sha256."""

    hashes: dict[str, str]

    @property
    def json(self) -> str:
        return json.dumps(self.hashes, sort_keys=True, ensure_ascii=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.json.encode("utf-8")).hexdigest()

    def changed_since(self, recorded: str) -> list[str]:
        """Names whose content differs from ``recorded`` (an ``Inputs.json``), or that one
        of the two lacks (a file added or removed)."""
        try:
            before = json.loads(recorded)
        except ValueError:
            before = {}
        names = set(before) | set(self.hashes)
        return sorted(n for n in names if before.get(n) != self.hashes.get(n))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files(base: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder, name) for name in files if not name.startswith(".")]
    return sorted(found)


def issue_inputs(project: Project) -> Inputs:
    """Every file of the issue folder and of templates/, and the parts of mirage.yaml that
    end up in the message (the disclaimer, the project's name, website and contact)."""
    settings = project.settings
    root = settings.path.parent
    hashes: dict[str, str] = {}
    for base in (project.issue.path.parent, settings.templates):
        for path in _files(base):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            hashes[Path(os.path.relpath(path, root)).as_posix()] = _digest(data)
    name = settings.path.name
    hashes[f"{name} (disclaimer)"] = _digest(repr(settings.disclaimer).encode("utf-8"))
    hashes[f"{name} (project)"] = _digest(repr(settings.project).encode("utf-8"))
    return Inputs(hashes)


def page_form(rendered: RenderedLanguage, project_name: str) -> str:
    """The language's HTML as the archive shows it, before any page fills its links: click
    targets restored, no open pixel, recipient logic run for no one in particular; the plain
    slots (greeting, name, fields, the page's links) stay for the page to fill."""
    html = rendered.untracked_html()
    names = set(split_slots(html)[1])
    values = {n: f"__MM_{n}__" for n in names if not n.startswith(FRAGMENT_PREFIX)}
    if rendered.fragments is not None:
        run = {n: f"__MM_{n}__" for n in PAGE_SLOTS}
        run["greeting"] = strings_for(rendered.lang, project_name)["dear_reader"]
        rendered.fragments.fill(run)
        values.update({n: v for n, v in run.items() if n.startswith(FRAGMENT_PREFIX)})
    return fill(html, values, html=True)


def images_json(images: tuple[InlineImage, ...]) -> str:
    """The article images (the emblem is the package's own): base64 in JSON."""
    return json.dumps([{"cid": i.cid, "filename": i.filename, "mime": i.mime,
                        "data": base64.b64encode(i.data).decode("ascii")}
                       for i in images if i.cid != EMBLEM_CID])


def images_from(text: str) -> tuple[InlineImage, ...]:
    return tuple(InlineImage(i["cid"], i["filename"], i["mime"], base64.b64decode(i["data"]))
                 for i in json.loads(text))


def keep_as_sent(project: Project, rendered: dict[str, RenderedLanguage],
                 store: RecorderStore, *, to_send: int, first_plan: bool = False) -> str | None:
    """Record the languages this run sends that have no record yet (every one, while no
    reader has the issue); returns the warning when readers have an earlier version and this
    run sends a changed one, else None.

    An issue with readers ``sent`` but no record at all was sent before the store kept it
    (an older mirage-mailer): its first form is unknown, so nothing is recorded for it. The
    usual rerun (nothing changed, every language recorded) reads no recipient row, and
    neither does an issue's ``first_plan`` (its rows were all made now, none sent: looking
    for a sent one scanned the whole issue, 1.4 s at a million rows)."""
    issue = project.issue.id
    inputs = issue_inputs(project)
    kept = store.as_sent(issue)
    if all(lang in kept and kept[lang].digest == inputs.digest for lang in rendered):
        return None
    readers = False if first_plan else store.has_sent(issue)
    if readers and not kept:
        return None
    fresh = [lang for lang in rendered if not readers or lang not in kept]
    store.record_as_sent([
        SentForm(issue, lang, rendered[lang].subject,
                 page_form(rendered[lang], project.settings.project.name),
                 images_json(rendered[lang].images), inputs.json, inputs.digest)
        for lang in fresh])
    earlier = [form for lang, form in kept.items()
               if form.digest != inputs.digest and lang not in fresh]
    if not readers or not earlier or not to_send:
        return None
    changed = inputs.changed_since(earlier[0].inputs)
    shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4
                                      else "")
    count = store.counts(issue)["sent"]
    have = "reader already has" if count == 1 else "readers already have"
    return (f"{issue}: {shown} changed since the issue was first sent: {count} {have} the "
            f"earlier version, the {to_send} left get this one (the archive and "
            "view-online links keep the first)")
