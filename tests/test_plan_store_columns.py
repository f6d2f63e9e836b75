"""An issue's first plan written from list columns stores what the planner stores.

``services/plan_store.py`` writes a first plan that nothing in the store can change from
``Columns`` (the reader's name, fields text and subject id columns, duplicates by
``SeenAddresses.news``), as plain tuples. These tests hold each piece to the way it
replaces (the rows ``lists._iter_csv`` gives, ``SeenAddresses.first``), and whole sends,
real CLI runs with the fast way forced on small lists (``FAST_BYTES`` lowered) and kept
off, to the same output, report and store, table by table.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import SAMPLE_ISSUE
from mirage_mailer.project import list_columns
from mirage_mailer.project.lists import Subscriber, _iter_csv
from mirage_mailer.project.seen import SeenAddresses
from mirage_mailer.services import plan_store
from mirage_mailer.services.loader import open_project
from mirage_mailer.services.planning import PlanOptions
from mirage_mailer.store import Store
from mirage_mailer.util.errors import InputError
from mirage_mailer.util.fieldsjson import fields_json
from test_validate_columns import HEADER, VARIANTS, _hostile_rows


def _subject(email: str) -> str:
    return "s:" + email.lower()


def _stored_by_iter_csv(path: Path) -> list[object]:
    out: list[object] = []
    try:
        for row in _iter_csv(path, "subscribers"):
            if isinstance(row, Subscriber):
                out.append((row.email, row.line, row.lang, row.name, fields_json(row.fields),
                            _subject(row.email)))
    except InputError:
        pass
    return out


def _stored_by_columns(path: Path) -> list[object]:
    out: list[object] = []
    try:
        for columns in list_columns.iter_columns(path, "subscribers", subject=_subject):
            emails = columns.emails.split("\n") if len(columns) else []
            out.extend(zip(emails, columns.lines, map(columns.languages.__getitem__,
                                                      columns.langs),
                           columns.names, columns.texts, columns.subjects, strict=True))
    except InputError:
        pass
    return out


STORED = {
    **VARIANTS,
    "backslash, tab, quote-free odd cells": lambda rows: (
        HEADER + "\n" + "\n".join(
            [*rows, "bs@example.org,Back\\slash,en,a\\b", "t@example.org, Tab\tin ,fr,\t",
             "u@example.org,Zoë,en,Ünïcode é", "n@example.org,,,"]) + "\n").encode(),
    "email not first, Mailchimp names": lambda rows: (
        "First Name,Email Address,Last Name,lang,Extra\n" + "\n".join(
            f"F{n}  ,p{n}@example.org, L{n % 3 or ''},{'en' if n % 4 else ''},x{n}"
            for n in range(300)) + "\n,only@example.org,Last,,\n").encode(),
}


@pytest.mark.parametrize("block", [37, 1 << 20])
@pytest.mark.parametrize("variant", STORED, ids=STORED.keys())
def test_stored_columns_hold_what_the_rows_hold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str, block: int) -> None:
    """Each good row's address, line, language, name, fields text (``fields_json``) and
    subject id, as ``_iter_csv``'s rows give them, wherever a block or a batch ends."""
    monkeypatch.setattr(list_columns, "BLOCK", block)
    monkeypatch.setattr(list_columns, "BATCH", 7)
    path = tmp_path / "subscribers.csv"
    path.write_bytes(STORED[variant](_hostile_rows(len(variant), 600)))
    expected = _stored_by_iter_csv(path)
    got = _stored_by_columns(path)
    assert len(expected) > 50
    if variant in ("not UTF-8", "quote never closed", "long cell"):  # before a fatal error
        assert got[:len(expected)] == expected
    else:
        assert got == expected


# colliding: the 900 keys share 37 hashes (3 made every lookup read a third of them: 19 s)
@pytest.mark.parametrize("hasher", [lambda key: sum(key.encode()) % 37, hash],
                         ids=["colliding", "real"])
