"""Fixtures for the web app: a project with a public base URL, one where the sample issue was
sent (`mirage-mailer send --yes`, once per session, copied per test), and test clients."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_support import BASE, TestClient, client_for

from helpers import SAMPLE_ISSUE, edit
from mirage_mailer.project.scaffold import init_project


def with_base_url(root: Path) -> Path:
    edit(root / "mirage.yaml", "  # base_url: https://news.mirageproject.eu", f"  base_url: {BASE}")
    return root


@pytest.fixture
def web_project(project: Path) -> Path:
    """The scaffolded project with tracking.base_url set (nothing sent yet)."""
    return with_base_url(project)


def send_sample(root: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE, "--yes"],
                          cwd=root, capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "sent 5" in proc.stdout, proc.stdout


@pytest.fixture(scope="session")
def sent_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sent") / "proj"
    init_project(root)
    with_base_url(root)
    send_sample(root)
    return root


@pytest.fixture
def sent_project(sent_template: Path, tmp_path: Path) -> Path:
    """A project whose sample issue went to its five readers (Maildir outbox, store)."""
    root = tmp_path / "sent"
    shutil.copytree(sent_template, root)
    return root


@pytest.fixture
def client(sent_project: Path) -> Iterator[TestClient]:
    with client_for(sent_project) as test_client:
        yield test_client


@pytest.fixture
def fresh_client(web_project: Path) -> Iterator[TestClient]:
    with client_for(web_project) as test_client:
        yield test_client
