"""``init DIR``: copy the packaged sample project, the single source of the sample files,
with the new project's own name, addresses, language and preset when ``init`` was told them
(``init_answers``)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from mirage_mailer.project.init_answers import (
    ProjectAnswers,
    configure,
    localise_sample,
    personalise_sample,
)
from mirage_mailer.util.errors import InputError, Problem, display_path
from mirage_mailer.util.statedir import private_dir
from mirage_mailer.util.writes import check_folder_path, write_private, writing

# .mirage/ holds the store, the signing secret and the sent marker: it must follow the project
# to another machine by copy, never through git (docs/operations.md); the venv is rebuilt.
# The lists hold readers' addresses once filled in place: owner-only (0600) from the start,
# as every other file of them (``util.writes``), whatever the umask. mirage.yaml names the
# environment variables of secrets, never a secret, and goes to colleagues through git; the
# templates and issues are the newsletter itself: those follow the umask.
PRIVATE = "lists"

GITIGNORE = ("# mirage-mailer output and state\noutbox/\npreview/\narchive/\n.mirage/\n"
             "# the virtual environment mirage-mailer is installed in\n.venv/\n")


def scaffold_root() -> Traversable:
    return resources.files("mirage_mailer").joinpath("data", "scaffold")


def _files(node: Traversable, prefix: Path = Path()) -> list[tuple[Path, Traversable]]:
    found = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            found.extend(_files(child, prefix / child.name))
        else:
            found.append((prefix / child.name, child))
    return found


def scaffold_files() -> list[tuple[Path, Traversable]]:
    """(relative path, packaged file) of every file that ``init`` writes."""
    return _files(scaffold_root())


def _refuse_clashes(target: Path, paths: list[Path]) -> None:
    clashes = [rel for rel in paths if (target / rel).exists()]
    if clashes:
        raise InputError(Problem(display_path(target / clashes[0]), None,
                                 "already exists; init never overwrites files",
                                 "choose an empty or new folder"))


def check_target(target: Path) -> None:
    """Refuse, before anything is asked, a folder that already holds a file init would
    write (the sample's, or its French project's names)."""
    check_folder_path(target, "the project")
    contents = {rel: b"" for rel, _source in scaffold_files()}
    _refuse_clashes(target, sorted({*contents, *localise_sample(contents, "fr")}))


def init_project(target: Path, answers: ProjectAnswers | None = None) -> list[Path]:
    """Write the sample project into ``target``, with ``answers`` in place of the MIraGE
    sample's name, addresses, language and preset when given; refuses to overwrite any file."""
    contents = {rel: source.read_bytes() for rel, source in scaffold_files()}
    if answers is not None:
        config = Path("mirage.yaml")
        contents[config] = configure(contents[config].decode("utf-8"), answers).encode("utf-8")
        contents = localise_sample(personalise_sample(contents, answers), answers.language)
    _refuse_clashes(target, list(contents))
    written = []
    with writing(target, "the project"):
        for rel, data in sorted(contents.items()):
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if rel.parts[0] == PRIVATE:
                write_private(path, data)
            else:
                path.write_bytes(data)
            written.append(path)
        ignore = target / ".gitignore"
        if not ignore.exists():
            ignore.write_text(GITIGNORE, encoding="utf-8")
            written.append(ignore)
        # Owner-only from the start, so the documented cron line's log and a DKIM key made
        # with openssl have a private folder to go to before anything has signed or sent.
        state = target / ".mirage"  # Settings.state_dir
        if not state.is_dir():
            written.append(private_dir(state))
    return written
