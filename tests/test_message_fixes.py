"""Each input message names its place and its fix, and says what is really wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, edit
from mirage_mailer.project.content import load_issue
from mirage_mailer.project.lists import RowProblem, iter_list
from mirage_mailer.util.addresses import check_address
from mirage_mailer.util.errors import InputError


def _row_problems(path: Path) -> list[str]:
    found = [row.problem for row in iter_list(path, "people") if isinstance(row, RowProblem)]
    return [f"{p.line}: {p.message} ({p.hint})" for p in found]


@pytest.mark.parametrize(("char", "said", "fix"), [
    ("\x00", "a control character (U+0000), which has no place in a header",
     "the control character"),
    ("\x07", "a control character (U+0007), which has no place in a header",
     "the control character"),
    ("\u2028", "a line break (U+2028), which would break the message headers", "the line break"),
    ("\x85", "a line break (U+0085), which would break the message headers", "the line break"),
])
def test_a_name_with_a_control_character_or_a_line_break(tmp_path: Path, char: str, said: str,
                                                         fix: str) -> None:
    path = tmp_path / "people.csv"
    path.write_text(f"email,name\nanna@example.org,Anna{char}Berg\n", encoding="utf-8")
    assert _row_problems(path) == [f"2: 'name' contains {said} (remove {fix} from this row)"]


def test_a_yaml_row_with_a_list_for_a_value(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    path.write_text("subscribers:\n  - email: anna@example.org\n    name: [Anna, Berg]\n"
                    "  - email: bo@example.org\n    extra: {a: 1}\n", encoding="utf-8")
    assert _row_problems(path) == [
        "3: 'name' must be a single value (write one value after 'name:', in quotes if it "
        "starts with [ or {)",
        "5: 'extra' must be a single value (write one value after 'extra:', in quotes if it "
        "starts with [ or {)"]


def test_a_long_invalid_address_is_shortened(tmp_path: Path) -> None:
    address = "x" * 300 + "@example.org"
    path = tmp_path / "people.csv"
    path.write_text(f"email\n{address}\n", encoding="utf-8")
    [problem] = _row_problems(path)
    assert problem == (f"2: '{'x' * 59}\u2026' is not a valid e-mail address: The email address "
                       "is too long (58 characters too many). (correct the address or delete "
                       "the row)")


@pytest.mark.parametrize(("address", "reason"), [
    ('quote"d@example.org', 'The part before the @-sign has an unmatched double quote (").'),
    ('"anna@example.org"', "The @-sign is inside double quotes."),
    ("no-at-sign.example.org", "An email address must have an @-sign."),
])
def test_the_real_reason_for_an_address(address: str, reason: str) -> None:
    assert check_address(address)[1] == f"'{address}' is not a valid e-mail address: {reason}"


@pytest.mark.parametrize("key", ["subject", "preheader"])
def test_an_empty_subject_is_at_its_language_line_with_the_fix(project: Path,
                                                               key: str) -> None:
    yaml = project / SAMPLE_ISSUE / "issue.yaml"
    text = yaml.read_text(encoding="utf-8").splitlines()
    line = next(n for n, t in enumerate(text, 1) if t.startswith(f"{key}:")) + 2  # its fr:
    fr_text = text[line - 1]
    edit(yaml, fr_text, '  fr: ""')
    with pytest.raises(InputError) as caught:
        load_issue(project / SAMPLE_ISSUE, "en")
    what = "subject line" if key == "subject" else "preview text shown after the subject"
    assert [(p.line, p.message, p.hint) for p in caught.value.problems] == [
        (line, f"'{key}' (fr) is empty", f"write the {what} after 'fr:' under '{key}:'")]
