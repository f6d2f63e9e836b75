"""``run-due`` and what changed since an issue went out: a list row recorded ``invalid`` and
corrected since is sent on the next run (the lists' size and time at the last plan say a list
changed, without reading it), newcomers to a finished issue's lists are not (they get the
next issue), and a renamed or copied folder of an issue already sent is refused, not mailed
to everyone again. CLI subprocesses, the Maildir outbox and a real SQLite store."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.store import IssuePlan, NewRecipient, Store
from mirage_mailer.util.addresses import looks_corrected
from mirage_mailer.util.database import Database

LIST = "lists/subscribers.csv"
LATER = "2026-12-01T09:10:00+00:00"


def statuses(project: Path, issue: str = "2021-10-partners-meeting") -> dict[str, str]:
    """Each row's status, read from the store in this process (a report run per look made
    these tests twice as slow)."""
    with Store(project / ".mirage/tracking.sqlite") as store:
        return {r["email"]: r["status"] for r in store.recipients(issue)}


def outbox(project: Path) -> list[str]:
    """Who got a message, one entry per message (the To header's address)."""
    folder = project / "outbox/new"
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("To: "):
                found.append(line.removeprefix("To: ").rsplit("<", 1)[-1].rstrip(">"))
                break
    return found


@pytest.fixture
def due(project: Path) -> Path:
    """Due an hour before each test's first run-due: a project that has never sent from
    here sends only an issue due within the last 24 hours (test_project_moved.py)."""
    edit(project / SAMPLE_ISSUE / "issue.yaml", "# send_at: 2021-10-29T09:00:00+02:00",
         "send_at: 2026-12-01T09:00:00+01:00")
    return project


def write_list(project: Path, *rows: str) -> None:
    (project / LIST).write_text("email,name,lang\n" + "".join(f"{r}\n" for r in rows),
                                encoding="utf-8")


def run_due(run_cli: RunCli, now: str) -> tuple[int, str, str]:
    result = run_cli("run-due", "--now", now)
    return result.code, result.out, result.err


def test_a_language_code_corrected_after_run_due_is_sent_on_the_next_run(
        due: Path, run_cli: RunCli) -> None:
    write_list(due, "a@example.org,A,en", "b@example.org,B,gr")
    code, _out, err = run_due(run_cli, "2026-12-01T09:00:00+00:00")
    assert code == 0 and "lang 'gr' is not a known language code" in err
    assert statuses(due) == {"a@example.org": "sent", "b@example.org": "invalid"}
    edit(due / LIST, ",gr\n", ",el\n")  # the officer fixes the row
    code, out, _err = run_due(run_cli, LATER)
    assert code == 0, out
    assert statuses(due) == {"a@example.org": "sent", "b@example.org": "sent"}
    assert sorted(outbox(due)) == ["a@example.org", "b@example.org"]
    code, out, _err = run_due(run_cli, "2026-12-01T09:20:00+00:00")  # nothing changed
    assert (code, out.strip()) == (0, "run-due: nothing due at 2026-12-01T09:20:00+00:00")


def test_a_row_invalid_through_several_issues_gets_the_latest_one_only(
        due: Path, run_cli: RunCli) -> None:
    """A reader whose row was invalid through two issues of the list gets the later one
    once corrected, not both: an older issue is closed once a later one went out."""
    later = due / "issues/2021-11-news"
    shutil.copytree(due / SAMPLE_ISSUE, later)
    edit(later / "issue.yaml", "number: 4", "number: 5")
    edit(later / "issue.yaml", "send_at: 2026-12-01T09:00:00+01:00",
         "send_at: 2026-12-01T09:30:00+01:00")
    write_list(due, "a@example.org,A,en", "b@example.org,B,gr")
    assert run_due(run_cli, "2026-12-01T09:00:00+00:00")[0] == 0
    assert outbox(due) == ["a@example.org", "a@example.org"]
    edit(due / LIST, ",gr\n", ",el\n")
    code, out, _err = run_due(run_cli, LATER)
    assert code == 0, out
    assert out.startswith("2021-11-news: sent 2,"), out
    assert sorted(outbox(due)) == ["a@example.org", "a@example.org", "b@example.org"]
    assert statuses(due)["b@example.org"] == "invalid"  # the older issue stays closed


def test_an_address_corrected_in_place_is_sent_and_a_newcomer_is_not(
        due: Path, run_cli: RunCli) -> None:
    """A finished issue is sent to the rows corrected since, never to newcomers: an
    issue sent months ago is not mailed by cron to everyone who joins the list."""
    write_list(due, "a@example.org,A,en", "b@exa mple.org,B,en")
    assert run_due(run_cli, "2026-12-01T09:00:00+00:00")[0] == 0
    write_list(due, "a@example.org,A,en", "b@example.org,B,en", "new@example.org,N,en")
    code, out, _err = run_due(run_cli, LATER)
    assert code == 0, out
    assert "withdrawn 1" in out and "1 new in the list since the issue went out" in out
    assert sorted(outbox(due)) == ["a@example.org", "b@example.org"]
    assert statuses(due) == {"a@example.org": "sent", "b@exa mple.org": "withdrawn",
                                 "b@example.org": "sent"}
    # the person can still send the finished issue to the newcomer, on purpose
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.err
    assert sorted(outbox(due)) == ["a@example.org", "b@example.org", "new@example.org"]


def test_a_newcomer_on_the_line_of_a_deleted_invalid_row_is_not_sent_the_finished_issue(
        due: Path, run_cli: RunCli) -> None:
    """Outside audit 13f, F5: the officer deletes a broken row nobody can fix and a newcomer
    lands on its line; cron sent them the finished issue as if the row had been corrected.
    A row there now is a correction only if it reads as the recorded address corrected."""
    write_list(due, "a@example.org,A,en", "broken@@example.org,Broken,en",
               "c@example.org,C,en")
    assert run_due(run_cli, "2026-12-01T09:00:00+00:00")[0] == 0
    assert statuses(due)["broken@@example.org"] == "invalid"
    write_list(due, "a@example.org,A,en", "newcomer@example.org,New,en", "c@example.org,C,en")
    code, out, _err = run_due(run_cli, LATER)
    assert code == 0, out
    assert "1 new in the list since the issue went out" in out
    assert "newcomer@example.org" not in outbox(due)
    assert "newcomer@example.org" not in statuses(due)
    assert statuses(due)["broken@@example.org"] == "withdrawn"


@pytest.mark.parametrize(("bad", "new", "corrected"), [
    ("b@exa mple.org", "b@example.org", True),
    ("jean,dupont@@example.org", "jean.dupont@example.org", True),
    ("maria.georgiou@gmial,com", "maria.georgiou@gmail.com", True),
    ("(empty address at lists/subscribers.csv:4)", "anyone@example.org", True),
    ("broken@@example.org", "newcomer@example.org", False),
    ("x@y", "someone.else.entirely@example.org", False),
])
def test_what_reads_as_a_corrected_address(bad: str, new: str, corrected: bool) -> None:
    assert looks_corrected(bad, new) is corrected


def test_a_finished_issue_without_invalid_rows_is_not_reopened_by_a_list_edit(
        due: Path, run_cli: RunCli) -> None:
    assert run_due(run_cli, "2026-12-01T09:00:00+00:00")[0] == 0
    sent = len(outbox(due))
    with (due / LIST).open("a", encoding="utf-8") as handle:
        handle.write("late@example.org,Late,en,\n")
    code, out, _err = run_due(run_cli, LATER)
    assert (code, out.strip()) == (0, f"run-due: nothing due at {LATER}")
    assert len(outbox(due)) == sent


def test_a_renamed_issue_folder_is_refused_not_sent_again(due: Path, run_cli: RunCli) -> None:
    assert run_due(run_cli, "2026-12-01T09:00:00+00:00")[0] == 0
    assert len(outbox(due)) == 5
    (due / SAMPLE_ISSUE).rename(due / f"{SAMPLE_ISSUE}-final")
    code, out, err = run_due(run_cli, LATER)
    lines = [line for line in err.splitlines() if ": warning: " not in line]
    assert code == 2, out
    assert lines == [
        "2021-10-partners-meeting-final: issues/2021-10-partners-meeting-final/issue.yaml:1: "
        "this issue has the subject, number and date of issue '2021-10-partners-meeting', "
        "already sent (a renamed or copied folder?) (give it its own subject, number or date; "
        "or, if it is '2021-10-partners-meeting' renamed, remove its send_at)"]
    assert len(outbox(due)) == 5
    # send warns (a person may mean it) and still asks for --yes without a terminal
    asked = run_cli("send", f"{SAMPLE_ISSUE}-final")
    assert asked.code == 2 and "warning: this issue has the subject, number" in asked.err
    assert "refusing a real send without --yes" in asked.err
    assert len(outbox(due)) == 5


def test_a_copied_issue_folder_goes_out_once_edited(due: Path, run_cli: RunCli) -> None:
    assert run_due(run_cli, "2026-12-01T09:00:00+00:00")[0] == 0
    copy = due / "issues/2021-11-news"
    shutil.copytree(due / SAMPLE_ISSUE, copy)
    code, _out, err = run_due(run_cli, LATER)
    assert code == 2 and "issue '2021-10-partners-meeting', already sent" in err
    assert len(outbox(due)) == 5
    edit(copy / "issue.yaml", "number: 4", "number: 5")
    code, out, err = run_due(run_cli, "2026-12-01T09:20:00+00:00")
    assert code == 0, err
    assert out.startswith("2021-11-news: sent 5,"), out
    assert len(outbox(due)) == 10


def test_the_store_remembers_each_issue_plan_on_both_backends(store_url: Database) -> None:
    """``issue_plans``, ``sent_under`` and ``invalid_lines`` on SQLite and PostgreSQL: the
    upsert keeps one row per issue; a twin needs the same subject, number and date, and
    readers ``sent``; an issue with neither number nor date is never a twin."""
    plan = IssuePlan("2024-05", "News", "4", "2024-05-02", "[]")
    with Store(store_url) as store:
        store.record_issue_plan(replace(plan, lists="old"))
        store.record_issue_plan(plan)
        store.record_issue_plan(IssuePlan("undated", "News", None, None, "[]"))
        assert store.issue_plans() == {"2024-05": plan, "undated": IssuePlan(
            "undated", "News", None, None, "[]")}
        copy = replace(plan, issue="2024-05-final")
        assert store.sent_under(copy) is None  # nothing sent yet
        store.add_recipients("2024-05", [NewRecipient("a@example.org", None, None, "main", {}),
                                         NewRecipient("b@exa mple", None, None, "main", {},
                                                      "invalid", "lists/main.csv:3: bad")])
        (first,) = [r.id for r in store.iter_pending("2024-05")]
        store.mark_sending(first, "<1@x>")
        store.mark_sent(first, 250, "OK")
        assert store.sent_under(copy) == "2024-05"
        assert store.sent_under(replace(copy, number="5")) is None
        assert store.sent_under(replace(copy, issue_date=None)) is None
        assert store.sent_under(IssuePlan("other", "News", None, None, "")) is None
        assert store.invalid_lines("2024-05") == {("main", 3): "b@exa mple"}
