"""What the render's libraries derive from the templates' text, kept from one run to the next
(``util.kept``): a second run computes none of it again and renders the same bytes, a damaged
or foreign file is ignored and replaced, and kept template code still names its own file."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE
from mirage_mailer.compose import css_kept, sandbox
from mirage_mailer.compose.render import inline_css, template_env
from mirage_mailer.compose.sandbox import template_frame
from mirage_mailer.util import kept, marshal_file

KINDS = ("premailer-rules", "premailer-pairs", "image-float", "style-rules", "jinja-code",
         "locale-dates", "text-direction")


# imported only to compute what is not kept yet (babel's dates, with zoneinfo), or never on
# the way to a message (importlib.resources' reader: the emblem is read as a file)
WATCHED = ("babel.dates", "zoneinfo", "importlib.resources", "zipfile")


def _cli(project: Path, store: Path, *args: str) -> dict[str, list[int]]:
    """A real CLI run through ``__main__``, the kept values in ``store``; returns each kind's
    (computed, reused) counts and the babel locales the run loaded."""
    code = textwrap.dedent(f"""
        import json, pathlib, sys
        from mirage_mailer.util import kept
        kept.store_dir = lambda: pathlib.Path({str(store)!r})
        sys.dont_write_bytecode = False  # as an installed package runs
        sys.argv = ["mirage-mailer", *{list(args)!r}]
        from mirage_mailer.__main__ import main
        try:
            main()
        except SystemExit as exc:
            import babel.localedata
            report = {{"exit": [exc.code], "locales": sorted(babel.localedata._cache),
                      "modules": [m for m in {list(WATCHED)!r} if m in sys.modules],
                      **kept.counts()}}
            kept.save_all()
            print(json.dumps(report), file=sys.stderr)
            raise
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                          text=True, timeout=60, check=False)
    result: dict[str, list[int]] = json.loads(proc.stderr.strip().splitlines()[-1])
    assert result["exit"] == [0], proc.stderr
    return result


def _preview(project: Path, store: Path, out: Path) -> dict[str, list[int]]:
    result = _cli(project, store, "preview", SAMPLE_ISSUE, "--out", str(out))
    return result


def _parts(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.suffix in (".html", ".txt")}


def test_a_second_run_computes_nothing_again_and_renders_the_same_bytes(
        project: Path, tmp_path: Path) -> None:
    store = tmp_path / "kept"
    first = _preview(project, store, tmp_path / "first")
    for name in KINDS:
        assert first[name][0] > 0, name  # computed, and written at exit
        assert (store / kept.file_name(name)).is_file()
    second = _preview(project, store, tmp_path / "second")
    for name in KINDS:
        assert second[name] == [0, first[name][0] + first[name][1]], name
    assert second["locales"] == []  # no CLDR data loaded at all (the first run: root, en, fr)
    assert first["locales"] != []
    assert first["modules"][:2] == ["babel.dates", "zoneinfo"]
    send = _cli(project, store, "send", SAMPLE_ISSUE, "--dry-run")  # (preview loads the
    assert send["modules"] == [] and send["locales"] == []  # scaffold, by importlib.resources)
    assert all(send[name][0] == 0 for name in KINDS)
    assert _parts(tmp_path / "first") == _parts(tmp_path / "second")
    assert len(_parts(tmp_path / "first")) == 4


def test_a_damaged_or_foreign_file_is_ignored_and_replaced(project: Path,
                                                           tmp_path: Path) -> None:
    store = tmp_path / "kept"
    clean = _preview(project, store, tmp_path / "clean")
    for name in KINDS:  # garbage, and a good file's values under another library version
        path = store / kept.file_name(name)
        path.write_bytes(b"not a kept file" if name != "jinja-code"
                         else path.read_bytes().replace(b"jinja2=", b"jinja2=0"))
    damaged = _preview(project, store, tmp_path / "damaged")
    for name in KINDS:  # everything computed again, as by a first run
        assert damaged[name] == clean[name], name
    assert _parts(tmp_path / "damaged") == _parts(tmp_path / "clean")
    for name in KINDS:  # and replaced by a file the next run reads
        kind = next(k for k in kept._KINDS if k.kind == name)
        assert marshal_file.read(store / kept.file_name(name), kind.header), name


@pytest.fixture
def kept_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as an installed package runs
    store = tmp_path / "kept"
    kept.install(store)
    try:
        yield store
    finally:
        kept.uninstall()


