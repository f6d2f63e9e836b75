"""``serve`` on a PostgreSQL store: requests per second of a page that reads the store (the
"view online" link: two reads), with the connection each worker thread keeps across requests
(``WebContext.store``) against the baseline in the same run, a new connection per request (a
login each, as before). Starts a private PostgreSQL cluster on 127.0.0.1
(``tests/support/postgres.py``); the real app through Starlette's test client, no network
between client and app, so what differs is the store's connection only.

    python bench/web_store.py [--requests 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.exceptions import StarletteDeprecationWarning

warnings.filterwarnings("ignore", category=StarletteDeprecationWarning)  # the test client's
from starlette.testclient import TestClient  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from mirage_mailer.project.config import load_settings  # noqa: E402
from mirage_mailer.project.scaffold import init_project  # noqa: E402
from mirage_mailer.store import Store, open_store  # noqa: E402
from mirage_mailer.util.tokens import Signer, load_secret  # noqa: E402
from mirage_mailer.web.app import create_app  # noqa: E402
from mirage_mailer.web.context import WebContext  # noqa: E402
from support.postgres import PostgresServer, start_server  # noqa: E402


class PerRequest(WebContext):
    """The baseline: a new PostgreSQL connection for every request."""

    @contextmanager
    def store(self) -> Iterator[Store]:
        with open_store(self.settings.tracking.database) as fresh:
            yield fresh


def rate(client: TestClient, path: str, requests: int) -> float:
    client.get(path)  # warm: templates, the kept connection
    start = time.perf_counter()
    for _ in range(requests):
        client.get(path)
    return requests / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server: PostgresServer = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "project"
            init_project(root)
            config = root / "mirage.yaml"
            config.write_text(config.read_text(encoding="utf-8").replace(
                "  database: .mirage/tracking.sqlite",
                f"  database: {server.new_database()}"), encoding="utf-8")
            settings = load_settings(config)
            open_store(settings.tracking.database).close()  # the tables, once
            signer = Signer(load_secret(settings.state_dir, settings.tracking.secret_env))
            path = "/v/" + signer.make_for_subject("view", "2024-05", "nobody")
            kept_app = create_app(settings)
            base_app = create_app(settings)
            object.__setattr__(base_app.state.ctx, "__class__", PerRequest)
            with TestClient(kept_app) as kept, TestClient(base_app) as base:
                for n in range(1, args.rounds + 1):
                    before = rate(base, path, args.requests)
                    after = rate(kept, path, args.requests)
                    print(f"round {n}: per request {before:7.1f} req/s, kept {after:7.1f} "
                          f"req/s, ratio {after / before:.2f}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
