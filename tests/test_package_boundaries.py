"""What the wheel may import: only its runtime dependencies, never the test extra or test support.

A plain ``pip install mirage-mailer`` has no aiosmtpd, trustme, hypothesis, playwright, pytest or
httpx, so a module under ``src/mirage_mailer`` that imports one fails there. The test SMTP sink
lives in ``tests/support/`` for that reason, and the package must not reach back into it.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "mirage_mailer"
TEST_ONLY = {"aiosmtpd", "trustme", "hypothesis", "playwright", "pytest", "httpx", "support"}


def _imported_roots(path: Path) -> set[str]:
    """Top-level names of the absolute imports in ``path`` (relative imports stay inside)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.partition(".")[0])
    return roots


def test_the_package_imports_nothing_from_the_test_extra() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20, f"no modules found under {PACKAGE}"
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(_imported_roots(path) & TEST_ONLY)
        for path in modules
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_scan_sees_every_form_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import aiosmtpd.smtp\nimport os, trustme as t\nfrom httpx import Client\n"
        "from . import pytest\ndef f():\n    from support.smtp_sink import SmtpSink\n",
        encoding="utf-8")
    assert _imported_roots(sample) & TEST_ONLY == {"aiosmtpd", "trustme", "httpx", "support"}


@pytest.mark.parametrize("name", ["mirage_mailer.delivery.testing",
                                  "mirage_mailer.delivery.faults"])
def test_the_test_sink_is_not_in_the_package(name: str) -> None:
    assert importlib.util.find_spec(name) is None
