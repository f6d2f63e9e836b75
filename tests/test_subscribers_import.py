"""``subscribers import`` end to end: Mailchimp and listmonk exports as those tools write them,
hostile files (line breaks in a field, bytes that are not UTF-8, an endless line, a big file),
and a crash in the middle of the write that must leave the list as it was.
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, Run, RunCli

LIST = "lists/subscribers.csv"
# The head of a Mailchimp audience export (Audience > Export audience), as Mailchimp writes it:
# UTF-8 with a BOM, every header quoted, CRLF line ends.
MAILCHIMP_HEAD = ('"Email Address","First Name","Last Name","Address","Phone Number",'
                  '"Language","MEMBER_RATING","OPTIN_TIME","OPTIN_IP","CONFIRM_TIME",'
                  '"CONFIRM_IP","LATITUDE","LONGITUDE","GMTOFF","DSTOFF","TIMEZONE","CC",'
                  '"REGION","LAST_CHANGED","LEID","EUID","NOTES","TAGS"')
# MEMBER_RATING to TAGS: seventeen cells, LAST_CHANGED's date after eight empty ones
TAIL = ',2,"2021-01-01 10:00:00",,"2021-01-01 10:05:00",203.0.113.7' + "," * 8 + \
       '"2021-02-01 10:00:00",123,abc,,' + '"tag"'


def mailchimp(*rows: str) -> bytes:
    return ("\ufeff" + MAILCHIMP_HEAD + "\r\n" + "".join(r + TAIL + "\r\n" for r in rows)
            ).encode("utf-8")


def test_mailchimp_export_with_bom_and_a_bad_row(project: Path, run_cli: RunCli) -> None:
    (project / "mc.csv").write_bytes(mailchimp(
        "marie.curie@example.fr,Marie,Curie,,,fr",
        "not-an-address,Bad,Row,,,",
        "MARIA.GEORGIOU@example.org,Maria,G.,,,en",  # already in the sample list
        "hans@example.de,Hans,Müller,\"Hauptstr. 1\nBerlin\",,de_DE",  # address: not kept
        "marie.curie@example.fr,Marie,Again,,,fr",
        "ana@example.pt,Ana,,,,pt_BR",
    ))
    before = (project / LIST).read_bytes()
    dry = run_cli("subscribers", "import", "mc.csv", "--list", "subscribers", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out == ("lists/subscribers.csv: would add 3 reader(s) from mc.csv (Mailchimp); "
                       "skipped 3; dry run, nothing written\n")
    assert (project / LIST).read_bytes() == before

    result = run_cli("subscribers", "import", "mc.csv", "--list", "subscribers")
    assert result.code == 0, result.err
    skipped = [line for line in result.err.splitlines() if ": skipped: " in line]
    assert skipped == [
        "mc.csv:3: skipped: 'not-an-address' is not a valid e-mail address: An email address "
        "must have an @-sign.",
        "mc.csv:4: skipped: MARIA.GEORGIOU@example.org is already in lists/subscribers.csv",
        "mc.csv:7: skipped: marie.curie@example.fr is a duplicate of line 2",
    ]
    assert "mc.csv: note: columns not imported (not needed to send a newsletter): Address, " \
           "Phone Number, MEMBER_RATING, OPTIN_TIME, OPTIN_IP" in result.err
    assert (project / LIST).read_bytes() == before + (
        "marie.curie@example.fr,Marie Curie,fr,\n"
        "hans@example.de,Hans Müller,de-DE,\n"
        "ana@example.pt,Ana,pt-BR,\n").encode()
    again = run_cli("subscribers", "import", "mc.csv", "--list", "subscribers")
    assert again.code == 0
    assert "added 0 reader(s)" in again.out
    assert (project / LIST).read_bytes().count(b"marie.curie") == 1


def test_a_mailchimp_import_greets_by_the_first_name(project: Path, run_cli: RunCli) -> None:
    """Issue 11: First Name/Last Name feed recipient.name and the greeting. A YAML list keeps
    both names beside the full one, so the message says "Bonjour Marie,"; a CSV list with
    only a 'name' column cannot keep them, and the import says so."""
    (project / "mc.csv").write_bytes(mailchimp("marie.curie@example.fr,Marie,Curie,,,fr",
                                               "jo@example.fr,,,,,fr"))
    (project / "lists/subscribers.yaml").write_text("subscribers: []\n", encoding="utf-8")
    (project / LIST).unlink()
    result = run_cli("subscribers", "import", "mc.csv", "--list", "subscribers")
    assert result.code == 0, result.err
    assert (project / "lists/subscribers.yaml").read_text(encoding="utf-8") == (
        "subscribers:\n"
        "  - email: marie.curie@example.fr\n    name: Marie Curie\n    first_name: Marie\n"
        "    last_name: Curie\n    lang: fr\n"
        "  - email: jo@example.fr\n    lang: fr\n")
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.err
    to_marie = [m for m in (email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                            for p in (project / "outbox/new").iterdir())
                if "marie" in str(m["To"])]
    assert [str(m["To"]) for m in to_marie] == ["Marie Curie <marie.curie@example.fr>"]
    for kind in ("plain", "html"):
        part = to_marie[0].get_body(preferencelist=(kind,))
        assert part is not None and "Bonjour Marie," in part.get_content()

    (project / "lists/other.csv").write_text("email,name,lang\n", encoding="utf-8")
    into_csv = run_cli("subscribers", "import", "mc.csv", "--list", "other")
    assert into_csv.code == 0, into_csv.err
    assert ("mc.csv: note: first names not kept: lists/other.csv has only a 'name' column, "
            "so the greeting says the whole name (add 'First Name' and 'Last Name' columns "
            "to greet by the first name)") in into_csv.err


def test_unsubscribed_cleaned_and_suppressed_readers_stay_out(project: Path,
                                                              run_cli: RunCli) -> None:
    (project / "unsub.csv").write_text(
        "Email Address,First Name,Last Name,UNSUB_TIME,CLEAN_TIME\n"
        "left@example.org,Left,,2021-03-01 10:00:00,\n"
        "bounced@example.org,Bounced,,,2021-03-01 10:00:00\n"
        "here@example.org,Here,,,\n"
        "Blocked@example.org,Blocked,,,\n", encoding="utf-8")
    assert run_cli("unsubscribe", "blocked@example.org").code == 0
    result = run_cli("subscribers", "import", "unsub.csv", "--list", "subscribers")
    assert result.code == 0, result.err
    assert [line for line in result.err.splitlines() if "skipped" in line] == [
        "unsub.csv:2: skipped: unsubscribed in the export (UNSUB_TIME 2021-03-01 10:00:00)",
        "unsub.csv:3: skipped: cleaned in the export: the address bounced (CLEAN_TIME)",
        "unsub.csv:5: skipped: Blocked@example.org unsubscribed here (suppressed): never "
        "added back by an import"]
    assert (project / LIST).read_text(encoding="utf-8").endswith("\nhere@example.org,Here,,\n")


def test_listmonk_export_into_a_yaml_list_with_first_and_last_names(project: Path,
                                                                    run_cli: RunCli) -> None:
    (project / "lm.csv").write_text(
        "uuid,email,name,attributes,status,created_at,updated_at\n"
        'a1,jo@example.org,Jo Bloggs,"{""lang"": ""fr"", ""city"": ""Lyon""}",enabled,'
        "2024-01-01 10:00:00+00,2024-01-01 10:00:00+00\n"
        'a2,spam@example.org,Spammer,"{}",blocklisted,2024-01-01,2024-01-01\n'
        'a3,kim@example.org,Kim,"not json",enabled,2024-01-01,2024-01-01\n', encoding="utf-8")
    (project / "lists/partners.yaml").write_text("# partners\nsubscribers: []\n",
                                                 encoding="utf-8")
    result = run_cli("subscribers", "import", "lm.csv", "--list", "partners")
    assert result.code == 0, result.err
    assert "(listmonk); skipped 1" in result.out
    assert "lm.csv:3: skipped: blocklisted in listmonk" in result.err
    assert (project / "lists/partners.yaml").read_text(encoding="utf-8") == (
        "# partners\nsubscribers:\n"
        "  - email: jo@example.org\n    name: Jo Bloggs\n    lang: fr\n"
        "  - email: kim@example.org\n    name: Kim\n")

    # a list with first and last name columns gets the names split as the export has them
    (project / "lists/people.csv").write_text("email,First Name,Last Name,city\n",
                                              encoding="utf-8")
    (project / "plain.csv").write_text("E-mail;First name;Last name;City;Phone\n"
                                       "eva@example.org;Eva;Nowak;Kraków;+48 1\n",
                                       encoding="utf-8")
    plain = run_cli("subscribers", "import", "plain.csv", "--list", "people")
    assert plain.code == 0, plain.err
    assert "plain.csv: note: columns not imported (not needed to send a newsletter): Phone" \
           in plain.err
    assert (project / "lists/people.csv").read_text(encoding="utf-8") == (
        "email,First Name,Last Name,city\neva@example.org,Eva,Nowak,Kraków\n")


def test_hostile_rows_are_named_and_skipped(project: Path, run_cli: RunCli) -> None:
    (project / "hostile.csv").write_text(
        "email,name,lang\n"
        '"evil@example.org","Eve\r\nBcc: all@example.org",en\n'
        "enc@example.org,=?utf-8?q?a=0D=0Ab?=,en\n"
        "lang@example.org,Lang,klingon\n"
        ",No Address,en\n"
        "ok@example.org,=1+1,en\n", encoding="utf-8", newline="")
    result = run_cli("subscribers", "import", "hostile.csv", "--list", "subscribers")
    assert result.code == 0, result.err
    skipped = [line for line in result.err.splitlines() if ": skipped: " in line]
    assert [line.split(": skipped: ")[0] for line in skipped] == [
        "hostile.csv:2", "hostile.csv:4", "hostile.csv:5", "hostile.csv:6"]
    assert "'name' contains a line break" in skipped[0]
    assert "encoded word" in skipped[1]
    assert "no e-mail address" in skipped[3]
    rows = list(csv.DictReader(io.StringIO((project / LIST).read_text(encoding="utf-8"))))
    assert rows[-1] == {"email": "ok@example.org", "name": "=1+1", "lang": "en",
                        "organisation": ""}  # kept as typed in the list; exports quote it
    exported = run_cli("subscribers", "export", "--list", "subscribers")
    assert "ok@example.org,'=1+1,en" in exported.out


def test_unusable_files_write_nothing(project: Path, run_cli: RunCli) -> None:
    before = (project / LIST).read_bytes()
    cases = {
        "latin1.csv": b"email,name\nok@example.org,Ok\nfr@example.org,Fran\xe7ois\n",
        "quote.csv": b'email,name\nok@example.org,Ok\nx@example.org,"never closed\n',
        "noemail.csv": b"mail,name\nok@example.org,Ok\n",
        "long.csv": b"email,name\nok@example.org,Ok\nx@example.org," + b"A" * 3_000_000 + b"\n",
    }
    expected = {
        "latin1.csv": "latin1.csv:3: not valid UTF-8",
        "quote.csv": "quote.csv:3: CSV error",
        "noemail.csv": "noemail.csv:1: no e-mail column",
        "long.csv": "long.csv:3: line longer than 1,000,000 bytes",
    }
    for name, data in cases.items():
        (project / name).write_bytes(data)
        result = run_cli("subscribers", "import", name, "--list", "subscribers")
        assert result.code == 2, (name, result.out, result.err)
        assert expected[name] in result.err, result.err
        assert (project / LIST).read_bytes() == before, name


def test_a_big_import_streams_and_a_crash_leaves_the_list_whole(project: Path,
                                                               run_cli: RunCli) -> None:
    """200,000 rows: killed (SIGKILL) while writing, the list is the old one, byte for byte;
    run again, every row is added once."""
    rows = 200_000
    with open(project / "big.csv", "w", encoding="utf-8") as out:
        out.write("Email Address,First Name,Last Name\n")
        for n in range(rows):
            out.write(f"reader{n}@example.org,Reader,{n}\n")
    before = (project / LIST).read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "mirage_mailer", "subscribers", "import",
                             "big.csv", "--list", "subscribers"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    temp: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        temp = [p for p in (project / "lists").iterdir()
                if p.name.endswith(".tmp") and p.stat().st_size > len(before) + 1_000]
        if temp:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert temp, "the import finished before it could be killed mid-write"
    assert (project / LIST).read_bytes() == before
    for stale in temp:
        stale.unlink()

    started = time.monotonic()
    result = run_cli("subscribers", "import", "big.csv", "--list", "subscribers", timeout=300)
    assert result.code == 0, result.err
    assert f"added {rows} reader(s)" in result.out
    print(f"imported {rows:,} rows in {time.monotonic() - started:.1f}s")
    text = (project / LIST).read_text(encoding="utf-8")
    assert text.startswith(before.decode("utf-8"))
    assert text.count("\n") == before.count(b"\n") + rows
    assert text.endswith(f"reader{rows - 1}@example.org,Reader {rows - 1},,\n")


def both_runs(run_cli: RunCli, file: str, list_name: str) -> tuple[Run, Run]:
    """The dry run, then the real import: they must decide the same (the write is the only
    difference), so their stderr is compared whole."""
    dry = run_cli("subscribers", "import", file, "--list", list_name, "--dry-run")
    real = run_cli("subscribers", "import", file, "--list", list_name)
    assert dry.code == real.code, (dry, real)
    assert dry.err == real.err
    return dry, real


NO_LAST = ("mc.csv: note: last names not imported: lists/fn.csv has no last-name column, so "
           "the greeting and the To: line say the first name (add a 'Last Name' column to "
           "keep them)")
NO_LANG = ("mc.csv: note: languages not imported: lists/fn.csv has no lang column (add one to "
           "keep them)")


@pytest.mark.parametrize(("header", "row", "notes"), [
    ("email,First Name", "hans@example.de,Hans", [NO_LAST, NO_LANG]),
    ("E-mail;First Name;Language;Organisation", "hans@example.de;Hans;de;", [NO_LAST]),
    ("email,Last Name", "hans@example.de,Meier",
     [NO_LAST.replace("last names", "first names").replace("last-name", "first-name")
      .replace("say the first name", "say the last name").replace("'Last Name'",
                                                                    "'First Name'"), NO_LANG]),
    ("email,name,First Name", "hans@example.de,Hans Meier,Hans", [NO_LANG]),
    ("email,organisation", "hans@example.de,",
     ["mc.csv: note: names not imported: lists/fn.csv has no name column (add a 'name' "
      "column to keep them)", NO_LANG]),
])
def test_a_list_without_a_place_for_every_name_takes_what_it_has(
        project: Path, run_cli: RunCli, header: str, row: str, notes: list[str]) -> None:
    """A list with First Name but no Last Name (or the other way round, or a name column
    beside First Name only, or none) is no reason to refuse an import: each part of the name
    goes where the list has a column for it, and a note says what was left out. The dry run
    said 'would add 1' while the import refused with exit 2."""
    (project / "lists/fn.csv").write_text(f"{header}\n", encoding="utf-8")
    (project / "mc.csv").write_bytes(mailchimp("hans@example.de,Hans,Meier,,,de"))
    dry, real = both_runs(run_cli, "mc.csv", "fn")
    assert real.code == 0, real.err
    assert dry.out.startswith("lists/fn.csv: would add 1 reader(s) from mc.csv (Mailchimp)")
    assert real.out.startswith("lists/fn.csv: added 1 reader(s) from mc.csv (Mailchimp)")
    assert [line for line in real.err.splitlines() if "columns not imported" not in line] \
        == notes
    assert (project / "lists/fn.csv").read_text(encoding="utf-8") == f"{header}\n{row}\n"


def test_a_whole_name_goes_into_the_one_name_column_a_list_has(project: Path,
                                                              run_cli: RunCli) -> None:
    """listmonk gives one name: a list with only First Name gets it whole (a name is not split
    by guessing), as a list with First Name and Last Name does."""
    (project / "lists/fn.csv").write_text("email,First Name\n", encoding="utf-8")
    (project / "lm.csv").write_text(
        "uuid,email,name,attributes,status,created_at,updated_at\n"
        'a1,jo@example.org,Jo Bloggs,"{}",enabled,2024-01-01,2024-01-01\n', encoding="utf-8")
    _, real = both_runs(run_cli, "lm.csv", "fn")
    assert real.code == 0, real.err
    assert (project / "lists/fn.csv").read_text(encoding="utf-8") == (
        "email,First Name\njo@example.org,Jo Bloggs\n")


def test_the_dry_run_refuses_what_the_import_refuses(project: Path, run_cli: RunCli) -> None:
    """A YAML list that cannot be edited in place is refused by the dry run too (it said
    'would add 1', exit 0), with the same line, and nothing is written by either."""
    flow = "subscribers: [{email: old@example.org}]\n"
    (project / "lists/flow.yaml").write_text(flow, encoding="utf-8")
    (project / "new.csv").write_text("email\nnew@example.org\n", encoding="utf-8")
    dry, real = both_runs(run_cli, "new.csv", "flow")
    assert real.code == 2
    assert real.err == ("lists/flow.yaml:1: 'subscribers:' is written on one line ([...]) "
                        "(write one '- email: ...' entry per line below 'subscribers:')\n")
    assert dry.out == real.out == ""
    assert (project / "lists/flow.yaml").read_text(encoding="utf-8") == flow
