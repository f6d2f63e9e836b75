"""The pieces behind the officer's error words, without a subprocess: which replies mean
"log in first", which YAML mistakes get which words, where an unclosed block opens, and which
issue is the latest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from mirage_mailer.compose.template_blocks import unclosed_block
from mirage_mailer.delivery.classify import Verdict, classify, is_auth_required
from mirage_mailer.delivery.connection import ConnectFailure, Connection, ConnectSettings
from mirage_mailer.project.yamlwords import explain
from mirage_mailer.services.loader import find_issue
from mirage_mailer.util.errors import InputError


@pytest.mark.parametrize(("stage", "code", "text"), [
    ("MAIL", 530, "5.7.0 Authentication required"),
    ("RCPT", 530, "5.7.0 Authentication required"),
    ("RCPT", 550, "5.7.0 Authentication required"),
    ("DATA", 554, "5.7.0 Must authenticate first"),
])
def test_a_login_wanted_at_any_stage_stops_the_run(stage: str, code: int, text: str) -> None:
    """Recording it as a permanent failure would fail every subscriber for good."""
    assert is_auth_required(code, text)
    assert classify(stage, code, text) is Verdict.ABORT


@pytest.mark.parametrize(("code", "text"), [
    (550, "5.1.1 No such user here"),
    (550, "5.7.1 Message rejected as spam"),
    (451, "4.7.0 Authentication temporarily unavailable"),
])
def test_other_refusals_stay_about_the_recipient(code: int, text: str) -> None:
    assert not is_auth_required(code, text)
    assert classify("RCPT", code, text) is not Verdict.ABORT


def words(text: str) -> tuple[int, str] | None:
    with pytest.raises(yaml.MarkedYAMLError) as caught:
        yaml.safe_load(text)
    found = explain(caught.value, text)
    return None if found is None else (found.line + 1, found.message)


@pytest.mark.parametrize(("text", "expected"), [
    ("a:\n  b: 1\n    c: 2\n", (3, "this line is indented more than the one above")),
    ("a:\n  b:\n    x: 1\n   c: 2\n",
     (4, "this line is indented less than the one above, but more than the key it belongs "
         "to")),
    ("a:\n\tb: 1\n", (2, "a tab is used for indentation")),
    ("a: 'it''s\nb: 2\n", (1, "this quote is never closed")),
    ('a: "C:\\path"\n', (1, "a backslash inside double quotes starts an escape")),
    ('a: "x" y\n', (1, "text follows the closing quote")),
    ('sender:\n  from: "MIraGE" <news@example.org>\n  reply_to: a\n',
     (2, "text follows the closing quote")),
    ("a:\n  b:\n    c: 'x' y\n", (3, "text follows the closing quote")),
    ('a:\n  - "x" y\n', (2, "text follows the closing quote")),
    ('s:\n  a: "x\n  b: y" z\n', (2, "this quote is never closed")),
    ("a:\n  b: [1, 2] x\n", (2, "text follows the closing ']'")),
    ("a: {b: 1} x\n", (1, "text follows the closing '}'")),
    ("a: [1, 2\nb: 3\n", (1, "this '[' is never closed")),
    ("a: B: C\n", (1, "a value contains ': '")),
    ("a:\n  b x\n  c: 1\n", (2, "this line has no ':' after its key")),
    ("a: 1\n- b\n", (2, "a '- ' list item where a key was expected")),
    ("# comment\n\na: 1\n\n  # indented comment\n  b: 2\n",
     (6, "this line is indented more than the one above")),
])
def test_yaml_words(text: str, expected: tuple[int, str]) -> None:
    assert words(text) == expected


def test_text_after_a_quote_gets_the_value_quoted_as_the_fix() -> None:
    """The fix is shown on the officer's own value; none where the quoting would need
    escapes."""
    text = 'subject:\n  en: "MIraGE news" for October  # comment\n'
    with pytest.raises(yaml.MarkedYAMLError) as caught:
        yaml.safe_load(text)
    found = explain(caught.value, text)
    assert found is not None
    assert found.hint == ("put the whole value in quotes, like this: "
                          "'\"MIraGE news\" for October'")
    text = "a:\n  b: \"it's\" y\n"
    with pytest.raises(yaml.MarkedYAMLError) as caught:
        yaml.safe_load(text)
    found = explain(caught.value, text)
    assert found is not None and found.hint == "put the whole value in quotes"


@pytest.mark.parametrize(("source", "message", "expected"), [
    ("a\n{% if x %}\nb\n", "Unexpected end of template.",
     (2, "this {% if %} is never closed: add {% endif %}")),
    ("{% for a in b %}\n{% if a %}\n{% endfor %}\n",
     "Encountered unknown tag 'endfor'.", (2, "this {% if %} is never closed: add {% endif %}")),
    ("{% set x = 1 %}\n{% block b %}\n{% set y %}z{% endset %}\n", "Unexpected end of template.",
     (2, "this {% block %} is never closed: add {% endblock %}")),
    ("x\n{% endif %}\n", "Encountered unknown tag 'endif'.",
     (2, "this {% endif %} has no {% if %} to close: delete it")),
    ("{% for a in b %}{% endfr %}", "Encountered unknown tag 'endfr'.", None),
    ("{{ x }", "unexpected '}'", None),
])
def test_unclosed_block(source: str, message: str, expected: tuple[int, str] | None) -> None:
    assert unclosed_block(source, message) == expected


def make_issue(root: Path, name: str, body: str) -> None:
    (root / "issues" / name).mkdir(parents=True)
    (root / "issues" / name / "issue.yaml").write_text(body, encoding="utf-8")


def test_latest_issue_by_number_then_folder_name(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mirage.yaml").write_text("project: {}\n", encoding="utf-8")
    make_issue(tmp_path, "b-second", "number: 2\n")
    make_issue(tmp_path, "c-first", "number: 1\n")
    make_issue(tmp_path, "a-broken", "number: [\n")
    (tmp_path / "issues" / "not-an-issue").mkdir()
    monkeypatch.chdir(tmp_path / "issues")  # run from inside the project
    folder, note = find_issue(None, None)
    assert folder == tmp_path / "issues" / "b-second"
    assert note == ("mirage-mailer: using b-second (the latest of 3 issues by number, then "
                    "date, an undated draft counting as newest; name another to choose it)")
    assert find_issue(None, "c-first") == (Path("c-first"), None)  # a folder here
    monkeypatch.chdir(tmp_path)
    assert find_issue(None, "c-first") == (tmp_path / "issues" / "c-first", None)
    with pytest.raises(InputError) as caught:
        find_issue(None, "not-an-issue")
    assert str(caught.value) == ("mirage-mailer: no issue 'not-an-issue' under issues/: the "
                                 "issues are a-broken, b-second, c-first")


def test_unknown_host_in_one_pair_of_parentheses() -> None:
    settings = ConnectSettings("no-such-host.invalid", 587, False, "never", None, False, 5.0,
                               None, "localhost")

    async def open_it() -> str:
        try:
            await Connection(settings).open()
        except ConnectFailure as failure:
            return failure.message
        return "connected"

    message = asyncio.run(open_it())
    assert message.startswith("cannot connect to no-such-host.invalid:587 (unknown host: ")
    assert message.count("(") == 1 and message.endswith(")")
