"""A secret written by mistake into a URL's query is never printed, and a login URL with a
query or fragment is refused (DESIGN: "No command prints a secret, including one written by
mistake into a URL"). Real CLI runs on the scaffolded project."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.util.database import parse_postgres
from mirage_mailer.util.urlsecrets import redact

SECRET = "hunter2SECRET"


@pytest.mark.parametrize(("text", "shown"), [
    ("smtp://127.0.0.1:2525?password=hunter2SECRET", "smtp://127.0.0.1:2525?***"),
    ("smtps://bob:pw@relay.example.org:465/#hunter2SECRET", "smtps://***@relay.example.org:465/#***"),
    ("'https://news.example.org/?token=hunter2SECRET' is wrong",
     "'https://news.example.org/?***' is wrong"),
    ("imaps://mail.example.org/INBOX?pass=x y", "imaps://mail.example.org/INBOX?*** y"),
    ("maildir:outbox", "maildir:outbox"),  # a path, no URL: nothing to hide
    ("what? really#1", "what? really#1"),  # plain words keep their punctuation
])
def test_redact_masks_the_login_and_the_query_of_urls(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_a_postgres_url_is_shown_without_its_query_and_refuses_sslpassword() -> None:
    url = parse_postgres("postgresql://mirage@db.example.org/news?sslmode=require")
    assert str(url) == "postgresql://mirage@db.example.org/news?***"
    assert url.url.endswith("?sslmode=require")  # still connects with what was written
    with pytest.raises(ValueError, match="sslpassword"):
        parse_postgres("postgresql://mirage@db.example.org/news?sslpassword=hunter2SECRET")


@pytest.mark.parametrize("command", [
    ("validate", SAMPLE_ISSUE),
    ("send", SAMPLE_ISSUE),
    ("send", SAMPLE_ISSUE, "--yes"),
    ("preview", SAMPLE_ISSUE),
    ("report", SAMPLE_ISSUE),
])
def test_a_password_in_the_transport_url_query_is_refused_and_never_printed(
        project: Path, run_cli: RunCli, command: tuple[str, ...]) -> None:
    edit(project / "mirage.yaml", "  url: maildir:outbox",
         f"  url: smtp://127.0.0.1:2525?password={SECRET}")
    result = run_cli(*command)
    assert result.code == 2, result.err
    assert SECRET not in result.out + result.err
    assert ("mirage.yaml:17: 'transport.url' 'smtp://127.0.0.1:2525?***' has a query (?...) "
            "or a fragment (#...), which it does not use; what is written there is not shown, "
            "as it may be a password (remove everything from the '?' or '#' on, and put a "
            "password in the environment variable that 'transport.password_env' names; if a "
            "real password was written here, change it)") in result.err.splitlines()
    assert not (project / "outbox").exists() or not any((project / "outbox").rglob("*.eml"))


def test_a_fragment_in_a_relay_url_is_refused_naming_the_relay(project: Path,
                                                               run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  url: maildir:outbox",
         f"  relays:\n    - url: smtp://relay.example.org:587#{SECRET}")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert SECRET not in result.out + result.err
    assert ("mirage.yaml:18: 'transport.relays[1].url' 'smtp://relay.example.org:587#***' "
            "has a query") in result.err
    assert "'transport.relays[1].password_env' names" in result.err


def test_a_query_in_the_bounce_mailbox_url_is_refused(project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "# bounces:\n#   address: bounces@mirageproject.eu\n"
         "#   mailbox: imaps://mail.mirageproject.eu/INBOX",
         "bounces:\n  address: bounces@mirageproject.eu\n"
         f"  mailbox: imaps://mail.mirageproject.eu/INBOX?password={SECRET}")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert SECRET not in result.out + result.err
    assert ("mirage.yaml:42: 'bounces.mailbox' 'imaps://mail.mirageproject.eu/INBOX?***' has "
            "a query") in result.err
    assert "'bounces.password_env' names" in result.err


def test_a_token_in_the_base_url_query_is_refused_without_echoing_it(project: Path,
                                                                     run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  # base_url: https://news.mirageproject.eu",
         f"  base_url: https://news.mirageproject.eu/?token={SECRET}")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert SECRET not in result.out + result.err
    assert ("mirage.yaml:36: 'tracking.base_url' 'https://news.mirageproject.eu/?***' has a "
            "query (?...)") in result.err


def test_a_query_in_the_imap_option_is_refused_without_echoing_it(project: Path,
                                                                  run_cli: RunCli) -> None:
    result = run_cli("process-unsubscribes", "--imap",
                     f"imaps://news@mail.example.org/INBOX?password={SECRET}")
    assert result.code == 2, result.err
    assert SECRET not in result.out + result.err
    assert "--imap: 'imaps://***@mail.example.org/INBOX?***' has a query" in result.err