def test_news_answers_as_first_does(hasher: object) -> None:
    """``news`` for a batch is ``first`` row by row: across spills, within a batch, with
    keys sharing a hash."""
    rnd = random.Random(5)
    keys = [f"k{rnd.randrange(900)}@example.org" for _ in range(3_000)]
    one = SeenAddresses(window=200, hasher=hasher)  # type: ignore[arg-type]
    batched = SeenAddresses(window=200, hasher=hasher)  # type: ignore[arg-type]
    try:
        for start in range(0, len(keys), 250):
            batch = keys[start:start + 250]
            one.prefetch(batch)
            expected = [one.first(key, start + n + 1) is None for n, key in enumerate(batch)]
            batched.prefetch(batch)
            assert batched.news(batch, start + 1) == expected
    finally:
        one.close()
        batched.close()


# -- whole sends, the fast way forced and kept off ---------------------------------------------

_RUN = ("import atexit, sys\n"
        "from mirage_mailer.services import plan_store, sending\n"
        "from mirage_mailer.store.as_sent import AsSentMixin\n"
        "plan_store.FAST_BYTES = int(sys.argv[1]); real = plan_store.first_plan\n"
        "looked, said = AsSentMixin.has_sent, []\n"
        "def noted(*args, **kwargs):\n"
        "    out = real(*args, **kwargs)\n"
        "    said.append('fast way' if out is not None else 'planner')\n"
        "    return out\n"
        "def has_sent(self, issue):\n"
        "    said.append('looked for a sent reader')\n"
        "    return looked(self, issue)\n"
        "sending.first_plan, AsSentMixin.has_sent = noted, has_sent\n"
        "atexit.register(lambda: open(sys.argv[2], 'w').write('; '.join(said)))\n"
        "from mirage_mailer.cli import main; main(sys.argv[3:])\n")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+(\+00:00|Z)")


def _send(project: Path, fast_bytes: int, *args: str) -> tuple[str, str]:
    """(what the send printed and its exit code, which way the plan took and whether the
    send then looked for a reader already sent the issue)."""
    way = project / "way.txt"
    run = subprocess.run([sys.executable, "-c", _RUN, str(fast_bytes), str(way), "send",
                          SAMPLE_ISSUE, "--yes", *args], cwd=project, capture_output=True,
                         text=True, timeout=60, check=False)
    assert "Traceback" not in run.stderr, run.stderr
    said = re.sub(r"in [\d.]+s, \d+ msg/s", "in Xs", run.stdout + run.stderr)
    said = "\n".join(line for line in said.splitlines() if " done (sent " not in line)
    return f"{said}\nexit {run.returncode}", way.read_text().strip()


def _dump(project: Path) -> list[object]:
    """Every table of the store, in order, times, message ids and the sending run's random
    token (its reservation mark, services/journal.py) blanked."""
    conn = sqlite3.connect(project / ".mirage/tracking.sqlite")
    out: list[object] = []
    try:
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master"
                                      " ORDER BY type, name").fetchall():
            out.append((name, sql))
            if sql is None or not sql.startswith("CREATE TABLE"):
                continue
            columns = [c[1] for c in conn.execute(f'PRAGMA table_info("{name}")')]
            for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid'):
                out.append(tuple("<id>" if column == "message_id" and value else
                                 "<run>" if column == "lease_owner" and value  # a token
                                 else _TIME.sub("<time>", value) if isinstance(value, str)
                                 else value for column, value in zip(columns, row,
                                                                     strict=True)))
    finally:
        conn.close()
    return out


def _report(project: Path) -> object:
    run = subprocess.run([sys.executable, "-m", "mirage_mailer", "report", SAMPLE_ISSUE,
                          "--format", "json"], cwd=project, capture_output=True, text=True,
                         timeout=60, check=True)
    report = json.loads(run.stdout)
    for row in report["recipients"]:
        row.update(message_id=bool(row["message_id"]), last_attempt_at=None)
    return report


