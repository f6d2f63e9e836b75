"""A `*_env` key names an environment variable; a password pasted there instead is refused at
config load (`mirage.yaml:LINE`, exit 2) and never printed back: the line lands in cron mail
and logs. The same for the commands' `--password-env`."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli, edit
from mirage_mailer.util.envnames import is_env_name

PASSWORD = "Sup3rS3cretPassw0rd"


@pytest.mark.parametrize("name", [
    "MIRAGE_SMTP_PASSWORD", "mirage_smtp_password", "_X", "SMTP2", "AWS_S3_KEY",
    "MIRAGE_2FA_CODE", "hunter2",
])
def test_names_as_people_write_them_are_names(name: str) -> None:
    assert is_env_name(name)


@pytest.mark.parametrize("value", [
    PASSWORD, "MyPassword", "a3f9c2e17b4d", "9ABC", "pass word", "p@ss", "", "A" * 101,
])
def test_passwords_and_tokens_are_not_names(value: str) -> None:
    assert not is_env_name(value)


def one_line(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": warning: " not in line]


def test_a_password_in_password_env_is_refused_and_never_shown(project: Path,
                                                              run_cli: RunCli) -> None:
    """The audit's case: the user variable is set, so the old message named the 'variable'
    that was not set: the password itself."""
    edit(project / "mirage.yaml", "password_env: MIRAGE_SMTP_PASSWORD", f"password_env: {PASSWORD}")
    edit(project / "mirage.yaml", "url: maildir:outbox", "url: smtp://127.0.0.1:2525")
    env = {"MIRAGE_SMTP_USER": "bob"}
    for args in (("send", SAMPLE_ISSUE, "--yes"), ("validate", SAMPLE_ISSUE)):
        result = run_cli(*args, env=env)
        assert result.code == 2, result.err
        assert PASSWORD not in result.out + result.err
        assert one_line(result.err) == [
            "mirage.yaml:20: 'transport.password_env' must name an environment variable "
            "(letters, digits and _, in one case, e.g. MIRAGE_SMTP_PASSWORD); what is written "
            "there is not shown, as it may be the secret itself (write the variable's name and "
            "put the value in that variable; if a real password or key was written here, "
            "change it: it is in mirage.yaml and its backups)"], result.err
    assert not (project / "outbox").exists() or not any((project / "outbox").rglob("*.eml"))


def test_every_env_key_refuses_a_value_with_its_line(project: Path, run_cli: RunCli) -> None:
    config = project / "mirage.yaml"
    edit(config, "  username_env: MIRAGE_SMTP_USER", "  username_env: Bob2024Smith")
    edit(config, "  database: .mirage/tracking.sqlite",
         "  database: .mirage/tracking.sqlite\n  secret_env: a3f9c2e17b4d90aa")
    edit(config, "  report_password_hash_env: MIRAGE_REPORT_PASSWORD_HASH",
         "  report_password_hash_env: Hunter2Hunter2")
    config.write_text(config.read_text() + (
        "dkim:\n  domain: mirageproject.eu\n  selector: news\n  key_env: MyDkimKey9\n"
        "bounces:\n  address: bounces@mirageproject.eu\n  password_env: Tr0ub4dor\n"
        "  username_env: BOUNCE_USER\n"))
    lines = config.read_text().splitlines()

    def line_of(text: str) -> int:
        return next(n for n, line in enumerate(lines, start=1) if text in line)

    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 2, result.err
    for value in ("Bob2024Smith", "a3f9c2e17b4d90aa", "Hunter2Hunter2", "MyDkimKey9",
                  "Tr0ub4dor"):
        assert value not in result.out + result.err
    found = {line.split(" must ")[0] for line in one_line(result.err)}
    assert found == {
        f"mirage.yaml:{line_of('Bob2024Smith')}: 'transport.username_env'",
        f"mirage.yaml:{line_of('a3f9c2e17b4d90aa')}: 'tracking.secret_env'",
        f"mirage.yaml:{line_of('Hunter2Hunter2')}: 'web.report_password_hash_env'",
        f"mirage.yaml:{line_of('MyDkimKey9')}: 'dkim.key_env'",
        f"mirage.yaml:{line_of('Tr0ub4dor')}: 'bounces.password_env'",
    }, result.err


def test_a_password_given_as_password_env_option_is_not_shown(project: Path,
                                                             run_cli: RunCli) -> None:
    (project / "inbox").mkdir()
    unsub = run_cli("process-unsubscribes", "--imap", "imaps://bob@127.0.0.1/INBOX",
                    "--password-env", PASSWORD)
    moved = run_cli("store", "migrate", "--to", "postgresql://mirage@127.0.0.1/news",
                    "--password-env", PASSWORD)
    for result in (unsub, moved):
        assert result.code == 2, result.err
        assert PASSWORD not in result.out + result.err
        assert one_line(result.err) == [
            "--password-env: must name an environment variable (letters, digits and _, in one "
            f"case, e.g. {'MIRAGE_IMAP_PASSWORD' if result is unsub else 'MIRAGE_DB_PASSWORD'})"
            "; what was given is not shown, as it may be the secret itself (give the "
            "variable's name, e.g. --password-env "
            f"{'MIRAGE_IMAP_PASSWORD' if result is unsub else 'MIRAGE_DB_PASSWORD'}, and put "
            "the value in that variable)"], result.err
