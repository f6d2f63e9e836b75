"""``send --to --dry-run`` is a dry run of the test copy; the help lists every exit code."""

from __future__ import annotations

from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, edit


def test_dry_run_with_to_builds_the_test_copy_and_sends_nothing(project: Path,
                                                                run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  url: maildir:outbox", "  url: smtp://127.0.0.1:9")
    result = run_cli("send", SAMPLE_ISSUE, "--to", "officer@example.org", "--to",
                     "boss@example.org", "--lang", "fr", "--dry-run")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "2021-10-partners-meeting: dry run of the test copy, nothing sent: would send a "
        "[TEST] copy to 2 address(es) (fr: 2); nothing recorded"]
    assert not (project / ".mirage" / "tracking.sqlite").exists()
    listed = run_cli("send", SAMPLE_ISSUE, "--to", "officer@example.org", "--dry-run", "--list")
    assert listed.code == 2 and "leave out --to" in listed.err


def test_top_level_help_lists_every_exit_code(run_cli: RunCli) -> None:
    text = " ".join(run_cli("--help").out.split())
    assert ("Exit codes: 0 done, 1 some recipients failed permanently (5xx), 2 invalid input "
            "(nothing sent), 3 delivery could not proceed (state kept; rerun to resume), 130 "
            "or 143 stopped by Ctrl-C or SIGTERM") in text


def test_one_mailbox_given_twice_gets_one_test_copy(project: Path, run_cli: RunCli) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--to", "q@example.org", "--to", "Q@Example.org",
                     "--to", "r@example.org")
    assert result.code == 0, result.err
    assert "test copy sent to 2 of 2 address(es)" in result.out, result.out
    assert len(list((project / "outbox" / "new").iterdir())) == 2
