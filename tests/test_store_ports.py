"""The narrow store protocols (``store/ports.py``) fit ``Store``, and cover what the code uses.

``Store`` satisfies each protocol statically (``ports._check_ports``, checked by the strict mypy
run of ``test_quality.py``) and at run time (here, with parameter names too, which mypy does not
compare). Every ``Store`` method called outside ``store/`` must belong to a protocol, and every
protocol method must be called somewhere: a user that reaches for a new method, or a method no
user needs any more, shows up here rather than widening the store's surface unnoticed.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from mirage_mailer import store as store_package
from mirage_mailer.store import (
    BounceStore,
    LeaseStore,
    PersonalData,
    PlanReader,
    RecorderStore,
    ReportReader,
    RosterReader,
    Store,
    SubscriberStore,
    Unsubscriber,
)

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "mirage_mailer"
PROTOCOLS: tuple[type, ...] = (PlanReader, RecorderStore, LeaseStore, ReportReader,
                               RosterReader, Unsubscriber, SubscriberStore, PersonalData,
                               BounceStore)
# Opening and closing belong to whoever opened the Store (``with Store(...)``, ``store.close()``);
# the protocols describe what a user does with a store it was handed. ``ping``: whoever keeps
# a store across requests (the web app) checks its connection before handing it out.
LIFECYCLE = frozenset({"close", "ping"})
# A store is reached through a name or attribute called ``store``, ``_store``, ``…_store``, or
# the result of a call of that name (``ctx.store()``).
_STORE_NAME = re.compile(r"(?:^|_)store$")


def public_methods() -> set[str]:
    return {name for name, value in inspect.getmembers(Store)
            if not name.startswith("_") and inspect.isfunction(value)}


def protocol_methods(protocol: type) -> set[str]:
    return {name for name in dir(protocol)
            if not name.startswith("_") and inspect.isfunction(getattr(protocol, name))}


def _is_store(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return bool(_STORE_NAME.search(node.id))
    if isinstance(node, ast.Attribute):
        return bool(_STORE_NAME.search(node.attr))
    if isinstance(node, ast.Call):
        return _is_store(node.func)
    return False


def store_calls(path: Path, methods: set[str]) -> set[tuple[str, int]]:
    """(method, line) of each call of a ``Store`` method on something named like a store."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {(node.func.attr, node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in methods and _is_store(node.func.value)}


def used_outside_the_store() -> dict[str, list[str]]:
    """Each Store method called outside ``store/``, with where (``path:line``)."""
    methods = public_methods()
    used: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "store":
            continue
        for method, line in store_calls(path, methods):
            used.setdefault(method, []).append(f"{path.relative_to(PACKAGE)}:{line}")
    return used


def test_store_satisfies_every_protocol_at_run_time(tmp_path: Path) -> None:
    with Store(tmp_path / "tracking.sqlite") as store:
        for protocol in PROTOCOLS:
            assert isinstance(store, protocol), protocol.__name__
    assert not isinstance(object(), ReportReader)  # the check is not vacuous


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
def test_protocol_methods_have_the_store_methods_parameters(protocol: type) -> None:
    """Names, kinds and which have defaults: mypy checks the types, not the names."""
    for name in protocol_methods(protocol):
        theirs = inspect.signature(getattr(Store, name)).parameters.values()
        ours = inspect.signature(getattr(protocol, name)).parameters.values()
        assert [(p.name, p.kind, p.default is p.empty) for p in ours] == \
            [(p.name, p.kind, p.default is p.empty) for p in theirs], f"{protocol.__name__}.{name}"


def test_the_protocols_are_exported_and_statically_checked() -> None:
    assert {p.__name__ for p in PROTOCOLS} <= set(store_package.__all__)
    source = (PACKAGE / "store" / "ports.py").read_text(encoding="utf-8")
    check = source[source.index("def _check_ports"):]
    for protocol in PROTOCOLS:
        assert f": {protocol.__name__} = store" in check, protocol.__name__


def test_every_store_method_used_outside_the_store_is_in_a_protocol() -> None:
    used = used_outside_the_store()
    assert len(used) > 20, f"the scan found too little: {sorted(used)}"
    covered = set().union(*(protocol_methods(p) for p in PROTOCOLS))
    assert covered <= public_methods()
    outside = {m: where for m, where in used.items() if m not in covered | LIFECYCLE}
    assert outside == {}, ("these Store methods are called outside store/ but belong to no "
                           "protocol of store/ports.py; add each to the protocol of its user")
    unused = covered - set(used)
    assert unused == set(), "protocol methods no user calls any more: drop them from ports.py"


def test_the_scan_sees_every_way_the_code_reaches_a_store(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(store, ctx, tracking_store, stores, restore):\n"
        "    store.mark_sent(1, 250, 'ok')\n"
        "    self.store.forget('a')\n"
        "    self._store.events()\n"
        "    ctx.store().suppressions()\n"
        "    tracking_store.add_recipients('i', [])\n"
        "    with ctx.store() as store:\n"
        "        store.counts('i')\n"
        "    stores.counts('i')\n"  # not a store by name
        "    restore.close()\n"
        "    outcome.counts('i')\n",
        encoding="utf-8")
    assert {m for m, _ in store_calls(sample, public_methods())} == {
        "mark_sent", "forget", "events", "suppressions", "add_recipients", "counts"}
    assert sorted(line for m, line in store_calls(sample, {"counts"})) == [8]