def test_a_value_of_the_wrong_shape_is_computed_again(kept_in: Path) -> None:
    """A file with the right header but values no run wrote (edited by hand, another
    version of ours) is not trusted value by value."""
    css = "p { color: red }"
    page = f"<html><head><style>{css}</style></head><body><p>x</p></body></html>"
    expected = inline_css(page)
    css_kept.RULES.values = {key: ([("bad",)], 3, None) for key in css_kept.RULES.values}
    css_kept.PAIRS.values = {key: "color" for key in css_kept.PAIRS.values}
    assert inline_css(page) == expected


PAGE = """<!DOCTYPE html>
<html><head><style>
p { color: #111; margin: 0 }
.lead { font-size: 18px !important; color: #222 }
a:hover { color: red }
td p, h2 { line-height: 1.4 }
@media (max-width: 600px) { .lead { font-size: 16px } table { width: 100% } }
</style></head>
<body><h2>T</h2><p class="lead" style="color: #333">x</p><table><tr><td><p>y</p>
<a href="https://example.org">z</a></td></tr></table></body></html>"""


def test_premailer_kept_gives_premailer_own_bytes(kept_in: Path) -> None:
    """The kept rules, leftover media rules and declaration pairs: cold, warm and from the
    file in a fresh process all give what premailer alone gives."""
    kept.uninstall()
    alone = inline_css(PAGE)
    kept.install(kept_in)
    cold = inline_css(PAGE)
    warm = inline_css(PAGE)
    kept.save_all()
    kept.install(kept_in)  # read back from the file
    from_file = inline_css(PAGE)
    assert css_kept.RULES.reused == 1 and css_kept.RULES.added == 0
    assert alone == cold == warm == from_file
    assert "@media" in alone and "!important" in alone and 'style="color:#333' in alone.replace(
        ": ", ":")


def _render_error_file(folder: Path) -> str:
    folder.mkdir()
    (folder / "page.html.j2").write_text("<p>{{ 1 // n }}</p>\n", encoding="utf-8")
    env = template_env_at(folder)
    with pytest.raises(ZeroDivisionError) as caught:
        env.render_template("page.html.j2", {"n": 0})
    where = template_frame(caught.value)
    assert where is not None
    return where[0]


def template_env_at(folder: Path) -> sandbox.BoundedSandbox:
    from types import SimpleNamespace
    return template_env(SimpleNamespace(templates=folder))  # type: ignore[arg-type]


def test_kept_template_code_names_the_file_it_was_read_from(kept_in: Path,
                                                            tmp_path: Path) -> None:
    """The same template text in another project (another path) reuses the kept code, and
    an error in it still points at that project's file."""
    first = _render_error_file(tmp_path / "one")
    kept.save_all()
    kept.install(kept_in)
    second = _render_error_file(tmp_path / "two")
    assert sandbox.COMPILED.reused == 1
    assert first == str(tmp_path / "one" / "page.html.j2")
    assert second == str(tmp_path / "two" / "page.html.j2")


def test_recipient_logic_is_cut_out_on_every_run(kept_in: Path, tmp_path: Path) -> None:
    """A template with recipient logic registers its fragments in the environment as it
    is parsed: it is never served from the kept code."""
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "page.html.j2").write_text(
        "<p>{% if recipient.name %}Dear {{ recipient.name|title }}{% endif %}</p>\n",
        encoding="utf-8")
    for _ in range(2):
        env = template_env_at(folder)
        env.get_template("page.html.j2")
        assert len(env.fragments.fragments) == 1
    assert sandbox.COMPILED.added == 0 and sandbox.COMPILED.reused == 0


def test_nothing_is_kept_where_python_writes_no_byte_code(kept_in: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    inline_css(PAGE)
    kept.save_all()
    assert not kept_in.exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    kept.save_all()
    assert (kept_in / kept.file_name("premailer-rules")).is_file()


def test_past_its_limit_a_kind_keeps_only_what_its_last_run_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An often edited template adds a value at each edit: the file does not grow past the
    limit, and what the last run used stays."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    for keys in (["a", "b"], ["c"]):
        one = kept.Kept("test", "1", lambda value: isinstance(value, str), limit=2)
        one.open(tmp_path)
        for key in keys:
            assert one.get(key, lambda key=key: key.upper()) == key.upper()
        one.save()
    again = kept.Kept("test", "1", limit=2)
    again.open(tmp_path)
    assert again.values == {"c": "C"}
