"""A real PostgreSQL server for the test session: Debian's binaries, a private cluster on
127.0.0.1 on a free port, trust authentication for 127.0.0.1 only, fsync off (a test cluster
has nothing to keep). Each test gets a fresh empty database by URL; the server stops when the
session ends, also when a test failed.

initdb and the server refuse to run as root, so as root they run as the ``postgres`` user
(``runuser``) in a folder it owns. Without the binaries (or psycopg) the PostgreSQL tests are
skipped with a reason, unless ``MIRAGE_REQUIRE_POSTGRES=1`` (CI), which makes that a failure.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REQUIRE_ENV = "MIRAGE_REQUIRE_POSTGRES"
PASSWORD_ROLE = "officer"  # the one role that must give a password (scram-sha-256)


class Unavailable(Exception):
    """No PostgreSQL to test against here (the message says why and what to install)."""


def find_bindir() -> Path:
    """The newest installed server's bin folder (Debian: /usr/lib/postgresql/<v>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise Unavailable("PostgreSQL tests need Debian's postgresql package (no initdb found): "
                      "apt-get install postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """A running private cluster; ``new_database()`` hands out fresh empty databases."""

    bindir: Path
    root: Path
    port: int
    as_user: list[str]
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run([*self.as_user, *args], capture_output=True, text=True,
                              timeout=timeout, check=False, cwd=self.root)
        if proc.returncode != 0:
            raise Unavailable(f"{Path(args[0]).name} failed: {proc.stderr.strip()[-800:]}")

    def start(self, *, tries: int = 5) -> None:
        """initdb once, then start on ``self.port``; a port taken meanwhile (another pytest
        worker or run picked it too: ``_free_port`` releases it before the server binds it)
        is retried on another free port."""
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        # trust on 127.0.0.1, except for the one role that tests password authentication
        (self.data / "pg_hba.conf").write_text(
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n")
        for attempt in range(tries):
            try:
                self._start_server()
                return
            except Unavailable:
                if attempt == tries - 1 or not self._port_was_taken():
                    raise
                self.port = _free_port()

    def _start_server(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1"
                   f" -c unix_socket_directories={self.root}"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                   " -c max_connections=60 -c shared_buffers=32MB")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.log), "-w", "-t", "60", "start", timeout=90)

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _port_was_taken(self) -> bool:
        """The last start failed because its TCP port was in use (the server's log says so);
        the log is emptied for the next try."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return False
        self.log.write_text("")
        return "Address already in use" in text or "could not bind" in text

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60,
                       check=False, cwd=self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh, empty database's URL (no password: trust on 127.0.0.1).

        Its default collation is ICU's en-US where the server has ICU (Debian's does), as a
        real server's en_US.UTF-8 would be: text does not sort by code point there, which
        the store's "C" columns must make irrelevant."""
        import psycopg

        name = f"t{next(self._numbers)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            try:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0'
                             " LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
            except psycopg.Error:  # a server without ICU (or before PostgreSQL 15)
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)


def start_server(port: int | None = None) -> PostgresServer:
    """Start a private cluster (on ``port``, or a free one), or raise ``Unavailable`` saying
    why not."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable("PostgreSQL tests need psycopg: pip install -e '.[test]'") from None
    bindir = find_bindir()
    root = Path(tempfile.mkdtemp(prefix="mirage-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to 'postgres'
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user") from None
        os.chmod(root, 0o700)
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(bindir, root, port or _free_port(), as_user)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def raw(database: object, sql: str, params: tuple[object, ...] = (), *,
        script: bool = False) -> list[tuple[object, ...]]:
    """Run SQL on a store's database directly, as another program would (SQLite's ``?``
    placeholders on both; ``script``: several statements, no parameters); returns the rows."""
    from mirage_mailer.store.dialect import arrange, translate
    from mirage_mailer.util.database import PostgresUrl

    if isinstance(database, PostgresUrl):
        import psycopg

        with psycopg.connect(database.url, autocommit=True,
                             cursor_factory=psycopg.RawCursor) as conn:
            if script:
                conn.execute(sql.encode())
                return []
            text, order = translate(sql)
            cur = conn.execute(text, list(arrange(order, params)) if params else None)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
    import sqlite3

    lite = sqlite3.connect(str(database), isolation_level=None)
    try:
        if script:
            lite.executescript(sql)
            return []
        return [tuple(r) for r in lite.execute(sql, params).fetchall()]
    finally:
        lite.close()
