"""The issue as sent, kept: the archive and every old view-online link show what readers got,
whatever the files say since (a new grant's disclaimer preset, an article touched up, a
subject edited); a rerun of an issue changed after some readers got it says so; a store from
before the record existed works as it did; ``store migrate`` carries the record to PostgreSQL.

The real CLI in subprocesses, the real SQLite store, the real app through Starlette's client.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from html import unescape
from pathlib import Path

import psycopg
from web_support import (
    BASE,
    ISSUE_ID,
    MARIA,
    client_for,
    message_to,
    part,
    path_of,
    settings_of,
    store_of,
)

from helpers import RunCli, edit, use_relay
from mirage_mailer.compose.disclaimer import AMIF_TEXT
from mirage_mailer.services.reporting import html_report
from mirage_mailer.util.database import PostgresUrl
from support.ports import free_port
from support.postgres import PostgresServer

ISSUE_DIR = f"issues/{ISSUE_ID}"
FIRST = "MIraGE news: final partners' meeting and lessons learned"
EDITED = "MIraGE news (corrected): final partners' meeting"
ADDED = "A sentence added a year later."
NEW_PROGRAMME = "Views and opinions expressed"  # the 2021-2027 text the readers never had


def new_grant_and_edits(root: Path) -> None:
    """A year on: the project moved to the 2021-2027 programme, and the old issue's article
    and subject were touched up."""
    edit(root / "mirage.yaml", "  preset: amif-2014-2020",
         "  preset: eu-2021-2027-direct\n  authority: European Commission")
    article = root / ISSUE_DIR / "partners-meeting.md"
    article.write_text(article.read_text(encoding="utf-8") + f"\n{ADDED}\n", encoding="utf-8")
    edit(root / ISSUE_DIR / "issue.yaml", f'  en: "{FIRST}"', f'  en: "{EDITED}"')


def touch_up(root: Path) -> None:
    edit(root / ISSUE_DIR / "partners-meeting.md", "for the last time", "for the very last time")


def assert_as_sent(html: str) -> None:
    assert AMIF_TEXT in html and "Funded by the European Union" in html
    assert NEW_PROGRAMME not in html and ADDED not in html and "corrected" not in html


def report_subjects(run_cli: RunCli, root: Path) -> set[str]:
    done = run_cli("report", ISSUE_DIR, "--format", "csv", cwd=root)
    assert done.code == 0, done.err
    return {row["subject"] for row in csv.DictReader(io.StringIO(done.out))}


def test_the_archive_and_old_links_show_the_issue_as_sent(sent_project: Path,
                                                          run_cli: RunCli) -> None:
    html = part(message_to(sent_project, MARIA), "html")
    (view,) = re.findall(rf'href="({re.escape(BASE)}/v/[^"]+)"', html)
    assert AMIF_TEXT in html

    new_grant_and_edits(sent_project)

    with client_for(sent_project) as client:
        for path in (f"/issues/{ISSUE_ID}/", f"/issues/{ISSUE_ID}/en/", path_of(view)):
            page = client.get(path)
            assert page.status_code == 200, path
            assert_as_sent(page.text)
            assert FIRST in unescape(page.text)
        french = client.get(f"/issues/{ISSUE_ID}/fr/").text
        assert AMIF_TEXT in french and NEW_PROGRAMME not in french  # no confirmed translation
        index = client.get("/").text
        assert "corrected" not in index  # the index lists the subject as sent
    written = run_cli("archive", "--out", "site", cwd=sent_project)
    assert written.code == 0, written.err
    for lang in ("", "en/"):
        assert_as_sent((sent_project / "site/issues" / ISSUE_ID / lang / "index.html")
                       .read_text(encoding="utf-8"))
    assert "corrected" not in (sent_project / "site/index.html").read_text(encoding="utf-8")
    assert report_subjects(run_cli, sent_project) == {FIRST}


def test_an_issue_changed_mid_send_warns_and_keeps_its_first_form(web_project: Path,
                                                                  run_cli: RunCli) -> None:
    first = run_cli("send", ISSUE_DIR, "--yes", "--limit", "3")
    assert first.code == 0 and "changed since" not in first.err, first.err

    edit(web_project / ISSUE_DIR / "issue.yaml", f'  en: "{FIRST}"', f'  en: "{EDITED}"')
    touch_up(web_project)
    rest = run_cli("send", ISSUE_DIR, "--yes")
    assert rest.code == 0, rest.err  # a typo corrected mid-send is legitimate: never refused
    (line,) = [line for line in rest.err.splitlines() if "changed since" in line]
    assert line == (
        f"warning: {ISSUE_ID}: {ISSUE_DIR}/issue.yaml, {ISSUE_DIR}/partners-meeting.md "
        "changed since the issue was first sent: 3 readers already have the earlier "
        "version, the 2 left get this one (the archive and view-online links keep the first)")
    assert "sent 5" in rest.out

    assert report_subjects(run_cli, web_project) == {FIRST}
    page = html_report(settings_of(web_project), ISSUE_ID)  # report --format html
    assert FIRST in unescape(page) and "corrected" not in page
    with client_for(web_project) as client:
        page = client.get(f"/issues/{ISSUE_ID}/en/").text
    assert "very last time" not in page and "corrected" not in page


def test_a_store_from_before_the_record_works_as_before(web_project: Path,
                                                        run_cli: RunCli) -> None:
    assert run_cli("send", ISSUE_DIR, "--yes", "--limit", "2").code == 0
    database = web_project / ".mirage" / "tracking.sqlite"
    with sqlite3.connect(database) as db:  # as an older mirage-mailer left it
        db.execute("DROP TABLE issues_as_sent")
        db.execute("DELETE FROM schema_migrations WHERE name = 'issues-as-sent'")
    db.close()
    touch_up(web_project)

    rest = run_cli("send", ISSUE_DIR, "--yes")  # the store is upgraded; no first form known
    assert rest.code == 0, rest.err
    assert "changed since" not in rest.err and "sent 5" in rest.out
    with store_of(web_project) as store:
        assert store.as_sent(ISSUE_ID) == {}  # never a later version taken for the first
    with client_for(web_project) as client:
        page = client.get(f"/issues/{ISSUE_ID}/en/")
    assert page.status_code == 200
    assert "very last time" in page.text  # rendered from today's files, as before


def test_store_migrate_carries_the_issue_as_sent(sent_project: Path, run_cli: RunCli,
                                                 postgres_server: PostgresServer) -> None:
    with store_of(sent_project) as store:
        kept = store.as_sent(ISSUE_ID)
    assert sorted(kept) == ["en", "fr"]
    target = postgres_server.new_database()
    done = run_cli("store", "migrate", "--to", target, cwd=sent_project)
    assert done.code == 0, done.err
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM issues_as_sent").fetchone() == (2,)
    edit(sent_project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         f"  database: {target}")
    with store_of(sent_project) as moved:
        assert moved.as_sent(ISSUE_ID) == kept
    assert isinstance(store_of(sent_project).database, PostgresUrl)

    new_grant_and_edits(sent_project)
    with client_for(sent_project) as client:
        assert_as_sent(client.get(f"/issues/{ISSUE_ID}/").text)


def test_a_first_run_that_reached_no_one_leaves_no_earlier_version(
        web_project: Path, run_cli: RunCli) -> None:
    """While no reader has the issue, the record follows the files: a first run that could
    not reach the server (exit 3, every reader still pending) is no edition."""
    config = web_project / "mirage.yaml"
    kept = config.read_text(encoding="utf-8")
    use_relay(web_project, f"smtp://127.0.0.1:{free_port()}", timeout=2)
    down = run_cli("send", ISSUE_DIR, "--yes")
    assert down.code == 3, down.err
    config.write_text(kept, encoding="utf-8")  # the server is back (the Maildir here)
    touch_up(web_project)
    rest = run_cli("send", ISSUE_DIR, "--yes")
    assert rest.code == 0, rest.err
    assert "changed since" not in rest.err and "sent 5" in rest.out
    with client_for(web_project) as client:
        assert "very last time" in client.get(f"/issues/{ISSUE_ID}/en/").text  # what they all got
