"""The ``subscribers`` group end to end: real CLI subprocesses on a scaffolded project, a real
SQLite store for unsubscribes and web sign-ups.

List files keep every byte that an edit is not about (comments, column order, ``;``, CRLF, a
BOM, row order); ``count`` is the figure ``send --dry-run`` plans; ``list`` and ``export``
parse back; a formula typed into a sign-up never reaches a spreadsheet as a formula.
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.store import Store

LIST = "lists/subscribers.csv"
ROWS = ("email,name,lang,organisation\n"
        "maria.georgiou@example.org,Maria Georgiou,en,Center for Social Innovation\n"
        "jean.dupont@example.org,Jean Dupont,fr,Association Accueil\n"
        "amina.haddad@example.org,Amina Haddad,fr,Réseau Solidarité\n"
        "peter.novak@example.org,Peter Novak,en,Employers' Forum\n"
        "sofia.rossi@example.org,,,\n")
EVIL = "=cmd|' /C calc'!A0"


def sign_up(project: Path, email: str, *, confirm: bool, name: str = "Web Reader",
            lang: str = "fr") -> None:
    with Store(project / ".mirage/tracking.sqlite") as store:
        store.add_pending_subscriber("subscribers", email, name=name, lang=lang,
                                     subject=f"s-{email}", consent_text="I agree (v2 text)",
                                     consent_version="v2", source="web form")
        if confirm:
            assert store.confirm_subscriber("subscribers", f"s-{email}") is not None


def messy(project: Path, run_cli: RunCli) -> None:
    """Every status: suppressed, invalid, duplicate, a confirmed and an unconfirmed sign-up."""
    (project / LIST).write_text(ROWS + "not-an-address,Broken,en,\n"
                                       "MARIA.georgiou@example.org,Dup,en,\n"
                                       "kostas@example.org,Kostas,el,\n", encoding="utf-8")
    assert run_cli("unsubscribe", "peter.novak@example.org").code == 0
    sign_up(project, "web.reader@example.org", confirm=True)
    sign_up(project, "waiting@example.org", confirm=False, lang="en")


# -- add and remove keep the file --------------------------------------------------------------

def test_csv_add_and_remove_change_only_their_row(project: Path, run_cli: RunCli) -> None:
    """A spreadsheet's file: BOM, ';', CRLF, its own column order, a quoted value."""
    head = "\ufefflang;Email Address;organisation;name\r\n"
    rows = ["fr;jean@example.org;\"Accueil; Paris\";Jean\r\n",
            "en;ann@example.org;;Ann\r\n",
            "de;hans@example.org;Verein;Hans\r\n"]
    path = project / "lists/people.csv"
    path.write_bytes((head + "".join(rows)).encode("utf-8"))
    path.chmod(0o640)

    added = run_cli("subscribers", "add", "people", "Marie@Example.org", "--name",
                    "Marie Curie", "--lang", "fr", "organisation=Institut; Curie")
    assert added.code == 0, added.err
    assert added.out == "lists/people.csv: added Marie@example.org\n"
    new = "fr;Marie@example.org;\"Institut; Curie\";Marie Curie\r\n"
    assert path.read_bytes() == (head + "".join(rows) + new).encode("utf-8")
    assert path.stat().st_mode & 0o777 == 0o640  # the list keeps its permissions

    removed = run_cli("subscribers", "remove", "people", "ANN@example.org")
    assert removed.code == 0, removed.err
    assert removed.out == "lists/people.csv: removed ann@example.org (line 3)\n"
    assert path.read_bytes() == (head + rows[0] + rows[2] + new).encode("utf-8")
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_yaml_add_and_remove_keep_comments_and_order(project: Path, run_cli: RunCli) -> None:
    text = ("# Partners of the project\n"
            "subscribers:\n"
            "  # coordinators first\n"
            "  - email: anna@example.org   # coordinator\n"
            "    name: Anna Schmidt\n"
            "    lang: de\n"
            "  - email: bob@example.org\n"
            "    name: \"Bob: the builder\"\n"
            "  # the rest\n"
            "  - email: carla@example.org\n"
            "    lang: it\n"
            "# end of list\n")
    path = project / "lists/partners.yaml"
    path.write_text(text, encoding="utf-8")

    added = run_cli("subscribers", "add", "partners", "dora@example.org", "--name",
                    "Dóra O'Neil", "--lang", "no", "org=#1 partner")
    assert added.code == 0, added.err
    entry = ("  - email: dora@example.org\n"
             "    name: Dóra O'Neil\n"
             "    lang: \"no\"\n"  # Norwegian, not YAML's false
             "    org: \"#1 partner\"\n")
    assert path.read_text(encoding="utf-8") == text.replace("# end of list\n",
                                                            entry + "# end of list\n")
    removed = run_cli("subscribers", "remove", "partners", "bob@example.org")
    assert removed.code == 0, removed.err
    assert removed.out == "lists/partners.yaml: removed bob@example.org (line 7)\n"
    expected = text.replace("  - email: bob@example.org\n    name: \"Bob: the builder\"\n", "")
    assert path.read_text(encoding="utf-8") == expected.replace("# end of list\n",
                                                                entry + "# end of list\n")
    listed = json.loads(run_cli("subscribers", "list", "--list", "partners", "--format",
                                "json").out)
    assert [(r["email"], r["name"], r["lang"]) for r in listed] == [
        ("anna@example.org", "Anna Schmidt", "de"), ("carla@example.org", None, "it"),
        ("dora@example.org", "Dóra O'Neil", "no")]
    assert listed[2]["fields"] == {"org": "#1 partner"}

    for address in ("anna@example.org", "carla@example.org", "dora@example.org"):
        assert run_cli("subscribers", "remove", "partners", address).code == 0
    emptied = path.read_text(encoding="utf-8")
    assert emptied == ("# Partners of the project\nsubscribers: []\n  # coordinators first\n"
                       "  # the rest\n# end of list\n")
    assert run_cli("subscribers", "add", "partners", "eve@example.org").code == 0
    assert "subscribers:\n  - email: eve@example.org\n" in path.read_text(encoding="utf-8")


