"""A list file that is a link to no file (the list moved or deleted behind it) is named as a
broken link with its target and the fix; never "create lists/subscribers.csv", which would
write through the link. Real CLI runs on the scaffolded project."""

from __future__ import annotations

from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, edit

LINK = "lists/subscribers.csv"


def break_the_list(project: Path, target: str) -> Path:
    link = project / LINK
    link.unlink()
    link.symlink_to(target)
    return link


def test_an_issue_whose_list_is_a_broken_link_says_so(project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  signup_lists: [subscribers]\n", "")
    link = break_the_list(project, "../data/subscribers.csv")
    for command in (("validate", SAMPLE_ISSUE), ("send", SAMPLE_ISSUE, "--yes")):
        result = run_cli(*command)
        assert result.code == 2, result.err
        assert (f"{SAMPLE_ISSUE}/issue.yaml:12: list 'subscribers': {LINK} is a broken link: "
                "it points to '../data/subscribers.csv', where there is no file (put the "
                "list file back at data/subscribers.csv, or remove the link (rm "
                f"{LINK}) and put the list file itself in its place)") in result.err.splitlines()
        assert "create " not in result.err
    assert link.is_symlink() and not (project / "data").exists()
    assert not (project / "outbox").exists()


def test_a_signup_list_that_is_a_broken_link_to_outside_says_so(project: Path,
                                                                 run_cli: RunCli) -> None:
    break_the_list(project, "../../moved/subscribers.csv")
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2
    assert ("mirage.yaml:58: 'web.signup_lists' names list 'subscribers': "
            f"{LINK} is a broken link: it points to '../../moved/subscribers.csv', where "
            f"there is no file (remove the link (rm {LINK}) and put the list file itself "
            "in its place: a list must lie inside the project folder)"
            ) in result.err.splitlines()
