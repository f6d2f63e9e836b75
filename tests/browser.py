"""Headless Chromium (Debian's package) driven by Playwright, for tests that look at pages.

In CI (``CI`` set) a missing browser is an error, because `.ci/run` installs it; on a
developer machine without Chromium the browser tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


@contextmanager
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


# axe-core (bundled by axe-playwright-python): the WCAG 2.0/2.1 A and AA rules that
# EN 301 549 points to, plus heading order (a best-practice rule the issue asks for).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": AXE_TAGS},
               "rules": {"heading-order": {"enabled": True}},
               "resultTypes": ["violations"]}
BLOCKING = frozenset({"serious", "critical"})


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (injected into the page, not served)."""
    from axe_playwright_python.sync_playwright import Axe

    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(Axe().axe_script)
    found: list[dict[str, Any]] = page.evaluate(f"axe.run(document, {json.dumps(AXE_OPTIONS)})"
                                                )["violations"]
    return found


def axe_lines(violations: list[dict[str, Any]], where: str) -> list[str]:
    """One line per violation and element: where, rule, impact, element, what to fix."""
    lines = []
    for violation in violations:
        for node in violation["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            summary = " ".join((node.get("failureSummary") or "").split())
            lines.append(f"{where}: {violation['id']} ({violation['impact']}) at {target}: "
                         f"{summary[:300]}")
    return lines
