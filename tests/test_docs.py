"""The docs are tested: they build, they name every setting and command, and their commands run.

- Every ``mirage.yaml`` key the loader accepts is a row of docs/configuration.md, and every row
  is a key the loader accepts. The keys come from the loader itself: ``load_settings`` is run
  with its ``check_keys`` wrapped, which records the keys allowed at each place.
- ``mkdocs build --strict`` passes, so a broken link, anchor or nav entry fails.
- Every ``mirage-mailer COMMAND --flag`` in a code span or block of README.md and docs/ names
  a command and flags that exist, every command and flag is documented somewhere, and the
  README's main-job command runs as written on the sample project.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import RunCli
from mirage_mailer.cli import main
from mirage_mailer.project import config as config_module
from mirage_mailer.util.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CONFIG_DOC = DOCS / "configuration.md"
# A row of the reference: "| `transport.url` | text | ... |"
DOC_ROW = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)
LANG = "<lang>"


# --- configuration keys ----------------------------------------------------------------------

def _schema_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every dotted key ``load_settings`` accepts, recorded from its own ``check_keys`` calls.

    The config below opens every section and one disclaimer translation, so every place that
    checks keys runs; a translation's language becomes ``<lang>``.
    """
    seen: set[str] = set()
    real = config_module.check_keys

    def recording(data: Any, path: Path, *, allowed: set[str], where: str = "",
                  **kwargs: Any) -> None:
        prefix = re.sub(r"^disclaimer\.translations\.[^.]+$", f"disclaimer.translations.{LANG}",
                        where)
        seen.update(f"{prefix}.{key}" if prefix else key for key in allowed)
        real(data, path, allowed=allowed, where=where, **kwargs)

    monkeypatch.setattr(config_module, "check_keys", recording)
    path = tmp_path / "mirage.yaml"
    path.write_text(
        "project: {name: P, contact: info@example.org}\n"
        "sender: {from: news@example.org}\n"
        "transport: {}\n"
        "disclaimer:\n"
        "  translations:\n"
        "    fr: {statement: Financé par l'Union européenne, text: Texte.}\n"
        "tracking: {}\n"
        "web: {}\n"
        "dkim: {domain: example.org, selector: s1, key_env: MIRAGE_DKIM_KEY}\n"
        "bounces: {}\n",
        encoding="utf-8",
    )
    try:
        config_module.load_settings(path)
    except InputError as error:  # a refusal could skip a place that checks keys
        pytest.fail(f"the sample config should load: {error}")
    sections = {key for key in seen if "." not in key}
    assert {"project", "sender", "transport", "disclaimer", "tracking", "web",
            "dkim"} <= sections
    assert any(key.startswith(f"disclaimer.translations.{LANG}.") for key in seen), seen
    for section in sections:  # each section's own keys were recorded too
        assert any(key.startswith(f"{section}.") for key in seen) or section == "templates"
    return seen


def _documented_keys() -> list[str]:
    return DOC_ROW.findall(CONFIG_DOC.read_text(encoding="utf-8"))


def test_every_config_key_is_documented_and_no_other(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    schema = _schema_keys(tmp_path, monkeypatch)
    documented = _documented_keys()
    assert len(documented) == len(set(documented)), "a key is documented twice"
    missing = sorted(schema - set(documented))
    unknown = sorted(set(documented) - schema)
    assert not missing, f"keys missing from docs/configuration.md: {missing}"
    assert not unknown, f"docs/configuration.md documents keys mirage.yaml refuses: {unknown}"


# --- the site builds -------------------------------------------------------------------------

def test_mkdocs_build_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site/configuration/index.html").is_file()


def test_readme_links_lead_to_files() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not re.match(r"^[a-z]+:", t)]
    assert local, "the README links into docs/"
    assert not [t for t in local if not (ROOT / t).exists()]


# --- commands and flags ----------------------------------------------------------------------

def _help(*args: str) -> str:
    """``mirage-mailer ARGS --help`` as it prints, run in-process through the console
    script's ``main``: the same text as a real run (about 40 of them, 0.5 s of imports each);
    tests/test_send_flags.py and others run ``--help`` as a user does."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([*args, "--help"])
        except SystemExit as exc:
            assert exc.code in (0, None), (args, exc.code)
    return out.getvalue()


def _section(help_text: str, title: str) -> list[str]:
    """The lines of one section of click's help ("Commands:", "Options:")."""
    lines = help_text.splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if lines[i] and not lines[i][0].isspace()),
               len(lines))
    return lines[start:end]


