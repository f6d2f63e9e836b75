"""``serve`` on a PostgreSQL store: requests per second of the pages and forms that use the
store, with the connection each worker thread keeps across requests (``web/stores.py``)
against the baseline in the same run, a new connection per request (a login each, as before:
``OpenEach``, what the command line does). Paths: the "view online" link (two reads), the
one-click unsubscribe POST (a read and a write), the sign-up POST (a write; it also builds
and writes the confirmation mail to the Maildir outbox) and the archive index (a look for the
store, then its published issues). Starts a private PostgreSQL cluster on 127.0.0.1
(``tests/support/postgres.py``); the real app through Starlette's test client, no network
between client and app, so what differs is the store's connections only.

    python bench/web_store.py [--requests 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from starlette.exceptions import StarletteDeprecationWarning

warnings.filterwarnings("ignore", category=StarletteDeprecationWarning)  # the test client's
from starlette.testclient import TestClient  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from mirage_mailer.project.config import Settings, load_settings  # noqa: E402
from mirage_mailer.project.scaffold import init_project  # noqa: E402
from mirage_mailer.services.store_access import OpenEach  # noqa: E402
from mirage_mailer.util.tokens import Signer, load_secret  # noqa: E402
from mirage_mailer.web.app import create_app  # noqa: E402
from mirage_mailer.web.context import WebContext  # noqa: E402
from support.postgres import PostgresServer, start_server  # noqa: E402

BASE = "http://127.0.0.1:8025"
ISSUE = "2021-10-partners-meeting"
SIGNUP = "/subscribe/subscribers"
READER = "maria.georgiou@example.org"


def per_request(app_ctx: WebContext, settings: Settings) -> None:
    """The baseline: every route and service opens (and closes) its own store."""
    each = OpenEach(settings)
    object.__setattr__(app_ctx, "stores", each)
    app_ctx.catalogue._stores = each  # the bench swaps the holder


def unlimited(app_ctx: WebContext) -> None:
    """Sign-ups from one client to many addresses: the rate limits would refuse most."""
    app_ctx.limits.per_client.limit = app_ctx.limits.per_mailbox.limit = 10**9


def rate(request: Callable[[int], int], requests: int) -> float:
    request(-1)  # warm: templates, the kept connection
    start = time.perf_counter()
    for n in range(requests):
        status = request(n)
        assert status == 200, status
    return requests / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server: PostgresServer = start_server()
    serial = itertools.count()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "project"
            init_project(root)
            config = root / "mirage.yaml"
            text = config.read_text(encoding="utf-8").replace(
                "  database: .mirage/tracking.sqlite", f"  database: {server.new_database()}")
            config.write_text(text.replace("  # base_url: https://news.mirageproject.eu",
                                           f"  base_url: {BASE}"), encoding="utf-8")
            subprocess.run([sys.executable, "-m", "mirage_mailer", "send", f"issues/{ISSUE}",
                            "--yes"], cwd=root, check=True, capture_output=True, timeout=120)
            settings = load_settings(config)
            signer = Signer(load_secret(settings.state_dir, settings.tracking.secret_env))
            maria = signer.subject_id(READER)  # a recipient of the issue, as in her message
            view = "/v/" + signer.make_for_subject("view", ISSUE, maria)
            unsubscribe = "/u/" + signer.make_for_subject("unsubscribe", ISSUE, maria)
            kept_app = create_app(settings)
            base_app = create_app(settings)
            per_request(base_app.state.ctx, settings)
            for app in (kept_app, base_app):
                unlimited(app.state.ctx)
            csrf = kept_app.state.ctx.csrf.issue(SIGNUP)  # both apps share the secret
            with TestClient(kept_app, base_url=BASE) as kept, \
                    TestClient(base_app, base_url=BASE) as base:
                def paths(client: TestClient) -> dict[str, Callable[[int], int]]:
                    return {
                        "view online (GET)": lambda _n: client.get(view).status_code,
                        "unsubscribe (POST)": lambda _n: client.post(
                            unsubscribe, content=b"List-Unsubscribe=One-Click",
                            headers={"Content-Type": "application/x-www-form-urlencoded"}
                        ).status_code,
                        "sign-up (POST)": lambda _n: client.post(SIGNUP, headers={
                            "Origin": BASE}, data={"csrf": csrf, "consent": "yes",
                            "email": f"r{next(serial)}@example.org", "lang": "en"}
                        ).status_code,
                        "archive (GET /)": lambda _n: client.get("/").status_code,
                    }
                ours, theirs = paths(kept), paths(base)
                for n in range(1, args.rounds + 1):
                    for name in ours:
                        before = rate(theirs[name], args.requests)
                        after = rate(ours[name], args.requests)
                        print(f"round {n}: {name:19s} per request {before:7.1f} req/s, kept "
                              f"{after:7.1f} req/s, ratio {after / before:.2f}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
