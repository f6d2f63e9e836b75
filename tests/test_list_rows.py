"""List rows: the quick whole-row checks give exactly the answers of the value-by-value ones.

``_check_row`` checks a row's values for header-breaking content in one pass over all of them
and each language code once per distinct spelling; these tests compare both shortcuts with
the checks they stand for, on tricky values and on random ones.
"""

from __future__ import annotations

import random
from pathlib import Path

from mirage_mailer.project import lists
from mirage_mailer.project.lists import RowProblem, Subscriber, _check_row
from mirage_mailer.util.headersafe import header_problem
from mirage_mailer.util.langs import check_language, normalise_language

WHERE = "lists/x.csv"
PIECES = ["a", "Zoë", " ", "\t", "\r", "\n", "\r\n", "\x00", "\x1b", "\x7f", "\x85", "\x9f",
          "\u2028", "\u2029", "\ud800", "=", "?", "=?", "?=", "=?utf-8?q?", "=?utf-8?b?",
          "=0A", "=0D", "DQo=", "Cg==", "_", "=?utf-8?q?X=0D=0AB?=", "=?utf-8?b?QQ0KQg==?=",
          "=?utf-8?q?fine?=", "=?iso-8859-1?q?caf=E9?=", "=?x?q?\t?=", "@", "example.org"]


def reference(raw: dict[str, str]) -> tuple[str, str] | None:
    """(column, why) of the first value that would break a header, checked one by one."""
    for key, value in raw.items():
        bad = header_problem(value)
        if bad:
            return key, bad
    return None


def header_verdict(row: Subscriber | RowProblem) -> tuple[str, str] | None:
    if isinstance(row, RowProblem) and row.problem.hint.startswith("remove "):
        key, _, why = row.problem.message[1:].partition("' ")
        return key, why
    return None


def random_value(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 6)))


def test_whole_row_check_agrees_with_value_by_value_on_random_rows() -> None:
    rng = random.Random(20261130)
    refused = 0
    for _ in range(20_000):
        raw = {"email": rng.choice(["a@example.org", random_value(rng)]),
               "name": random_value(rng), "lang": rng.choice(["", "en", random_value(rng)]),
               "organisation": random_value(rng)}
        if rng.random() < 0.3:
            del raw[rng.choice(["name", "lang", "organisation"])]
        expected = reference(raw)
        got = header_verdict(_check_row(raw, "x", Path(WHERE), 2, WHERE))
        assert got == expected, raw
        refused += expected is not None
    assert 2_000 < refused < 18_000  # both kinds of row were met, many times


def test_values_that_only_break_a_header_together_are_each_fine() -> None:
    """An encoded word split over two columns is two harmless values, as before."""
    raw = {"email": "a@example.org", "name": "=?utf-8?q?X", "organisation": "=0D=0A?="}
    assert isinstance(_check_row(raw, "x", Path(WHERE), 2, WHERE), Subscriber)
    for raw in ({"email": "a@example.org", "name": "Anna\u2028B"},
                {"email": "a@example.org", "organisation": "=?utf-8?q?X=0D=0AB?="}):
        assert header_verdict(_check_row(raw, "x", Path(WHERE), 2, WHERE)) == reference(raw)


def test_language_codes_are_checked_once_each_with_the_same_answers() -> None:
    rng = random.Random(13)
    letters = "aAeEnNfFrRzZxX-_0129 "
    lists._LANGUAGES.clear()
    for _ in range(3_000):
        code = "".join(rng.choice(letters) for _ in range(rng.randrange(1, 7))).strip() or "en"
        for _twice in range(2):  # first sight, then the remembered answer
            row = _check_row({"email": "a@example.org", "lang": code}, "x", Path(WHERE), 2,
                             WHERE)
            bad = check_language(code)
            if bad:
                assert isinstance(row, RowProblem) and row.problem.message == f"lang {bad}"
            else:
                assert isinstance(row, Subscriber) and row.lang == normalise_language(code)
    assert len(lists._LANGUAGES) <= lists._MAX_LANGUAGES


def test_the_one_scan_row_check_never_passes_a_value_the_full_check_refuses() -> None:
    """``may_have_problem`` may send a fine value the long way, never a bad one the short
    way: every character from U+0000 to U+FFFF alone and amid text, and random mixes."""
    from mirage_mailer.util.headersafe import may_have_problem

    values = [chr(c) for c in range(0x10000)]
    values += [f"ok {v} ok" for v in values]
    rng = random.Random(5)
    values += ["".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 8)))
               for _ in range(5_000)]
    for value in values:
        if header_problem(value) is not None:
            assert may_have_problem(value), repr(value)
    assert not may_have_problem("Maria Georgiou\tmaria@example.org\tfr\tZoë")


def test_a_rows_fields_are_its_other_columns_in_order_and_the_row_is_left_as_it_was() -> None:
    raw = {"x": "1", "email": "A@Example.org", "name": "N", "y": "2", "lang": "fr", "z": ""}
    row = _check_row(raw, "x", Path(WHERE), 2, WHERE)
    assert isinstance(row, Subscriber)
    assert list(row.fields.items()) == [("x", "1"), ("y", "2"), ("z", "")]
    assert list(raw) == ["x", "email", "name", "y", "lang", "z"]
    assert _check_row({"email": "a@example.org"}, "x", Path(WHERE), 2, WHERE).fields == {}
