"""Python 3.12 and 3.13 (``requires-python >= 3.11``): what a newer Python deprecates in our
own code fails here first, before it is removed and breaks a user's install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import pytest

from mirage_mailer.project import list_worker
from mirage_mailer.project.lists import iter_list
from mirage_mailer.util.forksafe import ignorable_by_forks

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


def test_a_list_read_beside_the_staging_thread_forks_without_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """3.12+ warn at a fork beside any thread; the list reader forks beside the store's
    staging thread on purpose (it holds no lock the child takes): no warning for users."""
    path = tmp_path / "subscribers.csv"
    path.write_text("email,name\n" + "".join(f"p{n}@example.org,P {n}\n" for n in range(50)),
                    encoding="utf-8")
    monkeypatch.setattr(list_worker, "PARALLEL_BYTES", 0)
    stop = threading.Event()
    staging = ignorable_by_forks(threading.Thread(target=stop.wait, daemon=True))
    staging.start()
    forks: list[bool] = []
    real = list_worker.can_fork
    monkeypatch.setattr(list_worker, "can_fork", lambda: forks.append(real()) or forks[-1])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rows = list(iter_list(path, "subscribers"))
    finally:
        stop.set()
        staging.join()
    assert forks == [True]  # read by the child
    assert [row.email for row in rows] == [f"p{n}@example.org" for n in range(50)]
    assert [str(w.message) for w in caught] == []
