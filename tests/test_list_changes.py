"""Issue 9, bugs 3 and 4: lists that change between runs, and one set of figures.

Real CLI subprocesses, a real SQLite store and an aiosmtpd relay (``SmtpSink``). A list is
edited between two sends (a row corrected, a pending row removed, a row added) and the report
is reconciled against what the relay received; ``validate``, ``send --dry-run`` and the send
prompt (on a pseudo-terminal) print the same figures; ``--list`` and ``--csv`` are exact.
"""

from __future__ import annotations

import csv
import io
import os
import pty
import re
import select
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, report, statuses, use_relay
from mirage_mailer.store import Store
from support.smtp_sink import SmtpSink

ISSUE = "2021-10-partners-meeting"
LIST = "lists/subscribers.csv"
HEADER = "email,name,lang,organisation\n"
SAMPLE_ROWS = (
    "maria.georgiou@example.org,Maria Georgiou,en,Center for Social Innovation\n"
    "jean.dupont@example.org,Jean Dupont,fr,Association Accueil\n"
    "amina.haddad@example.org,Amina Haddad,fr,Réseau Solidarité\n"
    "peter.novak@example.org,Peter Novak,en,Employers' Forum\n"
    "sofia.rossi@example.org,,en,\n"
)


def write_rows(project: Path, rows: str) -> None:
    (project / LIST).write_text(HEADER + rows, encoding="utf-8")


def on_terminal(project: Path, *args: str, answer: str = "n",
                timeout: float = 60) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal (stdin and stderr are a tty, so it may ask);
    answer the first [y/N] question with ``answer``; return (exit code, all output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", *args], cwd=project,
                            stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"})
    os.close(slave)
    output = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if not answered and b"[y/N]" in output:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=10)
    finally:
        proc.kill()
        os.close(master)
    text = output.decode("utf-8", "replace").replace("\r\n", "\n")
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


# -- bug 3: rows re-evaluated on each run --------------------------------------------------------