def test_yaml_layouts_a_hand_may_write(project: Path, run_cli: RunCli) -> None:
    """BOM and CRLF, '-   ' indentation, plain-address items, a key after the list, and a
    one-line list that cannot be edited in place (refused, untouched)."""
    path = project / "lists/t.yaml"
    path.write_bytes(b"\xef\xbb\xbfsubscribers:\r\n-   email: a@example.org\r\n    name: A\r\n"
                     b"-   b@example.org\r\nother: 1\r\n")
    assert run_cli("subscribers", "add", "t", "c@example.org", "--name", "C C").code == 0
    assert run_cli("subscribers", "remove", "t", "b@example.org").code == 0
    assert path.read_bytes() == (b"\xef\xbb\xbfsubscribers:\r\n-   email: a@example.org\r\n"
                                 b"    name: A\r\n-   email: c@example.org\r\n"
                                 b"    name: C C\r\nother: 1\r\n")
    plain = project / "lists/plain.yaml"
    plain.write_text("subscribers:\n  - x@example.org\n", encoding="utf-8")
    assert run_cli("subscribers", "add", "plain", "z@example.org").code == 0
    assert run_cli("subscribers", "add", "plain", "w@example.org", "--lang", "fr").code == 0
    assert plain.read_text(encoding="utf-8") == (
        "subscribers:\n  - x@example.org\n  - z@example.org\n"
        "  - email: w@example.org\n    lang: fr\n")
    flow = project / "lists/flow.yaml"
    flow.write_text("subscribers: [a@example.org]\n", encoding="utf-8")
    refused = run_cli("subscribers", "add", "flow", "z@example.org")
    assert refused.code == 2
    assert refused.err.startswith("lists/flow.yaml:1: 'subscribers:' is written on one line")
    assert flow.read_text(encoding="utf-8") == "subscribers: [a@example.org]\n"