def _flags(help_text: str) -> set[str]:
    """Every option name in a help text's "Options:" section (``-y, --yes``, ``--no-x``)."""
    return {flag for line in _section(help_text, "Options:") if line.startswith("  -")
            for flag in re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", line.split("  ")[1])}


def _commands(help_text: str) -> list[str]:
    """The names in a help text's "Commands:" section (none for a plain command)."""
    if "Commands:" not in help_text.splitlines():
        return []
    return [line.split()[0] for line in _section(help_text, "Commands:")
            if line.startswith("  ") and not line.startswith("   ")]


@functools.cache
def _cli() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """What ``mirage-mailer --help`` shows: the global flags, and each command's flags; a
    group's commands are named with the group (``subscribers add``)."""
    top = _help()
    names = _commands(top)
    assert len(names) >= 10, top
    commands = {}
    for name in names:
        text = _help(name)
        commands[name] = frozenset(_flags(text))
        for sub in _commands(text):
            commands[f"{name} {sub}"] = frozenset(_flags(_help(name, sub)))
    return frozenset(_flags(top)), commands


def _doc_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _code(text: str) -> Iterator[str]:
    """Each line of a fenced block (comments cut) and each inline code span elsewhere."""
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            yield re.split(r"\s#", line, maxsplit=1)[0]
        else:
            yield from re.findall(r"`([^`]+)`", line)


def _command_words(code: str, commands: dict[str, frozenset[str]]) -> Iterator[list[str]]:
    """The words after ``mirage-mailer`` (global options dropped) of each command in a line
    of code; with ``commands``, also a line that starts with a command's name without the
    program's (``subscribers add LIST EMAIL``, ``send --dry-run``), but not the shell's
    ``export NAME=...``."""
    lines = [match.group(1) for match in
             re.finditer(r"(?:^|(?<=[\s/'\"(]))mirage-mailer\s+(.*)", code)]
    if not lines and commands and code.split()[:1] and code.split()[0] in commands and not (
            re.match(r"^\S+\s+[A-Za-z_][A-Za-z0-9_]*=", code)):
        lines = [code]
    for line in lines:
        words = re.split(r"\s+(?:&&|\|\||;|>>?|2>&1)\s*", line)[0].split()
        while words and words[0].startswith("-"):  # global options
            words = words[2:] if words[0] == "--config" else words[1:]
        if words and re.match(r"^[a-z][a-z-]*$", words[0]):
            yield words


def _usages(*, bare: bool = False) -> list[tuple[str, str, list[str]]]:
    """(where, command, flags) for every ``mirage-mailer COMMAND ...`` in the docs; ``bare``:
    also code that starts with a command's name. A group's word after its name is its
    command (``subscribers add``): one it does not have is named as written, so it is
    reported (``subscribers forget``)."""
    commands = _cli()[1]
    groups = {name.split()[0] for name in commands if " " in name}
    found = []
    for path in _doc_files():
        for code in _code(path.read_text(encoding="utf-8")):
            for words in _command_words(code, commands if bare else {}):
                if words[0] in groups and len(words) > 1 and re.match(r"^[a-z][a-z-]*$",
                                                                      words[1]):
                    words = [f"{words[0]} {words[1]}", *words[2:]]
                flags = [m.group(1) for w in words[1:]
                         if (m := re.match(r"^\[?(--?[A-Za-z][\w-]*)", w))]
                found.append((path.relative_to(ROOT).as_posix(), words[0], flags))
    return found


def test_documented_commands_and_flags_exist() -> None:
    """Code written with the program's name and code that starts with a command's name: a
    guide once said `subscribers forget` for `mirage-mailer forget`."""
    _, commands = _cli()
    usages = _usages(bare=True)
    assert len(usages) > len(_usages()) > 30, usages
    wrong = []
    for where, name, flags in usages:
        if name not in commands:
            wrong.append(f"{where}: mirage-mailer {name} is no command")
            continue
        wrong += [f"{where}: mirage-mailer {name} has no {flag}" for flag in flags
                  if flag not in commands[name]]
    assert not wrong, "\n".join(wrong)


def test_every_command_and_flag_is_documented() -> None:
    global_flags, commands = _cli()
    used = {name for _, name, _ in _usages()}
    used |= {name.split()[0] for name in used}  # a group is used when one of its commands is
    text = "\n".join(path.read_text(encoding="utf-8") for path in _doc_files())

    def mentioned(flag: str) -> bool:
        return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None

    missing = [f"mirage-mailer {name}" for name in commands if name not in used]
    missing += [f"mirage-mailer {name} {flag}" for name, flags in commands.items()
                for flag in sorted(flags) if flag.startswith("--") and flag != "--help"
                and not mentioned(flag)]
    missing += [f"mirage-mailer {flag}" for flag in sorted(global_flags)
                if flag.startswith("--") and flag != "--help" and not mentioned(flag)]
    assert not missing, f"undocumented in README.md and docs/: {missing}"


def _readme_main_job() -> list[str]:
    """The arguments of the README's first command: install, then run the main job."""
    for code in _code(README.read_text(encoding="utf-8")):
        if "pip install ." in code and "mirage-mailer" in code:
            last = code.split("&&")[-1].split()
            assert last[0] == ".venv/bin/mirage-mailer", code
            return last[1:]
    raise AssertionError("the README has no install-and-run command")


def test_readme_main_job_runs_on_the_sample_project(project: Path, run_cli: RunCli) -> None:
    """As the README says: the sample issue lands in the Maildir outbox, the store records it,
    and a second run sends nothing. ``project`` is the scaffold, which
    test_sample_project.py keeps equal to the sample project at the repository root."""
    args = _readme_main_job()
    first = run_cli(*args)
    assert first.code == 0, first.err
    delivered = sorted((project / "outbox/new").iterdir())
    assert delivered
    assert (project / ".mirage/tracking.sqlite").is_file()
    second = run_cli(*args)
    assert second.code == 0, second.err
    assert "nothing to send" in second.out + second.err
    assert sorted((project / "outbox/new").iterdir()) == delivered
