"""Commands that write files where they are told (init, preview --out, archive --out,
new-issue): a place that cannot be written is one line naming it and the fix, exit 2, never
an internal error. Real CLI runs; the tests run as any user (root too), so the places are
ones nobody can write: a folder under a file, and /proc."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli

FIX = "(choose a folder you can write to)"
PROC = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
INIT_FLAGS = ("--name", "Demo", "--contact", "news@example.org", "--preset", "amif-2014-2020")


def refused(run_cli: RunCli, *args: str, cwd: Path | None = None) -> str:
    """Exit 2 with one line (after the project's own warnings, if any), nothing on stdout."""
    result = run_cli(*args, cwd=cwd)
    assert result.code == 2, result.err
    assert result.out == ""
    lines = [line for line in result.err.splitlines() if ": warning: " not in line]
    assert len(lines) == 1, result.err
    assert lines[0].endswith(FIX), lines[0]
    return lines[0]


@pytest.fixture
def afile(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("not a folder\n", encoding="utf-8")
    return path


def test_init_under_a_file(tmp_path: Path, afile: Path, run_cli: RunCli) -> None:
    line = refused(run_cli, "init", "afile/sub", *INIT_FLAGS, cwd=tmp_path)
    assert line == f"afile/sub: cannot write the project: afile is a file {FIX}"
    bare = run_cli("init", "afile/sub/deeper", cwd=tmp_path, input="")
    assert bare.code == 2 and bare.err == (  # said before anything is asked or noted
        f"afile/sub/deeper: cannot write the project: afile is a file {FIX}\n")
    assert afile.read_text(encoding="utf-8") == "not a folder\n"


@PROC
def test_init_where_no_folder_can_be_made(tmp_path: Path, run_cli: RunCli) -> None:
    line = refused(run_cli, "init", "/proc/mirage-x", *INIT_FLAGS, cwd=tmp_path)
    assert line.startswith("/proc/mirage-x: cannot write the project: ")


def test_preview_out_under_a_file(project: Path, run_cli: RunCli) -> None:
    (project / "afile").write_text("x", encoding="utf-8")
    line = refused(run_cli, "preview", SAMPLE_ISSUE, "--out", "afile/x")
    assert line == f"afile/x: cannot write the preview: afile is a file {FIX}"


@PROC
def test_preview_out_in_proc(project: Path, run_cli: RunCli) -> None:
    line = refused(run_cli, "preview", SAMPLE_ISSUE, "--out", "/proc/mirage-foo")
    assert line.startswith("/proc/mirage-foo: cannot write the preview: ")


@pytest.mark.parametrize("out", ["afile/x", "/proc/mirage-x"])
def test_archive_out_that_cannot_be_written(project: Path, run_cli: RunCli, out: str) -> None:
    if out.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc")
    (project / "afile").write_text("x", encoding="utf-8")
    assert run_cli("send", SAMPLE_ISSUE, "--yes").code == 0  # one issue in the archive
    line = refused(run_cli, "archive", "--out", out, "--base-url", "https://news.example.org")
    assert line.startswith(f"{out}: cannot write the archive: ")


def test_new_issue_whose_folder_cannot_be_made(project: Path, run_cli: RunCli) -> None:
    (project / "issues/2021-11-next").symlink_to("/nonexistent/mirage-target")
    line = refused(run_cli, "new-issue", "2021-11-next")
    assert "issues/2021-11-next: cannot write the new issue: File exists" in line
