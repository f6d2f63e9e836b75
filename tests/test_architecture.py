"""Imports run downhill, in the order the data flows (docs/design.md, "Architecture").

Every module under ``src/mirage_mailer`` is parsed with ``ast`` (no import side effects) and
mapped to its layer: the stage package it sits in, or ``cli`` for ``cli.py`` and ``__main__.py``.
Each import of one of our modules, at any depth (inside functions and ``TYPE_CHECKING`` blocks
too), must go to a layer its own layer may use. A known break of the rule is listed below by
module and target, with the reason and the work that removes it; nothing else is allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "mirage_mailer"
ROOT = "mirage_mailer"

# Which layers each layer may import, besides itself. "root" is ``mirage_mailer/__init__.py``
# (the version). Stages never import the CLI or the web.
ALLOWED: dict[str, frozenset[str]] = {
    "root": frozenset(),
    "util": frozenset(),
    "project": frozenset({"util"}),
    "compose": frozenset({"project", "util"}),
    "delivery": frozenset({"util"}),
    "store": frozenset({"util"}),
    "services": frozenset({"project", "compose", "delivery", "store", "util"}),
    "web": frozenset({"services", "project", "compose", "store", "util"}),
    # The command line parses, calls services and prints: the store, delivery and the
    # composing of messages are reached only through services (which the web shares).
    "commands": frozenset({"root", "services", "project", "util", "web"}),
    "cli": frozenset({"root", "commands", "services", "project", "util", "web"}),
}

# Named exceptions (importing module -> imported module, with the reason and the work that
# removes it). Empty: keep it so; a new entry needs a reason as good as a test's.
EXCEPTIONS: dict[tuple[str, str], str] = {}

# Terminal output belongs to the CLI: no other layer imports these.
CLI_ONLY = frozenset({"click", "rich"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == ROOT, module
    if len(parts) == 1:
        return "root"
    if parts[1] in ("cli", "__main__"):
        return "cli"
    assert parts[1] in ALLOWED, f"{module} is in no layer: add its package to ALLOWED"
    return parts[1]


def _modules() -> dict[str, Path]:
    found = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    assert len(found) > 60, f"too few modules found under {PACKAGE}"
    return found


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``module`` imports (absolute, resolved relative, ``from X import sub``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # ``from mirage_mailer.compose import render`` imports the module compose.render
            found.update(f"{target}.{alias.name}" for alias in node.names
                         if f"{target}.{alias.name}" in known)
    return found


def _ours(name: str) -> bool:
    return name == ROOT or name.startswith(ROOT + ".")


def _matches(pair: tuple[str, str], module: str, target: str) -> bool:
    source, imported = pair
    return ((module == source or module.startswith(source + "."))
            and (target == imported or target.startswith(imported + ".")))


def _excepted(module: str, target: str) -> bool:
    return any(_matches(pair, module, target) for pair in EXCEPTIONS)


def _edges() -> list[tuple[str, str]]:
    modules = _modules()
    known = set(modules)
    return sorted((module, target) for module, path in modules.items()
                  for target in _imports(module, path, known))


def test_every_import_runs_downhill() -> None:
    wrong = [
        f"{module} ({_layer(module)}) imports {target} ({_layer(target)})"
        for module, target in _edges()
        if _ours(target) and _layer(target) != _layer(module)
        and _layer(target) not in ALLOWED[_layer(module)] and not _excepted(module, target)
    ]
    assert wrong == []


def test_the_command_line_reaches_the_store_and_delivery_only_through_services() -> None:
    """The rule above, said on its own: a command that opens the store or a transport itself
    is an operation the web cannot share (and a second outbound path)."""
    wrong = [f"{module} imports {target}" for module, target in _edges()
             if _ours(target) and _layer(module) in ("commands", "cli")
             and _layer(target) in ("store", "delivery", "compose")]
    assert wrong == []


# What the command line does too: the web asks services for it, never the store itself.
SHARED_OPERATIONS = frozenset({"suppress", "add_pending_subscriber", "confirm_subscriber",
                               "forget", "export"})


def test_web_routes_share_the_command_lines_operations_through_services() -> None:
    wrong = []
    for module, path in _modules().items():
        if _layer(module) not in ("web", "commands", "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in SHARED_OPERATIONS
                    and "store" in ast.unparse(node.func.value)):
                wrong.append(f"{module}:{node.lineno} calls {ast.unparse(node.func)}")
    assert wrong == []


def test_every_named_exception_is_still_needed() -> None:
    """An exception that no import uses any more is deleted, so the list only shrinks."""
    edges = _edges()
    unused = [pair for pair in EXCEPTIONS
              if not any(_matches(pair, module, target) for module, target in edges)]
    assert unused == []


def test_only_the_cli_prints_with_click_or_rich() -> None:
    wrong = [f"{module} imports {target}" for module, target in _edges()
             if target.partition(".")[0] in CLI_ONLY
             and _layer(module) not in ("cli", "commands")]
    assert wrong == []


def test_every_package_says_what_it_owns_and_must_not_import() -> None:
    for layer in ALLOWED.keys() - {"root", "cli"}:
        init = PACKAGE / layer / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "must not import" in doc.lower() or "never imports" in doc.lower(), init


def test_no_module_sits_flat_beside_the_stages() -> None:
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "cli.py"]


@pytest.mark.parametrize(("source", "expected"), [
    ("import mirage_mailer.store.core\n", {"mirage_mailer.store.core"}),
    ("from mirage_mailer.compose import render\n",
     {"mirage_mailer.compose", "mirage_mailer.compose.render"}),
    ("def f():\n    from ..store import Store\n", {"mirage_mailer.store"}),
    ("from . import render\n", {"mirage_mailer.compose", "mirage_mailer.compose.render"}),
])
def test_the_scan_sees_every_form_of_import(tmp_path: Path, source: str,
                                            expected: set[str]) -> None:
    sample = tmp_path / "message.py"
    sample.write_text(source, encoding="utf-8")
    known = {"mirage_mailer.compose.render"}
    assert _imports("mirage_mailer.compose.message", sample, known) == expected
