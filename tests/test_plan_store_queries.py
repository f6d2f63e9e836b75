"""What planning asks the store: nothing per row before an issue's first send, and nothing
more than one look-up per row on a rerun whose list did not change (issue 13: planning a
million rows). The decisions and the store rows stay exactly what they were. On both backends:
``store._conn`` traces statements and counts changed rows on PostgreSQL as sqlite3 does."""

from __future__ import annotations

import gc
import random
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE
from mirage_mailer.services import planning
from mirage_mailer.services.loader import open_project
from mirage_mailer.services.planning import Planner, PlanOptions, changes
from mirage_mailer.store import NewRecipient, Store
from mirage_mailer.util.database import Database
from mirage_mailer.util.gcquiet import BULK_THRESHOLD

LIST = "lists/subscribers.csv"


def _statements(store: Store) -> list[str]:
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    return seen


def _subject(address: str) -> str:
    return "s-" + address.lower()


def _plan(store: Store, *, reconcile: bool = True) -> list[NewRecipient | str]:
    project = open_project(None, Path(SAMPLE_ISSUE))
    planner = Planner(project, store, PlanOptions())
    written = list(changes(planner, _subject))
    if reconcile:
        store.reconcile(project.issue.id, written)
    return written


def _rows(store: Store) -> list[tuple[object, ...]]:
    return store._conn.execute(
        "SELECT id, email, email_key, name, lang, list_name, fields, status, subject,"
        " smtp_response FROM recipients ORDER BY id").fetchall()


def test_a_first_plan_asks_the_store_nothing_per_row(in_project: Path, store_url: Database) -> None:
    with Store(store_url) as store:
        asked = _statements(store)
        written = _plan(store, reconcile=False)
        store._conn.set_trace_callback(None)
    assert len(written) == 5
    assert not [s for s in asked if "email_key IN" in s]  # no priors, no rows gone
    assert not [s for s in asked if "ORDER BY id LIMIT" in s]


def test_an_unchanged_list_writes_nothing_on_a_rerun(in_project: Path, store_url: Database) -> None:
    with Store(store_url) as store:
        _plan(store)
        before = _rows(store)
        changes_before = store._conn.total_changes
        asked = _statements(store)
        assert _plan(store) == []  # the same list: not one row to reconcile
        store._conn.set_trace_callback(None)
        assert store._conn.total_changes == changes_before
        assert _rows(store) == before
    # every stored row was met in the list: none can have left it, none is read again
    assert not [s for s in asked if "SELECT id, email, email_key, status" in s]
    # and each was met along the ids, in pages, not looked up by address (priors_after)
    assert not [s for s in asked if "email_key IN" in s]
    assert [s for s in asked if "id > " in s]


def test_a_rerun_still_writes_what_changed(in_project: Path, store_url: Database) -> None:
    with Store(store_url) as store:
        _plan(store)
        lines = (in_project / LIST).read_text(encoding="utf-8").splitlines(keepends=True)
        renamed = lines[1].replace("Maria Georgiou", "Maria G.")
        moved = lines[2].replace(",fr,", ",en,")
        (in_project / LIST).write_text("".join([lines[0], renamed, moved, *lines[4:]]),
                                       encoding="utf-8")
        written = _plan(store)
        rows = {r[1]: r for r in _rows(store)}
        # a new signing key gives every pending row a new subject: each is written again
        rekeyed = _plan_with(store, lambda a: "k2-" + a.lower())
    assert [w.email if isinstance(w, NewRecipient) else w for w in written] == [
        "maria.georgiou@example.org", "jean.dupont@example.org", "amina.haddad@example.org"]
    assert rows["maria.georgiou@example.org"][3] == "Maria G."
    assert rows["jean.dupont@example.org"][4] == "en"
    assert rows["amina.haddad@example.org"][7] == "withdrawn"
    assert len([w for w in rekeyed if isinstance(w, NewRecipient)]) == 4


