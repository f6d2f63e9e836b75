"""``~`` in a path of mirage.yaml is the home folder, for every path key, as a shell reads it:
``maildir:~/Maildir`` and ``database: ~/mirage/tracking.sqlite`` once made folders named
``~`` inside the project (where .gitignore does not cover them), while ``ca_file`` was
expanded. Real CLI runs with HOME pointed into tmp_path."""

from __future__ import annotations

from pathlib import Path

from helpers import SAMPLE_ISSUE, RunCli, edit


def test_tilde_is_the_home_folder_for_the_maildir_and_the_database(
        project: Path, run_cli: RunCli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = project / "mirage.yaml"
    edit(config, "  url: maildir:outbox", '  url: "maildir:~/Maildir"')
    edit(config, "  database: .mirage/tracking.sqlite", "  database: ~/mirage/tracking.sqlite")
    result = run_cli("send", SAMPLE_ISSUE, "--yes", env={"HOME": str(home)})
    assert result.code == 0, result.err
    assert len(list((home / "Maildir/new").iterdir())) == 5
    assert (home / "mirage/tracking.sqlite").is_file()
    assert not (project / "~").exists()
    shown = run_cli("report", SAMPLE_ISSUE, "--format", "json", env={"HOME": str(home)})
    assert '"sent": 5' in shown.out  # the same store is read again


def test_tilde_in_templates_is_outside_the_project(project: Path, run_cli: RunCli,
                                                   tmp_path: Path) -> None:
    """Read as every other path, ``~/templates`` is the home folder's, not the project's
    folder named ``~``: refused as outside the project, not silently looked up in ./~/."""
    (project / "~").mkdir()
    (project / "templates").rename(project / "~/templates")
    text = (project / "mirage.yaml").read_text(encoding="utf-8")
    (project / "mirage.yaml").write_text(text + "templates: ~/templates\n", encoding="utf-8")
    result = run_cli("validate", SAMPLE_ISSUE, env={"HOME": str(tmp_path)})
    assert result.code == 2
    assert "'templates' '~/templates' is outside the project folder" in result.err


def test_database_naming_a_folder_is_a_config_error_for_every_command(
        project: Path, run_cli: RunCli) -> None:
    """``database: .mirage`` (the state folder, not the file in it): ``send --dry-run`` said
    "disk I/O error: check it" with exit 3 (a rerun resumes), ``validate`` passed."""
    edit(project / "mirage.yaml", "  database: .mirage/tracking.sqlite", "  database: .mirage")
    line = ("mirage.yaml:34: 'tracking.database' '.mirage' is a folder (name the database "
            "file, e.g. .mirage/tracking.sqlite)")
    for args in (("send", SAMPLE_ISSUE, "--dry-run"), ("validate", SAMPLE_ISSUE), ("run-due",)):
        result = run_cli(*args)
        assert result.code == 2, (args, result.err)
        assert line in result.err.splitlines(), (args, result.err)


def test_maildir_naming_a_file_is_a_config_error(project: Path, run_cli: RunCli) -> None:
    """``maildir:`` at a file (or below one) can never be made: send said exit 3 ("rerun to
    resume") and validate passed."""
    edit(project / "mirage.yaml", "  url: maildir:outbox", "  url: maildir:mirage.yaml/out")
    line = ("mirage.yaml:17: 'transport.url' 'maildir:mirage.yaml/out': mirage.yaml is a file, "
            "not a folder (name a folder for the Maildir, e.g. maildir:outbox)")
    for args in (("send", SAMPLE_ISSUE, "--yes"), ("validate", SAMPLE_ISSUE)):
        result = run_cli(*args)
        assert result.code == 2, (args, result.err)
        assert line in result.err.splitlines(), (args, result.err)
