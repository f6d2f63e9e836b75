"""YAML read as the officer wrote it, end to end through the real CLI: a quoted value with
words after it is named as such at any depth, a subscriber's ``no`` is Norwegian and ``Yes``
a name, and a sender field holds one address, not the first of several."""

from __future__ import annotations

from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, edit

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
