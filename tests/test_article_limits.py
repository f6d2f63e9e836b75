"""A hostile article ends in seconds, blamed on the article: rendering one is bounded.

Each body below once hung validate, preview and send for minutes (audit 14, area H), or ran
20 to 35 s and then blamed the stock template. The subprocess timeout is the bound under
test; the message must name the article file and line, never a template.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.compose import sandbox
from mirage_mailer.compose.sandbox import MAX_TOTAL_SECONDS, BoundedSandbox

ARTICLE = f"{SAMPLE_ISSUE}/online-trainings.md"
BOUND = 40  # seconds for a whole CLI run, start-up included, on a loaded test machine


def _write_body(project: Path, body: str, name: str = "online-trainings.md") -> None:
    (project / SAMPLE_ISSUE / name).write_text(f"---\ntitle: T\n---\n{body}\n",
                                               encoding="utf-8")


def _table(columns: int, rows: int, row: str | None = None) -> str:
    return "\n".join(["|" + "a|" * columns, "|" + "-|" * columns,
                      *([row if row is not None else "|" + "a|" * columns] * rows)])


@pytest.mark.parametrize(("body", "line", "words"), [
    # 1.1 MB of nested <div>: nh3's cleaner works with the square of the depth (>100 s)
    ("<div>" * 100_000 + "x" + "</div>" * 100_000, 4,
     "the article's text is 1,100,002 characters long; at most 100,000"),
    # 0.2 MB table, 100 x 1000: 20-35 s, then blamed on templates/newsletter.html.j2:2
    (_table(100, 1000), 4, "the article's text is 202,404 characters long; at most 100,000"),
    # 80 KB table (100 x 400): markdown-it and inscriptis, ~0.2 ms a cell
    (_table(100, 400), 102, "41,004 Markdown marks (line breaks and * _ ` [ ] < > | ! & ~ "
                            "\\ ' \" characters), mostly '|' (table cells); at most 10,000"),
    # 80 KB of unmatched quotes in one paragraph: markdown-it's smart quotes are quadratic
    ("'a\" " * 20_000, 4, "40,001 Markdown marks"),
    # 4 KB: a 1000-column header, and every short row after it gets 1000 cells
    (_table(1000, 100, row="a"), 4, "the article's tables hold 101,000 cells"),
    # raw HTML nesting, a few hundred bytes
    ("<div>" * 30 + "x" + "</div>" * 30, 4,
     "raw HTML leaves more than 20 elements open at once here (<div>...)"),
    # 14 KB: 19 open <b> that the cleaner reopens in each of 1,200 blocks
    ("<div>" + "".join(f"<b id=x{i}>" for i in range(19)) + "</div>" + "<div>x</div>" * 1200,
     4, "the article's HTML grows to 45,676 tags once cleaned; at most 30,000"),
])
def test_a_hostile_article_fails_fast_naming_its_line(project: Path, run_cli: RunCli,
                                                      body: str, line: int,
                                                      words: str) -> None:
    _write_body(project, body)
    started = time.monotonic()
    result = run_cli("validate", SAMPLE_ISSUE, timeout=BOUND)
    assert result.code == 2, result.err
    errors = [e for e in result.err.splitlines() if e.startswith(("issues/", "templates/"))
              and "no 'fr' translation" not in e]
    assert len(errors) == 1, result.err
    assert errors[0].startswith(f"{ARTICLE}:{line}: "), result.err
    assert words in errors[0]
    assert time.monotonic() - started < BOUND


def test_a_hostile_article_sends_nothing(project: Path, run_cli: RunCli) -> None:
    _write_body(project, _table(1000, 100, row="a"))
    for args in (("send", SAMPLE_ISSUE, "--yes"), ("preview", SAMPLE_ISSUE)):
        result = run_cli(*args, timeout=BOUND)
        assert result.code == 2, result.err
        assert f"{ARTICLE}:4: the article's tables hold 101,000 cells" in result.err
    assert not (project / "outbox").exists() or not any((project / "outbox").rglob("*.*"))
    assert not (project / "preview").exists()


def test_the_issue_as_a_whole_is_bounded(project: Path, run_cli: RunCli) -> None:
    """Each article below its own limit, but the issue renders them all in every language."""
    issue = project / SAMPLE_ISSUE
    names = [f"part-{n}.md" for n in range(6)]
    for name in names:
        _write_body(project, "a line\n" * 9_000, name)
    yaml = (issue / "issue.yaml").read_text(encoding="utf-8")
    yaml = yaml.replace("  - partners-meeting.md\n  - online-trainings.md\n",
                        "".join(f"  - {name}\n" for name in names))
    (issue / "issue.yaml").write_text(yaml, encoding="utf-8")
    line = yaml.splitlines().index("articles:") + 1
    result = run_cli("validate", SAMPLE_ISSUE, timeout=BOUND)
    assert result.code == 2, result.err
    assert (f"{SAMPLE_ISSUE}/issue.yaml:{line}: the articles of this issue's 2 language(s) "
            "hold 108,012 Markdown marks; at most 100,000") in result.err


def test_a_long_but_ordinary_article_renders(project: Path, run_cli: RunCli) -> None:
    """Far below every limit: a 40 KB article with headings, links, lists and a table."""
    section = ("## A section\n\nSome text with a [link](https://example.org/a) and *stress*, "
               "the partners' \"meeting\".\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |"
               "\n\n")
    _write_body(project, section * 200)
    result = run_cli("validate", SAMPLE_ISSUE, timeout=BOUND)
    assert result.code == 0, result.err


def test_the_issue_budget_counts_template_time_only(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Time between renders (the articles' conversion) no longer exhausts the templates'
    issue-wide budget: it made the next template fail at its first line and take the blame."""
    (tmp_path / "t.j2").write_text("{% for i in range(3) %}{{ i }}{% endfor %}",
                                   encoding="utf-8")
    now = [1000.0]
    monkeypatch.setattr(sandbox.time, "monotonic", lambda: now[0])
    env = BoundedSandbox(tmp_path)
    now[0] += MAX_TOTAL_SECONDS + 20  # the articles took long to convert
    assert env.render_template("t.j2", {}) == "012"
