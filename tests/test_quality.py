"""The whole check loop in one command: lint and strict types run with the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", "src", "tests", "scripts", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = _run("mypy", "--config-file", "pyproject.toml", "src/mirage_mailer", "tests/support")
    assert result.returncode == 0, result.stdout + result.stderr
