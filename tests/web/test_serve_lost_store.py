"""``serve`` and a lost store. At start, it refuses (exit 2, one line) rather than create an
empty store that answers every genuine one-click unsubscribe "not valid" (providers do not
retry). A store lost while serving: each request refuses it too, so a one-click unsubscribe
is held on disk (202) and recorded once the backup is back, never taken into a new store."""

from __future__ import annotations

import shutil
from pathlib import Path

from web_support import (
    FORM,
    MARIA,
    ONE_CLICK_BODY,
    client_for,
    free_port,
    https_unsubscribe,
    message_to,
    path_of,
    settings_of,
    store_of,
)

from helpers import RunCli
from mirage_mailer.services.held_unsubscribes import record_held, waiting

DB = ".mirage/tracking.sqlite"


def lose_store(root: Path, backup: Path) -> None:
    shutil.copy(root / DB, backup)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / DB}{suffix}").unlink(missing_ok=True)


def test_serve_does_not_start_on_a_lost_store(sent_project: Path, run_cli: RunCli,
                                              tmp_path: Path) -> None:
    lose_store(sent_project, tmp_path / "backup.sqlite")
    served = run_cli("serve", "--port", str(free_port()), cwd=sent_project, timeout=30)
    assert (served.code, served.out) == (2, "")
    assert served.err.splitlines() == [
        f"{DB}: the tracking database is missing, but this project has sent before "
        "(.mirage/sent): a new store would answer every unsubscribe link 'not valid', and "
        "what it took in would be lost when the backup is restored; serve did not start "
        "(restore the database from the backup (docs/operations.md#backups), or start over "
        "on purpose with 'mirage-mailer send ISSUE_DIR --new-store')"]
    assert not (sent_project / DB).exists()


def test_a_one_click_unsubscribe_while_the_store_is_lost_is_held(sent_project: Path,
                                                                  tmp_path: Path) -> None:
    path = path_of(https_unsubscribe(message_to(sent_project, MARIA)))
    backup = tmp_path / "backup.sqlite"
    with client_for(sent_project) as client:  # started while the store was there
        lose_store(sent_project, backup)
        page = client.get(path)
        assert page.status_code == 503  # "try again later", not "this link is not valid"
        response = client.post(path, content=ONE_CLICK_BODY, headers={"Content-Type": FORM})
        assert response.status_code == 202, response.text
    assert not (sent_project / DB).exists()  # no new store made
    state = settings_of(sent_project).state_dir
    assert len(waiting(state)) == 1
    shutil.copy(backup, sent_project / DB)  # the restore
    with store_of(sent_project) as store:
        assert record_held(store, state) == 1
        assert store.is_suppressed(MARIA)
