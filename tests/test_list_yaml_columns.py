"""A YAML subscriber entry with two keys for one column (``Email:`` and ``E-mail:``) is a row
problem, as such a CSV header is: one of the two addresses was dropped without a word."""

from __future__ import annotations

from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli


def test_two_keys_for_the_email_column_are_a_row_problem(project: Path,
                                                          run_cli: RunCli) -> None:
    (project / "lists/subscribers.csv").unlink()
    (project / "lists/subscribers.yaml").write_text(
        "subscribers:\n"
        "  - Email: first@example.org\n"
        "    E-mail: second@example.org\n"
        "  - email: third@example.org\n", encoding="utf-8")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert ("lists/subscribers.yaml:3: 'E-mail' names the 'email' column again (line 2) "
            "(keep one of them)") in result.err.splitlines(), result.err
    dry = run_cli("send", SAMPLE_ISSUE, "--dry-run")
    assert dry.code == 0, dry.err
    assert "would send 1 (en: 1)" in dry.out
    assert "invalid 1" in dry.out
