"""Hostile list values against recipient logic in templates (audit 10), end to end through
the CLI into the Maildir outbox: a value is never mistaken for an internal marker (F1), a long
value printed by several pieces fits their budgets, and a piece that prints too much is one
clear line, exit 2 (F2), and a reader's value is escaped in the HTML part whatever the filter
(F4)."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, edit
from test_recipient_logic import HTML, TEXT, body, outbox

GREETING = "{{ recipient.greeting }}</p>"
LIST = "lists/subscribers.csv"


def write_list(project: Path, *rows: str) -> None:
    (project / LIST).write_text("email,name,lang,organisation\n" + "".join(
        row + "\n" for row in rows), encoding="utf-8")


def test_marker_text_in_a_value_is_the_readers_own(project: Path, run_cli: RunCli) -> None:
    """F1: a sign-up may hold '__mm_' in any case; it is printed, it stops nobody."""
    edit(project / HTML, GREETING, GREETING + "<p>[{{ recipient.name|title }}|"
         "{% if recipient.organisation %}{{ recipient.organisation }}{% endif %}]</p>")
    edit(project / TEXT, "{{ recipient.greeting }}",
         "{{ recipient.greeting }}\n[{{ recipient.organisation|upper }}]")
    write_list(project, "a@example.org,Ann,en,Acme",
               "b@example.org,__MM_name__ bob,en,see __mm_docs for details",
               "c@example.org,Carl,en,Beta")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert "marker" not in result.err
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.err
    messages = outbox(project)
    assert sorted(messages) == ["a@example.org", "b@example.org", "c@example.org"]
    bob = messages["b@example.org"]
    assert ">[__mm_name__ Bob|see __mm_docs for details]</p>" in body(bob, "html")
    assert "[SEE __MM_DOCS FOR DETAILS]" in body(bob, "plain")
    assert ">[Ann|Acme]</p>" in body(messages["a@example.org"], "html")


def test_a_long_value_fits_every_piece_that_prints_it(project: Path, run_cli: RunCli) -> None:
    """F2: a 40,000-character cell printed by four pieces: each piece has its own budget."""
    pieces = ("{% if recipient.organisation %}{{ recipient.organisation }}{% endif %}|"
              "{{ recipient.organisation|default('none') }}|{{ recipient.organisation|lower }}|"
              "{{ recipient.organisation|safe }}")
    edit(project / HTML, GREETING, GREETING + f"<p>[{pieces}]</p>")
    long = "x" * 40_000
    write_list(project, "a@example.org,Ann,en,Acme", f"b@example.org,Bob,en,{long}")
    assert run_cli("validate", SAMPLE_ISSUE).code == 0
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.err
    assert f">[{long}|{long}|{long}|{long}]</p>" in body(outbox(project)["b@example.org"],
                                                       "html")


def test_a_piece_over_its_budget_is_one_line_exit_2(project: Path, run_cli: RunCli) -> None:
    """F2: a piece that repeats a reader's value past its budget is a template problem,
    named with its own line (not its neighbour's), the reader and the limit, exit 2, never
    an internal error; nothing is sent to anyone."""
    edit(project / HTML, GREETING, GREETING + "\n<p>{{ recipient.name|title }}</p>\n<p>"
         "{% if recipient.organisation %}{% for i in range(30) %}{{ recipient.organisation }}"
         "{% endfor %}{% endif %}</p>")
    write_list(project, "a@example.org,Ann,en,Acme", f"b@example.org,Bob,en,{'x' * 40_000}")
    expected = f"{HTML}:64: recipient logic prints more than 5"  # 100,000 + 10 x values
    for command in (("validate", SAMPLE_ISSUE), ("send", SAMPLE_ISSUE, "--yes")):
        result = run_cli(*command)
        assert result.code == 2, (command, result.err)
        assert expected in result.err and "characters for b@example.org" in result.err, \
            result.err
        assert "internal error" not in result.err and "5,000,000" not in result.err
    assert not (project / "outbox").exists()


def test_a_readers_value_is_escaped_whatever_the_filter(project: Path,
                                                        run_cli: RunCli) -> None:
    """F4: list values are hostile: |safe, |string|safe, map('safe') on a field in the HTML
    template print it escaped, as a plain {{ recipient.name }} does."""
    edit(project / HTML, GREETING, GREETING + "<p>SAFE[{{ recipient.name|safe }}|"
         "{{ recipient.name|string|safe }}|{{ recipient.name|title|safe }}|"
         "{{ recipient.name|map('safe')|join }}]</p>")
    evil = "<script>alert(document.cookie)</script><img src=x onerror=alert(1)>"
    write_list(project, f"evil@example.org,{evil},en,Acme")
    assert run_cli("validate", SAMPLE_ISSUE).code == 0
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.err
    html = body(outbox(project)["evil@example.org"], "html")
    escaped = ("&lt;script&gt;alert(document.cookie)&lt;/script&gt;&lt;img src=x "
               "onerror=alert(1)&gt;")
    titled = ("&lt;Script&gt;alert(Document.cookie)&lt;/script&gt;&lt;Img Src=x "
              "Onerror=alert(1)&gt;")  # Jinja2's title
    assert f"SAFE[{escaped}|{escaped}|{titled}|{escaped}]</p>" in html, html
    assert not re.search(r"<script|<img src=x", html, re.I)
