"""The test PostgreSQL server itself (tests/support/postgres.py): pytest-xdist workers, and
two pytest runs at once, each start a cluster on a port picked free and released before the
server binds it; a port taken in between must not fail the session."""

from __future__ import annotations

import socket

import pytest

from support.postgres import Unavailable, required, start_server


def test_a_port_taken_before_the_server_binds_it_is_retried_on_another() -> None:
    psycopg = pytest.importorskip("psycopg")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        try:
            server = start_server(port)
        except Unavailable as exc:
            if required():
                pytest.fail(f"MIRAGE_REQUIRE_POSTGRES=1: {exc}")
            pytest.skip(str(exc))
        try:
            assert server.port != port
            with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            server.stop()
