"""YAML read as the officer wrote it, end to end through the real CLI: a quoted value with
words after it is named as such at any depth, a subscriber's ``no`` is Norwegian and ``Yes``
a name, and a sender field holds one address, not the first of several."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.project.config_checks import Section
from mirage_mailer.project.yamlsrc import LineDict, parse_yaml
from mirage_mailer.util.errors import Collector, InputError

ISSUE_YAML = f"{SAMPLE_ISSUE}/issue.yaml"


def problems(err: str) -> list[str]:
    """Every line but the sample's translation warning and the summary."""
    return [line for line in err.splitlines()
            if ": warning: " not in line and not line.startswith("2021-10-partners-meeting: ")]


def test_words_after_a_quoted_nested_value_are_named_at_their_line(project: Path,
                                                                   run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  from: MIraGE project <news@mirageproject.eu>",
         '  from: "MIraGE project" <news@mirageproject.eu>')
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert problems(result.err) == [
        "mirage.yaml:11: text follows the closing quote (put the whole value in quotes, like "
        "this: '\"MIraGE project\" <news@mirageproject.eu>')"]
    edit(project / "mirage.yaml", '  from: "MIraGE project" <news@mirageproject.eu>',
         "  from: MIraGE project <news@mirageproject.eu>")
    edit(project / ISSUE_YAML, "  en: \"MIraGE news: final partners' meeting and lessons "
         "learned\"", '  en: "MIraGE news" for October')
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert problems(result.err) == [
        f"{ISSUE_YAML}:2: text follows the closing quote (put the whole value in quotes, like "
        "this: '\"MIraGE news\" for October')"]


def written_to(project: Path) -> dict[str, tuple[str, str]]:
    """Each delivered message's To header and plain-text part, by address."""
    found: dict[str, tuple[str, str]] = {}
    for file in (project / "outbox" / "new").iterdir():
        message = email.message_from_bytes(file.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(("plain",))
        assert part is not None
        found[message["To"].addresses[0].addr_spec] = (str(message["To"]), part.get_content())
    return found


def test_a_yaml_list_holds_the_text_as_written(project: Path, run_cli: RunCli) -> None:
    """'no' is Norwegian, 'Yes' a name: YAML 1.1 would make them false and true."""
    (project / "lists" / "subscribers.csv").unlink()
    (project / "lists" / "subscribers.yaml").write_text(
        "subscribers:\n"
        "  - email: ola@example.org\n"
        "    name: Ola Nordmann\n"
        "    lang: no\n"
        "  - email: yes@example.org\n"
        "    name: Yes\n"
        "    lang: null\n", encoding="utf-8")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert problems(result.err) == []
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    sent = written_to(project)
    assert sent["yes@example.org"][0] == "Yes <yes@example.org>"
    assert "Dear Yes," in sent["yes@example.org"][1]
    assert sent["ola@example.org"][0] == "Ola Nordmann <ola@example.org>"


def test_a_row_problem_in_a_yaml_list_is_named_at_its_key(project: Path,
                                                          run_cli: RunCli) -> None:
    (project / "lists" / "subscribers.csv").unlink()
    (project / "lists" / "subscribers.yaml").write_text(
        "subscribers:\n"
        "  - email: ola@example.org\n"
        "    name: Ola Nordmann\n"
        "    lang: yes\n"
        "  - name: Kari\n"
        "    email: kari@example\n", encoding="utf-8")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    lang, address = problems(result.err)
    assert lang == ("lists/subscribers.yaml:4: lang 'yes' is not a language code (use an ISO "
                    "639-1 code such as en, fr or pt-BR)")
    assert address.startswith("lists/subscribers.yaml:6: 'kari@example' ")  # the email line


def test_issue_values_are_the_text_as_written(project: Path, run_cli: RunCli) -> None:
    """A language key 'no', 'number: 010', 'title: 1984' and a subject '1.10' stay as
    written (YAML 1.1: false, 8, 1984 the integer, 1.1)."""
    edit(project / ISSUE_YAML, "number: 4", "number: 010")
    edit(project / ISSUE_YAML, "  fr: \"Nouvelles de MIraGE", "  no: 1.10\n"
         "  fr: \"Nouvelles de MIraGE")
    article = project / f"{SAMPLE_ISSUE}/partners-meeting.md"
    article.write_text(re.sub(r"(?m)^title: .*$", "title: 1984",
                              article.read_text(encoding="utf-8"), count=1), encoding="utf-8")
    result = run_cli("preview", SAMPLE_ISSUE, "--out", "out")
    assert result.code == 0, result.err
    norwegian = email.message_from_bytes((project / "out" / "no.eml").read_bytes(),
                                         policy=policy.default)
    assert norwegian["Subject"] == "1.10"
    english = (project / "out" / "en.txt").read_text(encoding="utf-8")
    assert "Issue 010 " in english
    assert "1984" in english


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("  reply_to: info@mirageproject.eu", "  reply_to: no",
     "mirage.yaml:12: 'sender.reply_to' must be a string; you wrote no (put it in quotes if "
     "you mean the word: 'no')"),
    ("  starttls: always", "  starttls: off",
     "mirage.yaml:18: 'transport.starttls' must be always, auto or never; you wrote off"),
])
def test_settings_echo_the_word_written(project: Path, run_cli: RunCli, old: str, new: str,
                                        expected: str) -> None:
    edit(project / "mirage.yaml", old, new)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert problems(result.err) == [expected]