def test_parallel_adds_lose_no_row(project: Path) -> None:
    """Eight adds at once (a script's loop gone parallel): each waits its turn, none is lost."""
    procs = [subprocess.Popen([sys.executable, "-m", "mirage_mailer", "subscribers", "add",
                               "subscribers", f"p{n}@example.org", "--name", f"P {n}"],
                              cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for n in range(8)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    rows = list(csv.DictReader(io.StringIO((project / LIST).read_text(encoding="utf-8"))))
    assert len(rows) == 5 + 8
    assert sorted(r["email"] for r in rows[5:]) == sorted(f"p{n}@example.org" for n in range(8))


@pytest.mark.parametrize(("args", "message"), [
    (("bad@@example.org",), "subscribers add: 'bad@@example.org' is not a valid e-mail "
     "address"),
    (("MARIA.Georgiou@example.org",), "lists/subscribers.csv:2: MARIA.Georgiou@example.org "
     "is already in the list (nothing was written)"),
    (("new@example.org", "--name", "Eve\r\nBcc: all@example.org"), "subscribers add: "
     "new@example.org: 'name' contains a line break"),
    (("new@example.org", "--lang", "xx"), "subscribers add: new@example.org: lang 'xx' is "
     "not a known language code"),
    (("new@example.org", "city=Paris"), "lists/subscribers.csv:1: the list has no 'city' "
     "column (add a 'city' column to the header, or leave the value out)"),
    (("new@example.org", "nonsense"), "'nonsense' is not a field: write column=value"),
])
def test_add_refuses_in_one_line_and_writes_nothing(project: Path, run_cli: RunCli,
                                                    args: tuple[str, ...], message: str) -> None:
    before = (project / LIST).read_bytes()
    result = run_cli("subscribers", "add", "subscribers", *args)
    assert result.code == 2, result.err
    assert len(result.err.splitlines()) == 1, result.err
    assert message in result.err
    assert (project / LIST).read_bytes() == before


def test_add_refuses_a_confirmed_web_reader_and_warns_of_a_suppressed_one(
        project: Path, run_cli: RunCli) -> None:
    sign_up(project, "web.reader@example.org", confirm=True)
    before = (project / LIST).read_bytes()
    dup = run_cli("subscribers", "add", "subscribers", "Web.Reader@example.org")
    assert dup.code == 2
    assert "already reads this list (a confirmed web sign-up)" in dup.err
    assert (project / LIST).read_bytes() == before
    assert run_cli("unsubscribe", "gone@example.org").code == 0
    back = run_cli("subscribers", "add", "subscribers", "gone@example.org")
    assert back.code == 0
    assert "warning: gone@example.org is suppressed" in back.err
    assert (project / LIST).read_bytes() == before + b"gone@example.org,,,\n"


def test_remove_names_what_it_cannot_remove(project: Path, run_cli: RunCli) -> None:
    sign_up(project, "web.reader@example.org", confirm=True)
    before = (project / LIST).read_bytes()
    web = run_cli("subscribers", "remove", "subscribers", "web.reader@example.org")
    assert web.code == 2
    assert web.err == ("lists/subscribers.csv: web.reader@example.org is not in the file: "
                       "they signed up on the web ('mirage-mailer unsubscribe "
                       "web.reader@example.org' stops all mail to them)\n")
    absent = run_cli("subscribers", "remove", "subscribers", "nobody@example.org")
    assert absent.code == 2
    assert "nobody@example.org is not in the list" in absent.err
    unknown = run_cli("subscribers", "remove", "nolist", "a@example.org")
    assert unknown.code == 2
    assert "no list 'nolist' (the lists are: subscribers)" in unknown.err
    assert (project / LIST).read_bytes() == before


def test_yaml_list_problems_and_new_keys(project: Path, run_cli: RunCli) -> None:
    """list, add and remove name the same line for a YAML list without 'subscribers:'; a
    YAML list has no header, so add takes a key no row has yet, with a warning that names it
    (a typo would otherwise go unseen), and --help says so."""
    path = project / "lists/partners.yaml"
    path.write_text("# partners\nreaders:\n  - email: a@example.org\n", encoding="utf-8")
    said = {what: run_cli("subscribers", *args).err for what, args in (
        ("list", ("list", "--list", "partners")),
        ("add", ("add", "partners", "x@example.org")),
        ("remove", ("remove", "partners", "a@example.org")))}
    assert set(said.values()) == {
        "lists/partners.yaml:2: list must have 'subscribers:' with a sequence of entries "
        "(write '- email: someone@example.org' lines)\n"}, said

    path.write_text("subscribers:\n  - email: a@example.org\n    org: Red Cross\n",
                    encoding="utf-8")
    known = run_cli("subscribers", "add", "partners", "b@example.org", "org=Caritas")
    assert (known.code, known.err) == (0, "")
    new = run_cli("subscribers", "add", "partners", "c@example.org", "organisation=Foo",
                  "org=Bar")
    assert new.code == 0, new.err
    assert new.err == ("lists/partners.yaml: warning: no other row has 'organisation': "
                       "check the spelling (the row is added with it)\n")
    assert path.read_text(encoding="utf-8").endswith(
        "  - email: c@example.org\n    organisation: Foo\n    org: Bar\n")
    helped = run_cli("subscribers", "add", "--help").out
    assert "A YAML list has no header and takes any field" in " ".join(helped.split())


def test_list_table_says_a_status_once(project: Path, run_cli: RunCli) -> None:
    messy(project, run_cli)
    table = run_cli("subscribers", "list", "--status", "suppressed", "--status", "duplicate")
    assert table.code == 0, table.err
    assert "suppressed (unsubscribed)" in table.out
    assert "duplicate of lists/subscribers.csv:2" in table.out
    assert "suppressed: suppressed" not in table.out
    assert "duplicate: duplicate" not in table.out


# -- list, count and export --------------------------------------------------------------------

def test_list_shows_every_status_and_parses_back(project: Path, run_cli: RunCli) -> None:
    messy(project, run_cli)
    as_json = run_cli("subscribers", "list", "--format", "json")
    assert as_json.code == 0, as_json.err
    rows = json.loads(as_json.out)
    status = {(r["email"], r["where"]): r["status"] for r in rows}
    assert status == {
        ("maria.georgiou@example.org", "lists/subscribers.csv:2"): "active",
        ("jean.dupont@example.org", "lists/subscribers.csv:3"): "active",
        ("amina.haddad@example.org", "lists/subscribers.csv:4"): "active",
        ("peter.novak@example.org", "lists/subscribers.csv:5"): "suppressed",
        ("sofia.rossi@example.org", "lists/subscribers.csv:6"): "active",
        ("not-an-address", "lists/subscribers.csv:7"): "invalid",
        ("MARIA.georgiou@example.org", "lists/subscribers.csv:8"): "duplicate",
        ("kostas@example.org", "lists/subscribers.csv:9"): "active",
        ("web.reader@example.org", "web sign-up"): "active",
        ("waiting@example.org", "web sign-up"): "unconfirmed",
    }
    web = next(r for r in rows if r["email"] == "web.reader@example.org")
    assert web["consent"]["text"] == "I agree (v2 text)" and web["source"] == "web"

    as_csv = run_cli("subscribers", "list", "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert [(r["email"], r["status"]) for r in parsed] == [(r["email"], r["status"])
                                                           for r in rows]
    assert parsed[0].keys() == {"list", "email", "name", "lang", "status", "source", "where",
                                "detail"}

    def emails(*args: str) -> list[str]:
        found = run_cli("subscribers", "list", "--format", "json", *args)
        assert found.code == 0, found.err
        return [r["email"] for r in json.loads(found.out)]

    assert emails("--status", "suppressed", "--status", "unconfirmed") == [
        "peter.novak@example.org", "waiting@example.org"]
    assert emails("--lang", "fr", "--status", "active") == [
        "jean.dupont@example.org", "amina.haddad@example.org", "web.reader@example.org"]
    assert emails("--search", "SOLIDARIT") == ["amina.haddad@example.org"]  # a column too
    assert emails("--lang", "en", "--search", "sofia") == ["sofia.rossi@example.org"]
    table = run_cli("subscribers", "list", "--status", "invalid")
    assert "not-an-address" in table.out and table.out.endswith("1 reader(s)\n")


def _dry_run(run_cli: RunCli, *args: str) -> tuple[int, dict[str, int]]:
    dry = run_cli("send", SAMPLE_ISSUE, "--dry-run", *args)
    assert dry.code == 0, dry.err
    found = re.search(r"would send (\d+) \(([^)]*)\)", dry.out)
    assert found, dry.out
    langs = dict(part.split(": ") for part in found.group(2).split(", ") if ": " in part)
    return int(found.group(1)), {k: int(v) for k, v in langs.items()}


def _count(run_cli: RunCli, *args: str) -> dict[str, object]:
    result = run_cli("subscribers", "count", "--format", "json", *args)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert isinstance(data, dict)
    return data


def test_count_is_what_send_dry_run_plans(project: Path, run_cli: RunCli) -> None:
    """Suppressed, invalid and duplicate rows out, confirmed web sign-ups in, unconfirmed out;
    each reader counts in the language they would be sent: the sample issue (the latest, that
    a new issue continues) has English and French, so kostas's 'el' and a 'de' reader count
    as English, as send plans them."""
    messy(project, run_cli)
    with (project / LIST).open("a", encoding="utf-8") as rows:
        rows.write("hans@example.de,Hans,de,\n")
    total, langs = _dry_run(run_cli)
    assert (total, langs) == (7, {"en": 4, "fr": 3})  # hand-counted: see messy()
    assert _count(run_cli)["lists"] == [{"list": "subscribers", "total": 7, "languages": langs}]
    (project / LIST).write_text((project / LIST).read_text(encoding="utf-8").replace(
        "hans@example.de,Hans,de,\n", ""), encoding="utf-8")
    total, langs = _dry_run(run_cli)
    assert (total, langs) == (6, {"en": 3, "fr": 3})  # hand-counted: see messy()
    counted = _count(run_cli, "--list", "subscribers")
    assert counted["lists"] == [{"list": "subscribers", "total": total, "languages": langs}]
    for_issue = _count(run_cli, "--issue", "2021-10-partners-meeting")
    assert for_issue["all"] == {"total": total, "languages": langs}

    # after a partial send, --issue still agrees (those who have it are left out) ...
    assert run_cli("send", SAMPLE_ISSUE, "--limit", "2", "--yes").code == 0
    total, langs = _dry_run(run_cli)
    assert total == 4
    assert _count(run_cli, "--issue", SAMPLE_ISSUE)["all"] == {"total": total,
                                                               "languages": langs}
    # ... and the list's own figure is still the next new issue's: everyone
    assert _count(run_cli)["lists"] == counted["lists"]

    table = run_cli("subscribers", "count")
    assert re.search(r"subscribers\s+total\s+6", table.out), table.out
    # a new issue started but not written yet (it does not load) has the same languages
    assert run_cli("new-issue").code == 0
    assert _count(run_cli)["lists"] == counted["lists"]


def test_count_several_lists_counts_a_shared_reader_once(project: Path, run_cli: RunCli) -> None:
    (project / "lists/partners.yaml").write_text(
        "subscribers:\n  - email: Jean.Dupont@example.org\n    lang: fr\n"
        "  - email: ola@example.org\n    lang: nb\n", encoding="utf-8")
    data = _count(run_cli)
    # 'nb' is no language of the next issue: that reader is sent (and counted) in English
    assert data["lists"] == [
        {"list": "partners", "total": 2, "languages": {"en": 1, "fr": 1}},
        {"list": "subscribers", "total": 5, "languages": {"en": 3, "fr": 2}}]
    assert data["all"] == {"total": 6, "languages": {"en": 4, "fr": 2}}
    as_csv = run_cli("subscribers", "count", "--format", "csv", "--list", "partners")
    assert as_csv.out == "list,lang,readers\npartners,en,1\npartners,fr,1\npartners,total,2\n"


def test_export_has_consent_and_never_a_formula(project: Path, run_cli: RunCli) -> None:
    messy(project, run_cli)
    assert run_cli("subscribers", "add", "subscribers", "evil@example.org", "--name", EVIL,
                   "organisation=@SUM(1+1)").code == 0
    result = run_cli("subscribers", "export", "--list", "subscribers")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert list(rows[0])[-1] == "organisation"
    web = next(r for r in rows if r["email"] == "web.reader@example.org")
    assert (web["status"], web["consent_text"], web["consent_version"],
            web["consent_source"]) == ("active", "I agree (v2 text)", "v2", "web form")
    assert web["requested_at"] and web["confirmed_at"]
    waiting = next(r for r in rows if r["email"] == "waiting@example.org")
    assert waiting["status"] == "unconfirmed" and waiting["confirmed_at"] == ""
    evil = next(r for r in rows if r["email"] == "evil@example.org")
    assert evil["name"] == "'" + EVIL and evil["organisation"] == "'@SUM(1+1)"
    assert not [cell for r in rows for cell in r.values() if cell[:1] in ("=", "+", "-", "@")]
    only = run_cli("subscribers", "export", "--list", "subscribers", "--status", "suppressed")
    assert [r["email"] for r in csv.DictReader(io.StringIO(only.out))] == [
        "peter.novak@example.org"]

    # the export imports back as it was: the protecting quote comes off again
    (project / "lists/copy.csv").write_text("email,name,organisation\n", encoding="utf-8")
    (project / "export.csv").write_text(result.out, encoding="utf-8")
    back = run_cli("subscribers", "import", "export.csv", "--list", "copy")
    assert back.code == 0, back.err
    copied = list(csv.DictReader(io.StringIO((project / "lists/copy.csv").read_text(
        encoding="utf-8"))))
    assert {"email": "evil@example.org", "name": EVIL,
            "organisation": "@SUM(1+1)"} in copied


def test_first_and_last_name_columns_feed_the_name_and_the_greeting(project: Path,
                                                                    run_cli: RunCli) -> None:
    """A list as Mailchimp exports it (no ``name`` column): ``To:`` and ``recipient.name`` are
    the first and last name joined, the greeting says the first name alone ("Bonjour Marie,"),
    in the text and the HTML part; a list with only a ``name`` column greets by that name."""
    (project / LIST).write_bytes(
        "\ufeffEmail Address,First Name,Last Name,Language\r\n"
        "marie@example.fr,Marie,Curie,fr\r\n"
        "pierre@example.fr,Pierre,,fr\r\n"
        "curie@example.fr,,Curie,fr\r\n"
        "anon@example.fr,,,fr\r\n".encode())
    (project / "lists/partners.csv").write_text("email,name,lang\n"
                                                "jean@example.fr,Jean Dupont,fr\n",
                                                encoding="utf-8")
    edit(project / SAMPLE_ISSUE / "issue.yaml", "list: subscribers",
         "list: [subscribers, partners]")
    listed = json.loads(run_cli("subscribers", "list", "--format", "json").out)
    assert [(r["email"], r["name"]) for r in listed] == [
        ("jean@example.fr", "Jean Dupont"),
        ("marie@example.fr", "Marie Curie"), ("pierre@example.fr", "Pierre"),
        ("curie@example.fr", "Curie"), ("anon@example.fr", None)]
    assert listed[1]["fields"] == {"first_name": "Marie", "last_name": "Curie"}
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.err
    greetings = {}
    for path in (project / "outbox/new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        parts = [message.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
        found = set()
        for part in parts:
            assert part is not None
            body = part.get_content()
            found.add(re.search(r"Bonjour[^<\n]*", body).group(0))  # type: ignore[union-attr]
        greetings[str(message["To"])] = found
    assert greetings == {"Marie Curie <marie@example.fr>": {"Bonjour Marie,"},
                         "Pierre <pierre@example.fr>": {"Bonjour Pierre,"},
                         "Curie <curie@example.fr>": {"Bonjour Curie,"},
                         "Jean Dupont <jean@example.fr>": {"Bonjour Jean Dupont,"},
                         "anon@example.fr": {"Bonjour,"}}