def _plan_with(store: Store, subject: object) -> list[NewRecipient | str]:
    project = open_project(None, Path(SAMPLE_ISSUE))
    written = list(changes(Planner(project, store, PlanOptions()), subject))  # type: ignore[arg-type]
    store.reconcile(project.issue.id, written)
    return written


def test_rows_closed_to_list_edits_are_not_sent_to_the_store(
        in_project: Path, store_url: Database) -> None:
    with Store(store_url) as store:
        _plan(store)
        store._conn.execute("UPDATE recipients SET status = 'sent', name = 'Old'"
                            " WHERE email = 'peter.novak@example.org'")
        store._conn.execute("UPDATE recipients SET status = 'pending', name = 'Old'"
                            " WHERE email = 'maria.georgiou@example.org'")
        store._conn.execute("UPDATE recipients SET status = 'suppressed', name = 'Old'"
                            " WHERE email = 'sofia.rossi@example.org'")
        written = _plan(store)
        rows = {r[1]: r for r in _rows(store)}
    # the sent and suppressed rows keep what they had; the pending one follows the list
    assert [w.email for w in written if isinstance(w, NewRecipient)] == [
        "maria.georgiou@example.org"]
    assert rows["peter.novak@example.org"][3] == "Old"
    assert rows["sofia.rossi@example.org"][3] == "Old"
    assert rows["maria.georgiou@example.org"][3] == "Maria Georgiou"


def _decisions(store: Store, *, in_order: bool) -> list[tuple[object, ...]]:
    project = open_project(None, Path(SAMPLE_ISSUE))
    planner = Planner(project, store, PlanOptions())
    if not in_order:
        planner._in_order = planner._priors  # type: ignore[method-assign]
    return [(d.key, d.kind, d.status, d.reason, d.where, d.prior) for d in planner]


def test_a_rerun_reading_rows_in_id_order_decides_as_looking_each_up(
        in_project: Path, store_url: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows found along the ids are the rows the address look-up finds, whatever the list
    became since the first plan: rows added in front and amid it, rows left out, blocks
    moved, the whole list shuffled; pages much smaller than the batch and larger."""
    rng = random.Random(17)
    people = [f"Reader{n}@Example{n % 9}.org,Reader {n},{rng.choice(['en', 'fr', ''])}"
              for n in range(700)]
    path = in_project / LIST
    path.write_text("email,name,lang\n" + "\n".join(people) + "\n", encoding="utf-8")
    with Store(store_url) as store:
        _plan(store)
        store.reconcile("another-issue", [  # the same people, rows of another issue after
            NewRecipient(p.split(",")[0], "Other", None, "subscribers") for p in people])
        edits = [
            [f"new{n}@example.org,New,en" for n in range(600)] + people,  # many in front
            people[:300] + people[400:] + [f"late{n}@example.org,,fr" for n in range(50)],
            people[350:] + people[:350],  # a block moved
            rng.sample(people, len(people)),  # reordered throughout
            [p for p in people if rng.random() < 0.5] + people[:20],  # gaps and duplicates
        ]
        for batch in (7, 500):
            monkeypatch.setattr(planning, "_BATCH", batch)
            for rows in edits:
                path.write_text("email,name,lang\n" + "\n".join(rows) + "\n", encoding="utf-8")
                ordered = _decisions(store, in_order=True)
                assert ordered == _decisions(store, in_order=False)
                assert sum(1 for d in ordered if d[5] is not None) >= 300


def test_the_plan_runs_with_the_cycle_collector_held_back(in_project: Path,
                                                         store_url: Database) -> None:
    """Planning a long list is a bulk pass (util/gcquiet.py): 2 s of 15.6 s of CPU at 1M rows."""
    before = gc.get_threshold()
    project = open_project(in_project / "mirage.yaml", in_project / SAMPLE_ISSUE)
    with Store(store_url) as store:
        seen = [gc.get_threshold()[0] for _ in Planner(project, store, PlanOptions())]
    assert seen and set(seen) == {BULK_THRESHOLD}
    assert gc.get_threshold() == before
