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
from mirage_mailer.util.database import Database, PostgresUrl
from support.postgres import PostgresServer, Unavailable, start_server
from support.postgres import required as postgres_required


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


# -- the tracking store on both backends ----------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the session (tests/support/postgres.py); skipped
    with the reason when the binaries are missing, failed instead under
    MIRAGE_REQUIRE_POSTGRES=1 (CI)."""
    try:
        server = start_server()
    except Unavailable as exc:
        if postgres_required():
            pytest.fail(f"MIRAGE_REQUIRE_POSTGRES=1: {exc}")
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> PostgresUrl:
    """A fresh, empty PostgreSQL database."""
    return PostgresUrl(postgres_server.new_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    """Where a test's store lives: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if backend == "postgresql":
        url: PostgresUrl = request.getfixturevalue("pg_url")
        return url
    return tmp_path / "project" / ".mirage" / "tracking.sqlite"
