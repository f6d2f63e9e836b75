"""A lone surrogate (``"\\uD800"``, a valid YAML escape) in any text value of an article's
front matter or of issue.yaml is one problem at its own line, not two false errors against
the untouched template (audit 14, area H, F3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit

ARTICLE = f"{SAMPLE_ISSUE}/online-trainings.md"
ISSUE = f"{SAMPLE_ISSUE}/issue.yaml"
WORDS = "contains a lone surrogate (U+D800), a character no charset can encode"


def _article(project: Path, front_matter: str) -> None:
    (project / ARTICLE).write_text(f"---\n{front_matter}\n---\nbody\n", encoding="utf-8")


@pytest.mark.parametrize(("where", "change", "expected"), [
    (ARTICLE, 'title: "Training \\uD800 news"', f"{ARTICLE}:2: 'title' {WORDS}"),
    (ARTICLE, 'title: T\nauthor: "A\\uD800"', f"{ARTICLE}:3: 'author' {WORDS}"),
    (ARTICLE, 'title: T\nsummary: "\\uD800"', f"{ARTICLE}:3: 'summary' {WORDS}"),
    (ISSUE, 'title:\n  en: "MIraGE \\uD800 newsletter"', f"{ISSUE}:5: 'title.en' {WORDS}"),
    (ISSUE, 'title: "MIraGE \\uD800"', f"{ISSUE}:4: 'title' {WORDS}"),
])
def test_a_lone_surrogate_is_one_problem_at_its_line(project: Path, run_cli: RunCli,
                                                     where: str, change: str,
                                                     expected: str) -> None:
    if where == ARTICLE:
        _article(project, change)
    else:
        edit(project / ISSUE, "title:\n  en: MIraGE newsletter\n  fr: Lettre d'information "
             "MIraGE\n", change + "\n")
    for args in (("validate", SAMPLE_ISSUE), ("send", SAMPLE_ISSUE, "--yes")):
        result = run_cli(*args)
        assert result.code == 2, result.err
        errors = [e for e in result.err.splitlines()
                  if e.startswith(("issues/", "templates/")) and "translation" not in e
                  and "no subject in" not in e]
        assert errors == [f"{expected} (delete that \\u escape, half of a character's pair; "
                          "write the character itself)"], result.err
    assert not (project / "outbox").exists() or not any((project / "outbox").rglob("*.*"))


def test_the_subject_keeps_its_own_check(project: Path, run_cli: RunCli) -> None:
    """Checked once, by the subject's header check, not twice."""
    edit(project / ISSUE, "  en: \"MIraGE news:", "  en: \"MIraGE \\uD800 news:")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert result.err.count("lone surrogate") == 1, result.err
    assert f"{ISSUE}:2: 'subject' (en) {WORDS}" in result.err
