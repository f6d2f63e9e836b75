"""The sample project at the repository root must not drift from the scaffold `init` writes."""

from __future__ import annotations

from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.project.scaffold import GITIGNORE, scaffold_files

ROOT = Path(__file__).resolve().parent.parent


def test_repository_sample_equals_the_scaffold() -> None:
    files = scaffold_files()
    assert len(files) >= 10
    for rel, packaged in files:
        assert (ROOT / rel).read_bytes() == packaged.read_bytes(), f"{rel} drifted"


def test_init_writes_a_project_that_validates(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("init", "fresh", cwd=tmp_path)
    assert result.code == 0, result.err
    assert (tmp_path / "fresh/.gitignore").read_text() == GITIGNORE
    checked = run_cli("validate", SAMPLE_ISSUE, cwd=tmp_path / "fresh")
    assert checked.code == 0, checked.err


def test_init_never_overwrites(project: Path, run_cli: RunCli) -> None:
    before = (project / "mirage.yaml").read_bytes()
    result = run_cli("init", str(project))
    assert result.code == 2
    assert "already exists; init never overwrites files" in result.err
    assert (project / "mirage.yaml").read_bytes() == before


def test_sample_article_is_the_mirage_meeting() -> None:
    text = (ROOT / SAMPLE_ISSUE / "partners-meeting.md").read_text(encoding="utf-8")
    for needle in ("title: MIraGE partners' meeting, October 2021", "15 October 2021",
                   "hybrid", "Center of Social Innovation", "Cyprus", "online",
                   "safe space", "stereotypes", "advocacy for migrants' rights"):
        assert needle in text
    assert "Asylum, Migration and Integration Fund" not in text  # the block adds it
