"""Python 3.12 and 3.13 (``requires-python >= 3.11``): what a newer Python deprecates in our
own code fails here first, before it is removed and breaks a user's install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

IMPORT_EVERY_MODULE = textwrap.dedent("""
    import importlib, pkgutil, mirage_mailer
    for module in pkgutil.walk_packages(mirage_mailer.__path__, "mirage_mailer."):
        importlib.import_module(module.name)
""")


def test_every_module_imports_without_a_deprecation_warning() -> None:
    """3.13 deprecated ``importlib.abc.Traversable`` (gone in 3.14): ``init`` would fail."""
    proc = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", IMPORT_EVERY_MODULE],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1:]
    assert proc.stderr == ""
