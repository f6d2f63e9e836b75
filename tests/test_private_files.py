"""Files the program writes that hold readers' addresses are owner-only (0600) whatever the
umask, as docs/guide/sending.md asks to keep them private: ``send --dry-run --csv PATH``,
``report --format html --out FILE`` (a new file or one already there with a wider mode), the
preview's files; the Maildir folders it makes are 0700.
Real CLI subprocesses on the sample project (Maildir outbox, SQLite store), run under the
common umask 022, which made them 0644 before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, file_mode, umask


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The CLI subprocesses inherit a umask that leaves files readable by everyone."""
    with umask(0o022):
        yield


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing-0644"])
def test_dry_run_csv_is_owner_only(project: Path, run_cli: RunCli, existing: bool) -> None:
    target = project / "plan.csv"
    if existing:
        target.write_text("old\n", encoding="utf-8")
        target.chmod(0o644)
    result = run_cli("send", SAMPLE_ISSUE, "--dry-run", "--csv", "plan.csv")
    assert result.code == 0, result.err
    assert target.read_text(encoding="utf-8").startswith("email,name,lang,list,decision,")
    assert file_mode(target) == 0o600


def test_html_report_is_owner_only(project: Path, run_cli: RunCli) -> None:
    """An issue not sent yet is enough: the mode does not depend on the page's rows."""
    out = project / "reports" / "report.html"
    result = run_cli("report", SAMPLE_ISSUE, "--format", "html", "--out", "reports/report.html")
    assert result.code == 0, result.err
    assert "<html" in out.read_text(encoding="utf-8")
    assert file_mode(out) == 0o600


def test_preview_files_are_owner_only(project: Path, run_cli: RunCli) -> None:
    """Were 0644 (0666 under umask 000): a reader's name, address and personal unsubscribe
    link. Every file, images included: one rule, and the sample reader's cost nothing."""
    out = project / "preview/2021-10-partners-meeting"
    result = run_cli("preview", SAMPLE_ISSUE, "--recipient", "jean.dupont@example.org")
    assert result.code == 0, result.err
    assert "To: Jean Dupont <jean.dupont@example.org>" in (out / "fr.eml").read_text()
    files = sorted(out.iterdir())
    assert len(files) > 6  # <lang>.html, .txt, .eml for en and fr, and the images
    assert {path.name: file_mode(path) for path in files} == {path.name: 0o600 for path in files}


def test_maildir_folders_it_makes_are_owner_only(project: Path, run_cli: RunCli,
                                                 tmp_path: Path) -> None:
    """outbox/, new/, tmp/ and cur/ were 0755 (0777 under umask 000), around messages that
    are 0600. Made here: 0700. A Maildir that exists already keeps its mode (a shared
    mailbox someone else set up): only the folders missing from it are made, owner-only."""
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 0, result.err
    outbox = project / "outbox"
    for folder in (outbox, outbox / "new", outbox / "tmp", outbox / "cur"):
        assert file_mode(folder) == 0o700, folder
    shared = tmp_path / "shared"
    (shared / "new").mkdir(parents=True)
    shared.chmod(0o750)
    (shared / "new").chmod(0o770)
    config = project / "mirage.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "url: maildir:outbox", f"url: maildir:{shared}"), encoding="utf-8")
    result = run_cli("send", SAMPLE_ISSUE, "--to", "test@example.org")
    assert result.code == 0, result.err
    assert (file_mode(shared), file_mode(shared / "new")) == (0o750, 0o770)
    assert (file_mode(shared / "tmp"), file_mode(shared / "cur")) == (0o700, 0o700)
