"""The store's page size: new stores take ``PAGE_SIZE`` (a long first plan's pages go through
the WAL a quarter as many times), older ones keep theirs, and what counts pages (the WAL's
checkpoint threshold, the staged plan's private database) follows the file's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirage_mailer.store import Store, core, final_rows


def _pragma(store: Store, name: str) -> int:
    return int(store._conn.execute(f"PRAGMA {name}").fetchone()[0])


def test_a_new_store_takes_the_larger_page(tmp_path: Path) -> None:
    with Store(tmp_path / "t.sqlite") as store:
        assert _pragma(store, "page_size") == core.PAGE_SIZE == 16_384
        # the checkpoint comes at the same WAL size as with 4 KiB pages, not four times later
        assert _pragma(store, "wal_autocheckpoint") == 40_000_000 // 16_384


def test_an_older_store_keeps_its_page_and_its_checkpoint_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.sqlite"
    with monkeypatch.context() as patch:
        patch.setattr(core, "PAGE_SIZE", 4096)  # as every store before this version
        with Store(path) as store:
            store.suppress("old@example.org", source="test")
    with Store(path) as store:
        assert _pragma(store, "page_size") == 4096
        assert _pragma(store, "wal_autocheckpoint") == 40_000_000 // 4096
        assert store.suppressed_keys() == {"old@example.org"}


def test_the_staged_plan_gets_the_stores_cache_and_page(tmp_path: Path) -> None:
    """SQLite gives an attached database a 2 MB cache of 4 KiB pages: the staging thread read
    each chunk's rows back from the file to stage their events (217 MB at a million rows)."""
    with Store(tmp_path / "t.sqlite") as store:
        conn = store._conn
        final_rows.create(conn)
        try:
            schema = final_rows.SCHEMA
            assert _pragma(store, f"{schema}.cache_size") == -core.CACHE_KIB
            assert _pragma(store, f"{schema}.page_size") == _pragma(store, "main.page_size")
        finally:
            final_rows.drop(conn)