def _hostile_project(project: Path, variant: str) -> None:
    rows = _hostile_rows(len(variant), 400)
    lists = project / "lists"
    if variant == "two lists, YAML beside CSV":
        (lists / "subscribers.csv").write_bytes(VARIANTS["plain"](rows[:300]))
        subscribers = [{"email": "P5@EXAMPLE.org", "name": "again"}]
        subscribers += [{"email": f"y{n}@example.org", "lang": "fr", "org": f"O{n}"}
                        for n in range(40)]
        subscribers += [{"email": "bad@@example.org"}, {"email": "y3@example.org"}]
        (lists / "other.yaml").write_text(yaml.safe_dump({"subscribers": subscribers}),
                                          encoding="utf-8")
        issue = project / SAMPLE_ISSUE / "issue.yaml"
        issue.write_text(issue.read_text(encoding="utf-8").replace(
            "list: subscribers", "list: [other, subscribers]"), encoding="utf-8")
    elif variant == "an invalid row, then its duplicate":
        (lists / "subscribers.csv").write_bytes(VARIANTS["plain"]([
            "bad@@example.org,a,en,x", "ok@example.org,b,xx,y", "ok@example.org,c,en,z",
            ",,en,", ",,en,", "OK@example.org,d,en,w", "bad@@example.org,e,en,v", *rows]))
    else:
        (lists / "subscribers.csv").write_bytes(VARIANTS[variant](rows))


SENDS = ["plain", "crlf and BOM", "quoted newline late", "two lists, YAML beside CSV",
         "an invalid row, then its duplicate"]


@pytest.mark.parametrize("limit", [["--limit", "1"], ["--limit", "60"]], ids=["1", "60"])
@pytest.mark.parametrize("variant", SENDS)
def test_the_fast_way_stores_what_the_planner_stores(project: Path, tmp_path: Path,
                                                     variant: str, limit: list[str]) -> None:
    _hostile_project(project, variant)
    fast, planner = tmp_path / "fast", tmp_path / "planner"
    shutil.copytree(project, fast)
    shutil.copytree(project, planner)
    got = _send(fast, 0, *limit)
    (planner / ".mirage").mkdir(exist_ok=True)  # the same secret, so the same subject ids
    shutil.copy2(fast / ".mirage/secret", planner / ".mirage/secret")
    expected = _send(planner, 1 << 40, *limit)
    # the fast way made every row of the issue now: no scan for one already sent
    assert (got[1], expected[1]) == ("fast way", "planner; looked for a sent reader")
    assert got[0] == expected[0]
    assert _report(fast) == _report(planner)
    assert _dump(fast) == _dump(planner)


def test_a_store_that_can_change_a_decision_takes_the_planner(
        in_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Suppressions, confirmed sign-ups, rows of the issue, ``--lang`` and run-due's fixes
    decide rows the fast way does not look at: the planner decides them."""
    monkeypatch.setattr(plan_store, "FAST_BYTES", 0)
    project = open_project(None, Path(SAMPLE_ISSUE))
    with Store(in_project / ".mirage/tracking.sqlite") as store:
        assert plan_store._applies(project, store, PlanOptions(limit=3))
        for options in (PlanOptions(lang="fr"), PlanOptions(fixes_only=True)):
            assert not plan_store._applies(project, store, options)
        monkeypatch.setattr(plan_store, "FAST_BYTES", 1 << 40)
        assert not plan_store._applies(project, store, PlanOptions())
        monkeypatch.setattr(plan_store, "FAST_BYTES", 0)
        store.add_pending_subscriber("subscribers", "web@example.org", name=None, lang=None,
                                     subject="s1", consent_text="yes", consent_version="1",
                                     source="form")
        assert plan_store._applies(project, store, PlanOptions())  # pending: no row yet
        assert store.confirm_subscriber("subscribers", "s1") is not None
        assert not plan_store._applies(project, store, PlanOptions())
    with Store(in_project / ".mirage/tracking.sqlite") as store:
        store._conn.execute("DELETE FROM subscribers")
        assert plan_store._applies(project, store, PlanOptions())
        store.suppress("someone@example.org", source="test")
        assert not plan_store._applies(project, store, PlanOptions())