def test_list_edited_between_two_sends_is_reconciled_with_what_the_relay_received(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    write_rows(project, SAMPLE_ROWS + "kostas@example.org,Kostas,gr,\n"
                                      "helena-at-example.org,Helena,el,\n")
    first = run_cli("send", SAMPLE_ISSUE, "--yes", "--limit", "2")
    assert first.code == 0, first.err
    assert first.out.startswith(f"{ISSUE}: sent 2, failed 0, pending 3, unknown 0, "
                                "suppressed 0, invalid 2; this run: sent 2, failed 0 in ")
    assert sorted(sink.recipients()) == ["jean.dupont@example.org",
                                         "maria.georgiou@example.org"]
    assert statuses(run_cli)["kostas@example.org"] == "invalid"

    # the officer fixes both bad rows, removes Amina (still pending) and adds a new reader
    write_rows(project, SAMPLE_ROWS.replace("amina.haddad@example.org,Amina Haddad,fr,"
                                            "Réseau Solidarité\n", "")
               + "kostas@example.org,Kostas,el,\n"
                 "helena@example.org,Helena,el,\n"
                 "new.reader@example.org,New Reader,fr,\n")
    check = run_cli("validate", SAMPLE_ISSUE)
    assert check.code == 0, check.err
    assert "; 5 recipient(s) (en: 4, fr: 1), 2 already sent" in check.out
    second = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert second.code == 0, second.err
    assert second.out.startswith(f"{ISSUE}: sent 7, failed 0, pending 0, unknown 0, "
                                 "suppressed 0, invalid 0, withdrawn 2; this run: sent 5, ")

    received = Counter(sink.recipients())
    everyone = {"maria.georgiou@example.org", "jean.dupont@example.org",
                "peter.novak@example.org", "sofia.rossi@example.org", "kostas@example.org",
                "helena@example.org", "new.reader@example.org"}
    assert received == Counter(everyone)  # each person exactly once, Amina never
    data = report(run_cli)
    assert data["counts"] == {"sent": 7, "failed": 0, "pending": 0, "suppressed": 0,
                              "invalid": 0, "unknown": 0, "withdrawn": 2}
    state = statuses(run_cli)
    assert {a for a, s in state.items() if s == "sent"} == set(received)
    assert state["amina.haddad@example.org"] == "withdrawn"
    assert state["helena-at-example.org"] == "withdrawn"  # the bad address left the list

    # Amina comes back: pending again, and sent once on the next run
    with (project / LIST).open("a", encoding="utf-8") as handle:
        handle.write("amina.haddad@example.org,Amina Haddad,fr,\n")
    third = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert third.code == 0, third.err
    assert "this run: sent 1, failed 0" in third.out
    assert Counter(sink.recipients()) == Counter(everyone | {"amina.haddad@example.org"})
    assert report(run_cli)["counts"] == {"sent": 8, "failed": 0, "pending": 0, "suppressed": 0,
                                         "invalid": 0, "unknown": 0, "withdrawn": 1}
    with sqlite3.connect(project / ".mirage/tracking.sqlite") as conn:
        kinds = conn.execute("SELECT e.kind, e.detail FROM events e JOIN recipients r ON"
                             " r.id = e.recipient_id WHERE r.email_key = ? ORDER BY e.id",
                             ("amina.haddad@example.org",)).fetchall()
    assert [k for k, _ in kinds] == ["queued", "withdrawn", "requeued", "sent"]


def test_a_sent_failed_or_unknown_row_is_never_changed_by_a_list_edit(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    write_rows(project, "maria.georgiou@example.org,Maria,gr,\n")  # now invalid; others gone
    again = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert again.code == 0, again.err
    assert again.out.strip().endswith("; nothing to send")
    assert set(statuses(run_cli).values()) == {"sent"}
    assert len(sink.received) == 5


# -- bug 4: one plan, the same figures everywhere ------------------------------------------------


def messy_list(project: Path, run_cli: RunCli) -> None:
    """Invalid rows, a duplicate, a suppressed address and a confirmed web sign-up."""
    write_rows(project, SAMPLE_ROWS + "not-an-address,Broken,en,\n"
                                      "MARIA.georgiou@example.org,Dup,en,\n"
                                      "kostas@example.org,Kostas,gr,\n")
    assert run_cli("unsubscribe", "peter.novak@example.org").code == 0
    with Store(project / ".mirage/tracking.sqlite") as store:
        store.add_pending_subscriber("subscribers", "web.reader@example.org", name="Web",
                                     lang="fr", subject="s-web", consent_text="yes",
                                     consent_version="1", source="test")
        assert store.confirm_subscriber("subscribers", "s-web") is not None


def figures(project: Path, run_cli: RunCli) -> tuple[int, int, int, int, int, int]:
    """(validate, dry-run, prompt) x (to send now, already have it)."""
    check = run_cli("validate", SAMPLE_ISSUE)
    found = re.search(r"; (\d+) recipient\(s\) \([^)]*\)(?:, (\d+) already sent)?$",
                      check.out.strip())
    assert found, check.out
    dry = run_cli("send", SAMPLE_ISSUE, "--dry-run")
    assert dry.code == 0, dry.err
    would = re.search(r"would send (\d+) .*already sent (\d+),", dry.out)
    assert would, dry.out
    code, out = on_terminal(project, "send", SAMPLE_ISSUE)
    assert code == 0, out
    asked = re.search(rf"Send {ISSUE} to (\d+) recipient\(s\) now \((\d+) already have it\) "
                      r"via [^ ]+\? \[y/N\]", out)
    assert asked, out
    assert "nothing sent" in out
    return (int(found.group(1)), int(would.group(1)), int(asked.group(1)),
            int(found.group(2) or 0), int(would.group(2)), int(asked.group(2)))


def test_validate_dry_run_and_the_prompt_give_the_same_figures(
        project: Path, run_cli: RunCli, sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    messy_list(project, run_cli)
    # 5 sample rows - 1 suppressed + 1 web sign-up; invalid rows and the duplicate are skipped
    assert figures(project, run_cli) == (5, 5, 5, 0, 0, 0)
    assert sink.received == []  # answering "n" sends nothing ...
    assert report(run_cli)["recipients"] == []  # ... and records nothing
    assert run_cli("send", SAMPLE_ISSUE, "--yes", "--limit", "3").code == 0
    assert figures(project, run_cli) == (2, 2, 2, 3, 3, 3)  # after a partial send
    assert len(sink.received) == 3


def test_no_question_when_nothing_is_left(project: Path, run_cli: RunCli,
                                          sink: SmtpSink) -> None:
    use_relay(project, sink.url)
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    code, out = on_terminal(project, "send", SAMPLE_ISSUE, answer="y")
    assert code == 0, out
    assert "[y/N]" not in out
    assert out.strip().splitlines()[-1] == (
        f"{ISSUE}: sent 5, failed 0, pending 0, unknown 0, suppressed 0, invalid 0; "
        "nothing to send")
    assert len(sink.received) == 5
    # without a terminal and without --yes there is nothing to confirm either
    quiet = run_cli("send", SAMPLE_ISSUE)
    assert quiet.code == 0, quiet.err
    assert quiet.out.strip().endswith("; nothing to send")


def test_the_question_counts_what_is_sent_now() -> None:
    from mirage_mailer.commands.send import ask
    from mirage_mailer.services.planning import Plan, PlanOptions

    plan = Plan("i", PlanOptions(), to_send=0)
    assert ask(plan, "smtp://relay:25") is None
    plan = Plan("i", PlanOptions(limit=2), to_send=2)
    plan.counts["sent"] = 17
    assert ask(plan, "smtp://relay:25") == (
        "Send i to 2 recipient(s) now (17 already have it, at most --limit 2) via "
        "smtp://relay:25?")


def test_dry_run_list_and_csv_are_exact_and_record_nothing(project: Path,
                                                           run_cli: RunCli) -> None:
    write_rows(project, SAMPLE_ROWS + "not-an-address,Broken,en,\n"
                                      "MARIA.georgiou@example.org,Dup,en,\n"
                                      "kostas@example.org,Kostas,gr,\n")
    assert run_cli("unsubscribe", "peter.novak@example.org").code == 0
    database = project / ".mirage/tracking.sqlite"

    def snapshot() -> list[tuple[object, ...]]:
        with sqlite3.connect(database) as conn:
            return [*conn.execute("SELECT * FROM recipients ORDER BY id"),
                    *conn.execute("SELECT * FROM events ORDER BY id"),
                    *conn.execute("SELECT * FROM schema_migrations ORDER BY version")]

    before = snapshot()
    listed = run_cli("send", SAMPLE_ISSUE, "--dry-run", "--list", "--lang", "fr")
    assert listed.code == 0, listed.err
    bad = ("lists/subscribers.csv:7: 'not-an-address' is not a valid e-mail address: An email "
           "address must have an @-sign. (correct the address or delete the row)")
    gr = ("lists/subscribers.csv:9: lang 'gr' is not a known language code (use an ISO 639-1 "
          "code such as en, fr or pt-BR)")
    assert listed.out.splitlines() == [
        "jean.dupont@example.org\tJean Dupont\tfr\tsubscribers",
        "amina.haddad@example.org\tAmina Haddad\tfr\tsubscribers",
        "# not sent now (6):",
        "maria.georgiou@example.org\tMaria Georgiou\ten\tsubscribers\tother language (--lang fr)",
        "peter.novak@example.org\tPeter Novak\ten\tsubscribers\tsuppressed (unsubscribed)",
        "sofia.rossi@example.org\t\ten\tsubscribers\tother language (--lang fr)",
        "MARIA.georgiou@example.org\tDup\ten\tsubscribers\tduplicate of lists/subscribers.csv:2",
        f"not-an-address\t\t\tsubscribers\tinvalid row: {bad}",
        f"kostas@example.org\t\t\tsubscribers\tinvalid row: {gr}",
        f"{ISSUE}: dry run, nothing sent: would send 2 (fr: 2); already sent 0, suppressed 1, "
        "invalid 2, failed 0, unknown 0; also not sent: 1 duplicate row(s), "
        "2 in another language (--lang)",
    ]
    target = project / "plan.csv"
    written = run_cli("send", SAMPLE_ISSUE, "--dry-run", "--csv", str(target), "--limit", "3")
    assert written.code == 0, written.err
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert rows == [
        ["email", "name", "lang", "list", "decision", "reason"],
        ["maria.georgiou@example.org", "Maria Georgiou", "en", "subscribers", "send", ""],
        ["jean.dupont@example.org", "Jean Dupont", "fr", "subscribers", "send", ""],
        ["amina.haddad@example.org", "Amina Haddad", "fr", "subscribers", "send", ""],
        ["peter.novak@example.org", "Peter Novak", "en", "subscribers", "skip",
         "suppressed (unsubscribed)"],
        ["sofia.rossi@example.org", "", "en", "subscribers", "skip", "over --limit 3"],
        ["MARIA.georgiou@example.org", "Dup", "en", "subscribers", "skip",
         "duplicate of lists/subscribers.csv:2"],
        ["not-an-address", "", "", "subscribers", "skip", f"invalid row: {bad}"],
        ["kostas@example.org", "", "", "subscribers", "skip", f"invalid row: {gr}"],
    ]
    to_stdout = run_cli("send", SAMPLE_ISSUE, "--dry-run", "--csv", "-", "--limit", "3")
    assert list(csv.reader(io.StringIO(to_stdout.out))) == rows  # the summary goes to stderr
    assert to_stdout.err.strip().splitlines()[-1].startswith(f"{ISSUE}: dry run, nothing sent")
    assert snapshot() == before  # dry runs record nothing
    refused = run_cli("send", SAMPLE_ISSUE, "--list", "--yes")
    assert refused.code == 2
    assert "--list and --csv go with --dry-run" in refused.err


def test_dry_run_list_creates_no_store(project: Path, run_cli: RunCli) -> None:
    listed = run_cli("send", SAMPLE_ISSUE, "--dry-run", "--list")
    assert listed.code == 0, listed.err
    assert len(listed.out.splitlines()) == 6  # five readers, then the summary
    assert not (project / ".mirage/tracking.sqlite").exists()
