"""Shared fixtures: a fresh sample project in tmp_path, and real CLI subprocess runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Run, RunCli
from mirage_mailer.project.scaffold import init_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scaffolded project, exactly what `mirage-mailer init` writes."""
    root = tmp_path / "proj"
    init_project(root)
    return root


@pytest.fixture
def run_cli(project: Path) -> RunCli:
    """Run `python -m mirage_mailer ARGS` in the project folder, as a user would."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 60, input: str | None = None) -> Run:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "mirage_mailer", *args],
            cwd=cwd or project, env=full_env, capture_output=True, text=True,
            timeout=timeout, input=input, check=False,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def in_project(project: Path) -> Iterator[Path]:
    """The sample project as the current directory, as an officer runs commands there."""
    here = Path.cwd()
    os.chdir(project)
    try:
        yield project
    finally:
        os.chdir(here)
