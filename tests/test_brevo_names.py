"""Brevo (Sendinblue) contact exports split the name as ``EMAIL,FIRSTNAME,LASTNAME`` (``PRENOM``
and ``NOM`` in a French account): the reader's name is composed from them as from Mailchimp's
``First Name``/``Last Name``, by the fast column reader and the exact one alike, while each
column keeps its own template field (``recipient.firstname``)."""

from __future__ import annotations

import email
import re
from email import policy
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.project import list_columns
from test_plan_store_columns import _stored_by_columns, _stored_by_iter_csv

BREVO = {
    "en": "EMAIL,FIRSTNAME,LASTNAME,SMS\n" + "".join(
        f"r{n}@example.org,First{n},{f'Last{n}' if n % 4 else ''},+33{n}\n" for n in range(200))
    + "only@example.org,,Alone,\nnone@example.org,,,\n",
    "fr": "EMAIL;PRENOM;NOM\n" + "".join(
        f"r{n}@example.org;Prénom{n};Nom{n}\n" for n in range(200)),
}


@pytest.mark.parametrize("block", [37, 1 << 20])
@pytest.mark.parametrize("account", BREVO)
def test_both_readers_compose_the_name_from_brevo_columns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, account: str, block: int) -> None:
    monkeypatch.setattr(list_columns, "BLOCK", block)
    path = tmp_path / "subscribers.csv"
    path.write_text(BREVO[account], encoding="utf-8")
    exact = _stored_by_iter_csv(path)
    assert _stored_by_columns(path) == exact
    names = [row[3] for row in exact]  # type: ignore[index]
    if account == "en":
        assert names[:4] == ["First0", "First1 Last1", "First2 Last2", "First3 Last3"]
        assert names[-2:] == ["Alone", None]
    else:
        assert names[:2] == ["Prénom0 Nom0", "Prénom1 Nom1"]


def _messages(project: Path) -> dict[str, email.message.EmailMessage]:
    out = {}
    for path in (project / "outbox/new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, email.message.EmailMessage)
        out[str(message["To"])] = message
    return out


@pytest.mark.parametrize("kind", ["csv", "yaml"])
def test_a_brevo_list_greets_and_addresses_by_name(project: Path, run_cli: RunCli,
                                                   kind: str) -> None:
    (project / "lists/subscribers.csv").unlink()
    if kind == "csv":
        (project / "lists/subscribers.csv").write_text(
            "EMAIL,FIRSTNAME,LASTNAME\nmarie@example.org,Marie,Curie\n", encoding="utf-8")
    else:
        (project / "lists/subscribers.yaml").write_text(
            "subscribers:\n  - EMAIL: marie@example.org\n    FIRSTNAME: Marie\n"
            "    LASTNAME: Curie\n", encoding="utf-8")
    # a template that used the column before keeps it: nothing is renamed
    edit(project / "templates/newsletter.txt.j2", "{{ recipient.greeting }}",
         "{{ recipient.greeting }}\nfirstname field: {{ recipient.firstname }}")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    [(to, message)] = _messages(project).items()
    assert to == "Marie Curie <marie@example.org>"
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Dear Marie," in text and "firstname field: Marie" in text


def test_importing_a_brevo_export_keeps_the_names(project: Path, run_cli: RunCli,
                                                  tmp_path: Path) -> None:
    """Into the sample list (a 'name' column) and into a list kept in Brevo's own columns;
    the name columns were reported "not needed" and the names lost."""
    export = tmp_path / "contacts.csv"
    export.write_text("EMAIL,FIRSTNAME,LASTNAME,SMS\nanne@example.org,Anne,Frank,+33\n",
                      encoding="utf-8")
    french = tmp_path / "contacts-fr.csv"
    french.write_text("EMAIL;PRENOM;NOM\npierre@example.org;Pierre;Dupont\n", encoding="utf-8")
    result = run_cli("subscribers", "import", "--list", "subscribers", str(export))
    assert result.code == 0, result.err
    assert "FIRSTNAME" not in result.err and "LASTNAME" not in result.err
    assert "not needed to send a newsletter): SMS" in result.err
    lines = (project / "lists/subscribers.csv").read_text(encoding="utf-8").splitlines()
    assert lines[-1] == "anne@example.org,Anne Frank,,"
    (project / "lists/brevo.csv").write_text("EMAIL,FIRSTNAME,LASTNAME\n", encoding="utf-8")
    for source in (french, export):
        result = run_cli("subscribers", "import", "--list", "brevo", str(source))
        assert result.code == 0, result.err
        assert "names not imported" not in result.err
        named = set(re.findall(r"[A-Z]+", result.err))
        assert not {"FIRSTNAME", "LASTNAME", "PRENOM", "NOM"} & named
    assert (project / "lists/brevo.csv").read_text(encoding="utf-8").splitlines() == [
        "EMAIL,FIRSTNAME,LASTNAME", "pierre@example.org,Pierre,Dupont",
        "anne@example.org,Anne,Frank"]


def test_adding_a_name_to_a_brevo_list_names_its_columns(project: Path,
                                                         run_cli: RunCli) -> None:
    (project / "lists/brevo.csv").write_text("EMAIL,FIRSTNAME,LASTNAME\n", encoding="utf-8")
    result = run_cli("subscribers", "add", "brevo", "new@example.org", "--name", "Marie Curie")
    assert (result.code, result.err.strip()) == (2, (
        "lists/brevo.csv:1: the list has no 'name' column (this list has first and last name "
        "columns: give firstname=... lastname=...)"))
    added = run_cli("subscribers", "add", "brevo", "new@example.org", "firstname=Marie",
                    "lastname=Curie")
    assert added.code == 0, added.err
