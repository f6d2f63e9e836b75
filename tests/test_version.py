"""The version comes from one place (``mirage_mailer.__version__``) and every reader agrees.

pyproject.toml reads it as a dynamic attribute, so the installed distribution's metadata,
``mirage-mailer --version`` and the newest released heading of CHANGELOG.md must all say
the same thing.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import mirage_mailer

ROOT = Path(__file__).resolve().parent.parent
# "## [0.2.0] - 2026-11-30", as Keep a Changelog writes a release.
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", re.MULTILINE)


def _released() -> list[str]:
    return RELEASE.findall((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))


def test_console_script_metadata_and_changelog_agree() -> None:
    script = Path(sys.executable).with_name("mirage-mailer")
    printed = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                             timeout=60, check=True).stdout.strip()
    newest = _released()[0][0]
    assert printed == f"mirage-mailer, version {mirage_mailer.__version__}"
    assert version("mirage-mailer") == mirage_mailer.__version__
    assert newest == mirage_mailer.__version__


def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "mirage_mailer.__version__"}


def test_changelog_has_unreleased_on_top_then_releases_newest_first() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## .*$", text, re.MULTILINE)
    assert headings[0] == "## [Unreleased]"
    assert all(RELEASE.match(h) for h in headings[1:]), headings
    released = _released()
    as_tuples = [tuple(int(n) for n in v.split(".")) for v, _ in released]
    assert as_tuples == sorted(as_tuples, reverse=True)
    dates = [d for _, d in released]
    assert dates == sorted(dates, reverse=True)
