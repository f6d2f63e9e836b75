"""Dataclasses built from the code kept since the last run (``util.classcode``): a second run
compiles none of their methods again, and the classes are the ones a fresh compile gives."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE
from mirage_mailer.util import classcode
from mirage_mailer.util.classcode import ClassCode

# Python 3.13's dataclasses compile one text per class (all its methods, ``_FuncBuilder``);
# 3.11 and 3.12 one text per method
ONE_TEXT_PER_CLASS = sys.version_info >= (3, 13)


def _send_dry_run(project: Path, store: Path) -> dict[str, int]:
    """A real ``send --dry-run`` through ``__main__``, the kept code in ``store``."""
    code = textwrap.dedent(f"""
        import json, sys
        from mirage_mailer.util import classcode
        classcode.store_path = lambda: __import__("pathlib").Path({str(store)!r})
        sys.dont_write_bytecode = False  # as an installed package runs
        sys.argv = ["mirage-mailer", "send", {SAMPLE_ISSUE!r}, "--dry-run"]
        from mirage_mailer.__main__ import main
        try:
            main()
        except SystemExit as exc:
            codes = classcode.install()
            print(json.dumps({{"exit": exc.code, "compiled": codes.compiled,
                              "reused": codes.reused}}), file=sys.stderr)
            raise
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                          text=True, timeout=60, check=False)
    result: dict[str, int] = json.loads(proc.stderr.strip().splitlines()[-1])
    assert result["exit"] == 0, proc.stderr
    return result


def test_a_second_run_compiles_no_dataclass_method(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "kept.classcode"
    first = _send_dry_run(project, store)
    # a send defines some 75 classes, each with a few methods
    assert first["compiled"] > (60 if ONE_TEXT_PER_CLASS else 100)
    assert store.is_file()
    second = _send_dry_run(project, store)
    assert second == {"exit": 0, "compiled": 0,
                      "reused": first["compiled"] + first["reused"]}


def _define(codes: ClassCode | None, monkeypatch: pytest.MonkeyPatch) -> list[type]:
    """The same classes, built through ``codes`` (or as Python alone builds them)."""
    with monkeypatch.context() as patch:
        if codes is not None:
            patch.setattr(dataclasses, "exec", codes.exec, raising=False)

        @dataclasses.dataclass(frozen=True)
        class Frozen:
            name: str
            tags: tuple[str, ...] = ()
            size: int = dataclasses.field(default=0, compare=False)

        @dataclasses.dataclass(order=True)
        class Mutable:
            count: int
            items: list[str] = dataclasses.field(default_factory=list)
            _: dataclasses.KW_ONLY
            note: str | None = None

        return [Frozen, Mutable]


METHODS = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__",
           "__lt__", "__ge__")


def test_classes_from_kept_code_are_the_classes_python_builds(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = tmp_path / "kept.classcode"
    writer = ClassCode(store)
    _define(writer, monkeypatch)
    assert writer.compiled == (2 if ONE_TEXT_PER_CLASS else 13) and writer.reused == 0
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    writer.save()
    reader = ClassCode(store)
    kept = _define(reader, monkeypatch)
    assert reader.compiled == 0 and reader.reused == writer.compiled
    fresh = _define(None, monkeypatch)
    for ours, theirs in zip(kept, fresh, strict=True):
        for name in METHODS:
            method, original = ours.__dict__.get(name), theirs.__dict__.get(name)
            assert (method is None) == (original is None), name
            if method is not None and hasattr(method, "__code__"):
                assert method.__code__ == original.__code__, name
                # __repr__ is wrapped (recursion guard): the generated code is inside
                assert inspect.unwrap(method).__code__ == inspect.unwrap(original).__code__, name
    frozen, mutable = kept
    assert repr(frozen("a", ("x",), 3)) == repr(fresh[0]("a", ("x",), 3)) == \
        "_define.<locals>.Frozen(name='a', tags=('x',), size=3)"
    assert frozen("a", size=1) == frozen("a", size=2)
    assert hash(frozen("a", size=1)) == hash(frozen("a", size=2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        frozen("a").name = "b"  # type: ignore[misc]
    assert mutable(1) < mutable(2) and mutable(1, note="n").items == []
    assert mutable(1).items is not mutable(1).items


@pytest.mark.parametrize("content", [b"", b"not marshal at all",
                                     b"\x00\x00\x00\x00cpython-27\n{}",
                                     classcode._HEADER + b"\xff\xfe broken"])
def test_a_damaged_or_foreign_file_counts_as_none_and_is_replaced(
        content: bytes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = tmp_path / "kept.classcode"
    store.write_bytes(content)
    codes = ClassCode(store)
    assert codes.codes == {}
    _define(codes, monkeypatch)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    codes.save()
    assert len(ClassCode(store).codes) == codes.compiled > 0


def test_nothing_is_written_where_python_writes_no_byte_code(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = tmp_path / "kept.classcode"
    codes = ClassCode(store)
    _define(codes, monkeypatch)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # PYTHONDONTWRITEBYTECODE
    codes.save()
    assert not store.exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    (tmp_path / "read-only").mkdir(mode=0o500)
    ClassCode(tmp_path / "read-only" / "x" / "kept.classcode").save()  # no error, no file
    assert list((tmp_path / "read-only").iterdir()) == []


def test_a_file_grown_past_its_bound_keeps_only_what_the_last_run_used(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Code edited often leaves texts no class has any more: the file does not grow on."""
    store = tmp_path / "kept.classcode"
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    old = ClassCode(store)
    old.codes = {f"def __create_fn__():\n def gone{n}(): pass\n return gone{n}":
                 compile("pass", "<string>", "exec") for n in range(5)}
    _define(old, monkeypatch)
    old.save()
    assert len(ClassCode(store).codes) == 5 + old.compiled
    run = ClassCode(store)
    _define(run, monkeypatch)
    run.exec("def __create_fn__():\n def new(): pass\n return new", {}, {})  # compiles one
    monkeypatch.setattr(classcode, "MAX_TEXTS", 5)
    run.save()
    kept = ClassCode(store).codes
    assert run.compiled == 1 and set(kept) == run.used
    assert not any("gone" in text for text in kept) and len(kept) == old.compiled + 1
