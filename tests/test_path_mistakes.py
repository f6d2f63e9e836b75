"""A path the system cannot take as written (a 300-character name, a loop of links) is an input
mistake: one line naming the path and the fix, exit 2, nothing sent; never "internal error"
(exit 70). Real CLI runs on the scaffolded project."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit

LONG = "a" * 300
TOO_LONG = ("has a name of 300 bytes; a file or folder name may have at most 255 (check the path "
            "given as an argument, --config, --out or in mirage.yaml: it is likely pasted or "
            "mistyped)")


def one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines()
             if ": warning: " not in line and not line.startswith("mirage-mailer: using ")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("args", [
    ("validate", LONG),
    ("preview", f"issues/{LONG}"),
    ("send", LONG, "--yes"),
    ("send", LONG, "--dry-run"),
    ("report", LONG),
    ("--config", f"{{tmp}}/{LONG}/mirage.yaml", "validate"),
    ("preview", "--out", f"{{tmp}}/{LONG}"),
])
def test_an_over_long_name_is_one_line_and_exit_2(project: Path, run_cli: RunCli,
                                                   args: tuple[str, ...]) -> None:
    result = run_cli(*(arg.replace("{tmp}", str(project.parent)) for arg in args))
    assert result.code == 2, result.err
    line = one_error(result.err)
    assert line.endswith(": " + TOO_LONG), line
    assert "internal error" not in line and len(line) < 300


def test_an_over_long_tracking_database_stops_send_before_anything_is_sent(
        project: Path, run_cli: RunCli) -> None:
    edit(project / "mirage.yaml", "  database: .mirage/tracking.sqlite",
         f"  database: .mirage/{LONG[:-7]}.sqlite")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 2, result.err
    assert one_error(result.err) == (".mirage/" + "a" * 51 + "\u2026: " + TOO_LONG)
    assert not (project / "outbox").exists()


def test_a_config_that_is_a_loop_of_links_is_named(project: Path, run_cli: RunCli) -> None:
    (project / "loop1").symlink_to("loop2")
    (project / "loop2").symlink_to("loop1")
    result = run_cli("--config", "loop1", "validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    assert one_error(result.err) == ("loop1: is a loop of symbolic links (point the link at a "
                                     "real file or folder, or remove it)")
