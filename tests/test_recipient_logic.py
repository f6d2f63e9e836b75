"""Recipient fields in templates, end to end through the CLI into the Maildir outbox: ``if``,
filters and tests on a field run on each reader's own value (audit 9b, f_slots), a column
with any Unicode name works, and what cannot run per reader is refused (exit 2, nothing sent)
with the template's file and line. No internal marker ever reaches a message."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit

HTML = "templates/newsletter.html.j2"
TEXT = "templates/newsletter.txt.j2"
GREETING = "{{ recipient.greeting }}</p>"
ORG_LINE = ("<p>Org: {% if recipient.organisation %}{{ recipient.organisation }}{% else %}"
            '(none){% endif %} | {{ recipient.organisation|default("your organisation") }} | '
            "{{ recipient.name|title }} | {{ recipient.name|upper }}|</p>")


def outbox(project: Path) -> dict[str, EmailMessage]:
    """Every delivered message by its recipient's address."""
    out = {}
    for path in (project / "outbox/new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        out[message["To"].addresses[0].addr_spec] = message
    return out


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text


def no_markers(project: Path) -> None:
    for path in (project / "outbox/new").iterdir():
        assert not re.search(rb"__mm_", path.read_bytes(), re.I), path.name


def test_if_default_and_filters_run_on_each_readers_value(project: Path,
                                                           run_cli: RunCli) -> None:
    edit(project / HTML, GREETING, GREETING + ORG_LINE)
    edit(project / TEXT, "{{ recipient.greeting }}",
         "{{ recipient.greeting }}\nOrg: {{ recipient.organisation or 'none' }} "
         "{{ recipient.name|upper }}")
    assert run_cli("validate", SAMPLE_ISSUE).code == 0
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.err
    messages = outbox(project)
    line = {addr: re.search(r"Org:.*?\|</p>", body(m, "html")).group()  # type: ignore[union-attr]
            for addr, m in messages.items()}
    assert line["maria.georgiou@example.org"] == (
        "Org: Center for Social Innovation | Center for Social Innovation | Maria Georgiou | "
        "MARIA GEORGIOU|</p>")
    # the value is escaped once, as a plain {{ }} would be
    assert line["peter.novak@example.org"] == (
        "Org: Employers&#39; Forum | Employers&#39; Forum | Peter Novak | PETER NOVAK|</p>")
    # no organisation and no name: the else branch, the default, empty filters
    assert line["sofia.rossi@example.org"] == "Org: (none) | your organisation |  | |</p>"
    assert "Org: Réseau Solidarité AMINA HADDAD" in body(
        messages["amina.haddad@example.org"], "plain")
    assert "Org: none \n" in body(messages["sofia.rossi@example.org"], "plain")
    no_markers(project)
    preview = run_cli("preview", SAMPLE_ISSUE, "--recipient", "sofia.rossi@example.org",
                      "--out", "pv")
    assert preview.code == 0, preview.err
    html = (project / "pv/en.html").read_text(encoding="utf-8")
    assert re.search(r">Org: \(none\) \| your organisation \|  \| \|</p>", html), html


def test_a_column_named_in_any_script_is_filled(project: Path, run_cli: RunCli) -> None:
    (project / "lists/subscribers.csv").write_text(
        "email,name,lang,Société,a__b\nmaria@example.org,Maria,en,SA Un,x<y\n", encoding="utf-8")
    edit(project / HTML, GREETING,
         GREETING + "<p>Org: {{ recipient['société'] }}|{{ recipient.a__b }}|</p>")
    assert run_cli("validate", SAMPLE_ISSUE).code == 0
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0
    html = body(outbox(project)["maria@example.org"], "html")
    assert ">Org: SA Un|x&lt;y|</p>" in html  # escaped once, as any field
    no_markers(project)


@pytest.mark.parametrize(("template", "line", "words"), [
    ("{% if recipient.organisation %}<b>{{ recipient.organisation }}</b>{% endif %}", 62,
     "holds HTML tags"),
    ("{% set who = recipient.name|title %}", 62, "stores a recipient field in a variable"),
    ("{% for a in articles %}{{ recipient.name|default(a.title) }}{% endfor %}", 62,
     "uses 'a', which the template sets itself"),
    # checked on an empty and a sample value before anything is sent
    ("{{ 100 // recipient.organisation|length }}", 62,
     "recipient logic failed for a recipient: ZeroDivisionError"),
    # a branch that a sample reader may never reach is checked all the same
    ("{% if recipient.organisation %}x{% else %}{{ recipient.nosuch }}{% endif %}", 62,
     "recipient has no field 'nosuch'"),
    # markup printed by a piece would bypass the no-<script> check (audit 10, F4)
    ('{% if recipient.organisation %}{{ "<script>alert(1)</script>"|safe }}{% endif %}', 62,
     "holds HTML tags"),
    ("{% if recipient.organisation %}{% autoescape false %}{{ recipient.organisation }}"
     "{% endautoescape %}{% endif %}", 62, "holds an {% autoescape %}"),
    # marker text of the template's own, in a branch no sample reader takes (audit 10, F1)
    ('{% if recipient.organisation == "vip" %}__MM_name__{% endif %}', 62,
     "holds the internal marker text __MM_"),
])
def test_logic_that_cannot_run_per_reader_is_refused(project: Path, run_cli: RunCli,
                                                     template: str, line: int,
                                                     words: str) -> None:
    edit(project / HTML, GREETING, GREETING + template)
    for command in (("validate", SAMPLE_ISSUE), ("preview", SAMPLE_ISSUE),
                    ("send", SAMPLE_ISSUE, "--yes")):
        result = run_cli(*command)
        assert result.code == 2, (command, result.out, result.err)
        assert f"{HTML}:{line}: " in result.err and words in result.err, result.err
        assert "Traceback" not in result.err
    assert not (project / "outbox").exists()


def test_validate_runs_the_logic_for_every_reader(project: Path, run_cli: RunCli) -> None:
    """A line that fails for one reader's value only ('Réseau Solidarité' has 17
    characters) is named with that reader by validate; send stops before sending anyone."""
    edit(project / HTML, GREETING,
         GREETING + "<p>{{ 100 // (recipient.organisation|length - 17) }}</p>")
    expected = (f"{HTML}:62: recipient logic failed for amina.haddad@example.org: "
                "ZeroDivisionError")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2 and expected in result.err, result.err
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 2 and expected in result.err, result.err
    assert "Traceback" not in result.err
    assert not (project / "outbox").exists()


def test_a_marker_left_in_the_output_stops_everything(project: Path, run_cli: RunCli) -> None:
    """The guard: whatever leaves marker text (here written out by hand) is refused."""
    edit(project / HTML, GREETING, GREETING + "<p>{{ '__mm_name__' }} __MM_nosuch__</p>")
    for command in (("validate", SAMPLE_ISSUE), ("send", SAMPLE_ISSUE, "--yes")):
        result = run_cli(*command)
        assert result.code == 2, result.out
        assert f"{HTML}: the rendered newsletter still holds the internal marker" in result.err
        assert "'__MM_nosuch__'" in result.err and "'__mm_name__'" in result.err
    assert not (project / "outbox").exists()


def test_filter_blocks_and_stored_fields(project: Path, run_cli: RunCli) -> None:
    """A {% filter %} around a field runs per reader too; a field stored as it is still
    prints (its slot is filled)."""
    edit(project / HTML, GREETING, GREETING + "{% set who = recipient.name %}"
         "<p>[{% filter upper %}{{ recipient.organisation }}{% endfilter %}|{{ who }}]</p>")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    html = body(outbox(project)["amina.haddad@example.org"], "html")
    assert ">[RÉSEAU SOLIDARITÉ|Amina Haddad]</p>" in html
    no_markers(project)


def test_a_plain_field_keeps_the_fast_path(project: Path, run_cli: RunCli) -> None:
    """Printing fields only: no fragment, the message is filled by substitution alone."""
    from mirage_mailer.services.loader import open_project
    from mirage_mailer.services.preparation import prepare_issue

    prep = prepare_issue(open_project(project / "mirage.yaml", project / SAMPLE_ISSUE))
    assert all(r.fragments is None for r in prep.rendered.values())
    edit(project / HTML, GREETING, GREETING + ORG_LINE)
    prep = prepare_issue(open_project(project / "mirage.yaml", project / SAMPLE_ISSUE))
    assert all(r.fragments is not None for r in prep.rendered.values())