def test_list_values_and_every_key_are_text_as_written(tmp_path: Path) -> None:
    """A phone number keeps its zero, a date stays a date as written; only an empty value,
    ~ or null is none; aliases and merge keys are still refused."""
    source = ("subscribers:\n  - email: a@example.org\n    phone: 0123\n    since: 2021-10-29\n"
              "    score: 1.10\n    no: off\n    x: ~\n    y: null\n    z:\n    w: 'null'\n")
    data = parse_yaml(source, tmp_path / "l.yaml", text_values=True)
    assert data["subscribers"][0] == {
        "email": "a@example.org", "phone": "0123", "since": "2021-10-29", "score": "1.10",
        "no": "off", "x": None, "y": None, "z": None, "w": "null"}
    with pytest.raises(InputError, match="merge keys"):
        parse_yaml("a:\n  <<: {b: 1}\n", tmp_path / "l.yaml", text_values=True)
    with pytest.raises(InputError, match="aliases"):
        parse_yaml("a: &x 1\nb: *x\n", tmp_path / "l.yaml", text_values=True)
    config = parse_yaml("no: 0123\nyes: [010, on]\nn: null\n", tmp_path / "c.yaml")
    assert config == {"no": 83, "yes": [8, True], "n": None}  # settings keep YAML's types
    assert (config.text("no"), config["yes"].text(0), config["yes"].text(1)) == (
        "0123", "010", "on")  # and the text as written beside them
    assert config.text("n") is None and config.text("missing") is None


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("  reply_to: info@mirageproject.eu",
     '  reply_to: "info@mirageproject.eu, press@mirageproject.eu"',
     "mirage.yaml:12: 'sender.reply_to' holds 2 addresses (info@mirageproject.eu, "
     "press@mirageproject.eu); it takes one (keep one address; to reach several people, give "
     "one that forwards to them)"),
    ("  from: MIraGE project <news@mirageproject.eu>",
     "  from: MIraGE <news@mirageproject.eu> <x@evil.example>",
     "mirage.yaml:11: 'sender.from' holds 2 addresses (news@mirageproject.eu, "
     "x@evil.example); it takes one (write it as 'Project name <news@example.org>', with one "
     "address)"),
    ("  contact: info@mirageproject.eu", "  contact: info@mirageproject.eu; x@example.org",
     "mirage.yaml:7: 'project.contact' holds 2 addresses (info@mirageproject.eu, "
     "x@example.org); it takes one (give the one address readers can write to; a shared "
     "mailbox reaches several people)"),
])
def test_a_sender_address_holding_two_is_refused(project: Path, run_cli: RunCli, old: str,
                                                 new: str, expected: str) -> None:
    """The header would carry the first and drop the second without a word."""
    edit(project / "mirage.yaml", old, new)
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 2, result.err
    assert problems(result.err) == [expected]
    assert not any((project / "outbox" / "new").glob("*"))


@pytest.mark.parametrize("value", ['"news@example.org" <news@example.org>',
                                   "news@example.org (desk: press@example.org)",
                                   '"Smith, Jane" <jane@example.org>', "MIraGE <news@example.org>"])
def test_one_address_with_an_at_in_its_name_is_one(tmp_path: Path, value: str) -> None:
    data = LineDict()
    problems = Collector()
    assert Section(data, tmp_path / "mirage.yaml", "sender", problems).one_address(
        "from", value, "")
    assert problems.problems == []
