"""`forget` and `export` (GDPR articles 17 and 15) end to end: CLI subprocesses on a scaffolded
project, sending into the embedded Maildir outbox, with a real SQLite store."""

from __future__ import annotations

import email
import json
import shutil
from email import policy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers import SAMPLE_ISSUE, RunCli, copy_project
from mirage_mailer.cli import cli
from mirage_mailer.store import Store

JEAN = "jean.dupont@example.org"
NEXT_ISSUE = "issues/2021-11-next"


def database(project: Path) -> Path:
    return project / ".mirage/tracking.sqlite"


def sqlite_bytes(project: Path) -> bytes:
    """The database file and its WAL (and a rollback journal, were there one), lowercased."""
    db = database(project)
    parts = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-journal")]
    return b"".join(p.read_bytes() for p in parts if p.exists()).lower()


def export(run_cli: RunCli, address: str) -> dict[str, Any]:
    result = run_cli("export", address)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert isinstance(data, dict)
    return data


def outbox_recipients(project: Path, issue: str) -> list[str]:
    found = []
    for path in (project / "outbox/new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if f".{issue}@" in str(message["Message-ID"]):
            found.append(message["To"].addresses[0].addr_spec)
    return sorted(found)


@pytest.fixture
def sent(project: Path, sample_sent: Path) -> Path:
    """The sample issue sent to its five readers (Maildir outbox): a copy of the module's."""
    copy_project(sample_sent, project)
    assert JEAN.encode() in sqlite_bytes(project)
    return project


def test_forget_erases_them_from_the_file_and_no_send_mails_them_again(
        sent: Path, run_cli: RunCli) -> None:
    result = run_cli("forget", "Jean.Dupont@Example.org", "--yes")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"{JEAN}: erased from the tracking store: 1 delivery row(s) and 2 event(s) anonymised, "
        "0 web subscription(s) deleted; kept: a hashed suppression, so it is never mailed again",
        f"lists/subscribers.csv:3: still has {JEAN}: delete this row (meanwhile the "
        "suppression keeps it from being mailed)"]
    raw = sqlite_bytes(sent)
    for trace in (JEAN, "jean dupont", "association accueil"):
        assert trace.encode() not in raw, trace
    assert b"maria.georgiou@example.org" in raw

    data = export(run_cli, JEAN)
    assert data["suppressed"] is not None and data["suppressed"]["hashed"] is True
    assert (data["subscriptions"], data["deliveries"], data["events"]) == ([], [], [])
    assert [(r["file"], r["line"]) for r in data["list_rows"]] == [("lists/subscribers.csv", 3)]

    report = json.loads(run_cli("report", SAMPLE_ISSUE, "--format", "json").out)
    assert report["counts"]["sent"] == 5  # history keeps its numbers, without the name

    shutil.copytree(sent / SAMPLE_ISSUE, sent / NEXT_ISSUE)  # Jean is still in the list file
    again = run_cli("send", NEXT_ISSUE, "--yes")
    assert again.code == 0, again.err
    assert "sent 4, failed 0, pending 0, unknown 0, suppressed 1" in again.out
    recipients = outbox_recipients(sent, "2021-11-next")
    assert len(recipients) == 4 and JEAN not in recipients


def test_forget_without_a_terminal_needs_yes(sent: Path, run_cli: RunCli) -> None:
    result = run_cli("forget", JEAN)
    assert result.code == 2
    assert result.err.strip().splitlines()[-1] == (
        "forget: refusing to erase without --yes when not on a terminal (add --yes: erasure "
        "cannot be undone)")
    assert len(export(run_cli, JEAN)["deliveries"]) == 1


@pytest.mark.parametrize("command", ["forget", "export"])
def test_an_invalid_address_is_one_line_and_exit_2(project: Path, run_cli: RunCli,
                                                    command: str) -> None:
    yes = ["--yes"] if command == "forget" else []
    result = run_cli(command, "jean.dupont.example.org", *yes)
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"{command}: 'jean.dupont.example.org' is not a valid e-mail address")
    assert not database(project).exists()


def test_forget_asks_on_a_terminal(sent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(sent)
    monkeypatch.setattr("mirage_mailer.commands.subscribers.on_terminal", lambda: True)
    runner = CliRunner()
    declined = runner.invoke(cli, ["forget", JEAN], input="n\n")
    assert declined.exception is None, declined.output
    assert "nothing erased" in declined.output
    with Store(database(sent)) as store:
        assert not store.is_suppressed(JEAN)
    accepted = runner.invoke(cli, ["forget", JEAN], input="y\n")
    assert accepted.exception is None, accepted.output
    assert "erased from the tracking store: 1 delivery row(s)" in accepted.output
    with Store(database(sent)) as store:
        assert store.is_suppressed(JEAN)
        assert store.export(JEAN)["deliveries"] == []


def test_export_shows_store_data_and_every_list_row_with_the_address(
        sent: Path, run_cli: RunCli) -> None:
    (sent / "lists/partners.yaml").write_text(
        "subscribers:\n"
        "  - email: office@accueil.example.org\n"
        "    name: Accueil office\n"
        f"    contact_person: {JEAN.upper()}\n", encoding="utf-8")
    with Store(database(sent)) as store:
        store.add_pending_subscriber("newsletter", JEAN, name="Jean", lang="fr", subject="s",
                                     consent_text="I agree.", consent_version="2024-1",
                                     source="web form")
        store.confirm_subscriber("newsletter", "s")
    assert run_cli("unsubscribe", JEAN).code == 0

    data = export(run_cli, "Jean.Dupont@example.org")

    assert data["email"] == JEAN
    assert data["suppressed"]["source"] == "cli" and data["suppressed"]["hashed"] is False
    (subscription,) = data["subscriptions"]
    assert (subscription["status"], subscription["consent_text"],
            subscription["consent_version"], subscription["source"]) == (
        "confirmed", "I agree.", "2024-1", "web form")
    assert subscription["requested_at"] and subscription["confirmed_at"]
    (delivery,) = data["deliveries"]
    assert delivery["issue"] == "2021-10-partners-meeting" and delivery["status"] == "sent"
    assert delivery["fields"] == {"organisation": "Association Accueil"}
    assert delivery["message_id"].endswith("@mirageproject.eu>")
    assert [e["kind"] for e in data["events"]] == [
        "queued", "sent", "subscription-requested", "subscribed", "unsubscribed"]
    assert data["list_rows"] == [
        {"file": "lists/partners.yaml", "line": 2, "list": "partners",
         "values": {"email": "office@accueil.example.org", "name": "Accueil office",
                    "contact_person": JEAN.upper()}},
        {"file": "lists/subscribers.csv", "line": 3, "list": "subscribers",
         "values": {"email": JEAN, "name": "Jean Dupont", "lang": "fr",
                    "organisation": "Association Accueil"}}]


def test_export_before_any_send_creates_no_database(project: Path, run_cli: RunCli) -> None:
    data = export(run_cli, "nobody@example.org")
    assert data == {"email": "nobody@example.org", "suppressed": None, "subscriptions": [],
                    "deliveries": [], "events": [], "list_rows": []}
    assert not database(project).exists()
