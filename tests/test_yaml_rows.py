"""A YAML list read as a stream of libyaml events (``project.yamlrows``) gives exactly what the
full loader (``yamlsrc``, composing the whole file) gave: the same rows with the same lines,
and the same problems, over a hostile sample and a fuzzer's mutations; its memory does not
grow with the list; and ``subscribers add`` reads the list once."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirage_mailer.project import lists, yamlrows, yamlsrc
from mirage_mailer.util.errors import InputError

pytestmark = pytest.mark.skipif(not yamlrows.LIBYAML, reason="PyYAML without libyaml")

ORDINARY = [
    # values as written, nulls, quotes, comments, a plain address item, a null item
    "# partners\nsubscribers:\n  # first\n  - email: a@example.org   # coordinator\n"
    "    name: \"Bob: the builder\"\n    lang: no\n    phone: 0123\n    since: 2021-10-29\n"
    "    x: ~\n    y: null\n    z:\n    w: 'null'\n    v: Yes\n  - b@example.org\n  -\n"
    "  - ~\n  - 'c@example.org'\n# end\n",
    # block scalars, folded and multi-line plain values, escapes
    "subscribers:\n- email: a@example.org\n  note: |\n    two\n    lines\n  more: >-\n"
    "    folded\n    text\n  keep: |+\n    kept\n\n- email: b@example.org\n"
    "  name: a plain\n    value on two lines\n  esc: \"\\u00e9\\x41 \\t tab\"\n"
    "  single: 'it''s'\n",
    # CRLF, a BOM, '-   ' indentation, a key after the list, keys as spreadsheets write them
    "\ufeffsubscribers:\r\n-   email: a@example.org\r\n    name: A\r\n-   b@example.org\r\n"
    "other: 1\r\n",
    "subscribers:\n  - E-mail: a@example.org\n    Language: fr\n    \"First Name\": Ann\n"
    "  - Email Address: b@example.org\n    last_name: O'Neil\n",
    # YAML 1.1 line breaks (NEL, LS) and a lone CR count as lines
    "subscribers:\n  - email: a@example.org\x85  - email: b@example.org\u2028"
    "  - email: c@example.org\r  - email: d@example.org\n",
    # flow style, an entry's mapping on the next line, an explicit document start and end
    "subscribers: [a@example.org, {email: b@example.org, lang: fr}]\n",
    "---\nsubscribers:\n  -\n    email: a@example.org\n  - {email: b@example.org,\n"
    "     name: B}\n...\n",
    "title: Partners\nsubscribers:\n  - email: a@example.org\nnote: closing words\n",
    "subscribers: []\n",
    # row problems: a bad address, a bad language, a line break, not a mapping
    "subscribers:\n  - email: bad-address\n  - email: a@example.org\n    lang: xx\n"
    "  - email: \"b@example.org\\nBcc: c@example.org\"\n  - email: d@example.org\n"
    "    name: \"=?utf-8?q?a=0Ab?=\"\n  - 42\n",
    "subscribers:\n  - email: a@example.org\n    ? |\n      block key\n    : v\n",
]

HOSTILE = [
    "subscribers:\n  - email: &a a@example.org\n  - email: *a\n",  # an alias
    "subscribers:\n  - &x {email: a@example.org}\n",  # an anchor alone
    "subscribers:\n  - email: !!str 5\n  - email: !!int 5\n  - email: !!binary aGk=\n",
    "subscribers:\n  - email: !!python/object:os.system x\n",
    "subscribers:\n  - !foo {email: a@example.org}\n",
    "subscribers:\n  - email: a@example.org\n    <<: {name: x}\n",  # a merge key
    "subscribers:\n  - email: a@example.org\n    \"<<\": quoted\n    v: <<\n",
    "subscribers:\n  - email: a@example.org\n    email: b@example.org\n",  # twice
    "subscribers:\n  - email: a@example.org\nsubscribers:\n  - email: b@example.org\n",
    "subscribers:\n  - email: a@example.org\n    tags: [a, b]\n    o: {a: 1, a: 2}\n",
    "subscribers:\n  - email: a@example.org\n    tags: {k: [1, 2]}\n  - email: b@example.org\n",
    "subscribers:\n  - email: a@example.org\n    deep: " + "[" * 60 + "]" * 60 + "\n",
    "subscribers:\n  - email: a@exam\x01ple.org\n",
    "subscribers:\n  - email: a@example.org\n    name: A\x7f\n",
    "subscribers:\n  - email: a@example.org\n    name: \ufffe\n",
    "subscribers:\n  - email: a@example.org\n\ufeff  - email: b@example.org\n",
    "subscribers:\n  - email: \"a@example.org\n  - email: b@example.org\n",
    "subscribers:\n  - email: a@example.org\n   name: A\n",
    "subscribers:\n\t- email: a@example.org\n",
    "subscribers:\n  - email: a@example.org\n    name: [A\n",
    "subscribers:\n  - email: a: b\n",
    "subscribers:\n  - a@example.org\n---\nsubscribers:\n  - b@example.org\n",
    "%YAML 1.1\n---\nsubscribers:\n  - a@example.org\n",
    "%TAG !e! tag:example.org,2000:\n---\nsubscribers:\n  - !e!x a@example.org\n",
    "- a@example.org\n", "just text\n", "", "# only a comment\n",
    "subscribers:\n", "subscribers: {}\n", "subscribers: x\n", "readers:\n  - a@example.org\n",
    "subscribers:\n  - email: a@example.org\n? [a]\n: b\n",
    "subscribers:\n  - email: a@example.org\n    " + "k" * 1100 + ": v\n",
    "subscribers:\n  - email: a@example.org\n    phone: " + "9" * 200 + "\n",
    "subscribers:\n  - email: a@example.org\nother: {a: 1}\n",
    "subscribers:\n  - email: a@example.org\n    name: x\t# tab\n- b\n",
    "subscribers:\n  - email:\ta@example.org\n",
    "subscribers:\n  - email: a@example.org\n    : empty key\n",
    "subscribers:\n  - email: a@example.org\n    ~: tilde key\n    null: k\n",
]


def _read(path: Path) -> tuple[list[str], list[str] | None]:
    """The rows (their repr: every field and line) and the problems, if the file is fatal."""
    rows: list[str] = []
    try:
        for row in lists.iter_list(path, "partners"):
            rows.append(repr(row))
    except InputError as exc:
        return rows, [str(p) for p in exc.problems]
    return rows, None


def _both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    fast = _read(path)
    with monkeypatch.context() as patch:
        patch.setattr(yamlrows, "LIBYAML", False)
        loaded = _read(path)
    return fast, loaded


def _same(fast: tuple[list[str], list[str] | None],
          loaded: tuple[list[str], list[str] | None]) -> None:
    """The same rows; for a fatal file the same problems (the stream may have given some
    rows before it met the problem, as a CSV list's reader does)."""
    if loaded[1] is None:
        assert fast == loaded
    else:
        assert fast[1] == loaded[1]
        assert loaded[0] == []


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "partners.yaml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_lists_read_the_same_without_the_loader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = _write(tmp_path, text)
    fast, loaded = _both(path, monkeypatch)
    assert loaded[1] is None, loaded
    calls: list[Path] = []
    real = yamlsrc.parse_yaml

    def counted(text: str, where: Path, **kwargs: Any) -> Any:
        calls.append(where)
        return real(text, where, **kwargs)

    monkeypatch.setattr(yamlsrc, "parse_yaml", counted)
    assert _read(path) == fast == loaded
    assert calls == []  # the events path read it all, without the loader


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_lists_give_the_same_rows_and_problems(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    _same(*_both(_write(tmp_path, text), monkeypatch))


@pytest.mark.parametrize("data", [
    b"subscribers:\n  - email: a@example.org\n  - name: \xff\xfe\n",
    b"subscribers:\n  - email: a@example.org\n    name: \xe9\n" + b"  - x@example.org\n" * 30000,
    b"\xef\xbb\xbf\xef\xbb\xbfsubscribers:\n  - a@example.org\n",
])
def test_bytes_that_are_not_utf8_are_named_at_their_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    fast, loaded = _both(_write(tmp_path, data), monkeypatch)
    _same(fast, loaded)


def test_a_file_over_the_size_limit_is_refused_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlrows, "LIST_MAX_BYTES", 100)
    monkeypatch.setattr(yamlsrc, "LIST_MAX_BYTES", 100)
    path = _write(tmp_path, "subscribers:\n" + "  - a@example.org\n" * 10)
    fast, loaded = _both(path, monkeypatch)
    assert fast == loaded
    assert loaded[1] is not None and "the limit is 100" in loaded[1][0]


_PIECES = ["subscribers:", "  - ", "- ", "    ", "  ", "email: ", "a@example.org", "name: ",
           "lang: ", "no", "~", "''", '"', "'", "#", "&a ", "*a", "!!str ", "[", "]", "{",
           "}", ", ", ": ", "|", ">", "\t", "\r", "?", "<<", "---", "\ufeff", "\x85", "é",
           "0123", "x", "-"]


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(_PIECES), max_size=6).map("".join), max_size=8))
def test_fuzzed_lists_give_the_same_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            lines: list[str]) -> None:
    text = "subscribers:\n  - email: first@example.org\n" + "\n".join(lines) + "\n"
    _same(*_both(_write(tmp_path, text), monkeypatch))


def _peak(path: Path) -> int:
    tracemalloc.start()
    try:
        for _ in lists.iter_list(path, "partners"):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_list(tmp_path: Path) -> None:
    """Composing the file held every entry at once (165 MB for 20,000 rows); a stream holds
    one (the reader's buffers and the language cache aside)."""
    entry = "  - email: user{n}@example.org\n    name: Zoë Ørsted {n}\n    lang: fr\n"
    small, large = tmp_path / "small.yaml", tmp_path / "large.yaml"
    small.write_text("subscribers:\n" + "".join(entry.format(n=n) for n in range(500)),
                     encoding="utf-8")
    large.write_text("subscribers:\n" + "".join(entry.format(n=n) for n in range(4000)),
                     encoding="utf-8")
    _peak(small)  # caches warm
    assert _peak(large) < _peak(small) * 1.5 + 100_000
