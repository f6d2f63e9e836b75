"""``init`` writes the list files owner-only (0600) whatever the umask: they hold readers'
names and addresses once filled in place, as every other such file does (``util.writes``).
mirage.yaml (names of secrets' variables, never a secret; shared through git) and the
templates follow the umask. Real ``init`` subprocesses under umask 000, which made
lists/subscribers.csv 0666 before (0644 under the common 022)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import RunCli, file_mode, umask


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The CLI subprocesses inherit a umask that lets everyone read and write."""
    with umask(0o000):
        yield


@pytest.mark.usefixtures("open_umask")
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_init_writes_the_lists_owner_only(tmp_path: Path, run_cli: RunCli, lang: str) -> None:
    result = run_cli("init", "p", "--name", "Acme", "--contact", "hello@acme.eu",
                     "--lang", lang, cwd=tmp_path)
    assert result.code == 0, result.err
    made = tmp_path / "p"
    lists = sorted((made / "lists").iterdir())
    assert lists  # the sample list, under the project's language's name
    assert {p.name: file_mode(p) for p in lists} == {p.name: 0o600 for p in lists}
    assert "@" in lists[0].read_text(encoding="utf-8")
    assert file_mode(made / "mirage.yaml") == 0o666  # the umask's: no reader in it
    assert file_mode(made / "templates" / "newsletter.html.j2") == 0o666
    assert file_mode(made / ".mirage") == 0o700
