"""Shared fixtures: a fresh sample project in tmp_path, real CLI subprocess runs, the test
SMTP server, and the sample issue rendered once."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, Run, RunCli
from mirage_mailer.compose.render import RenderedLanguage
from mirage_mailer.project.scaffold import init_project
from mirage_mailer.services.loader import open_project, render
from mirage_mailer.util.database import Database, PostgresUrl
from support.ports import RefusingPorts, refusing_ports
from support.postgres import PostgresServer, Unavailable, start_server
from support.postgres import required as postgres_required
from support.smtp_sink import SmtpSink


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scaffolded project, exactly what `mirage-mailer init` writes."""
    root = tmp_path / "proj"
    init_project(root)
    return root


@pytest.fixture(scope="module")
def sample_sent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample project after one real ``send`` of the sample issue into its Maildir outbox:
    made once per module and never changed; tests take their own copy (``helpers.copy_project``)
    instead of paying a send each (a CLI run of about a second of CPU)."""
    root = tmp_path_factory.mktemp("sample_sent") / "proj"
    init_project(root)
    proc = subprocess.run([sys.executable, "-m", "mirage_mailer", "send", SAMPLE_ISSUE, "--yes"],
                          cwd=root, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
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
def refusing_port() -> Iterator[RefusingPorts]:
    """``refusing_port()`` is a port of 127.0.0.1 that refuses connections (a server that is
    down) and stays ours until the test ends, so no server of another pytest worker takes it."""
    with refusing_ports() as ports:
        yield ports


@pytest.fixture
def in_project(project: Path) -> Iterator[Path]:
    """The sample project as the current directory, as an officer runs commands there."""
    here = Path.cwd()
    os.chdir(project)
    try:
        yield project
    finally:
        os.chdir(here)


@pytest.fixture
def sink(request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    """The test SMTP server (aiosmtpd on 127.0.0.1, in its own thread), for CLI runs to send
    to. Faults and options come from the closest ``smtp_fault`` marker, on the test or the
    module (``pytestmark``): ``@pytest.mark.smtp_fault(rules=[refuse(...)])`` is
    ``SmtpSink(rules=[refuse(...)])``. Each test gets its own copy of the rules, so one that
    counts (``fail_times``, ``drop_in_data``) starts afresh in every test and parameter of a
    module. tests/delivery/conftest.py has its own, with TLS."""
    marker = request.node.get_closest_marker("smtp_fault")
    options = dict(marker.kwargs) if marker else {}
    if "rules" in options:
        options["rules"] = copy.deepcopy(options["rules"])
    server = SmtpSink(**options)
    with server.running_in_thread():
        yield server


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> RenderedLanguage:
    """The sample issue's English part, rendered from the untouched scaffold (once a module)."""
    root = tmp_path_factory.mktemp("sample") / "proj"
    init_project(root)
    return render(open_project(root / "mirage.yaml", root / SAMPLE_ISSUE), set(),
                  languages=("en",))["en"]


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
