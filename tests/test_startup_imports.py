"""Start-up stays cheap: a command imports its own module only, and requests only when used;
``--help`` lists the commands without importing any; rendering validates no CSS.

Each check runs in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import click

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.cli import COMMAND_MODULES, COMMANDS, cli

HEAVY = ("starlette", "pygal", "rich", "urllib3", "mirage_mailer.web",
         "mirage_mailer.commands.report", "mirage_mailer.commands.web")


def _run(code: str, cwd: Path | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, check=False, timeout=60, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_send_and_validate_load_no_web_report_or_http_client() -> None:
    out = _run(f"""
        import sys
        from mirage_mailer.cli import cli
        for name in ("send", "validate"):
            assert cli.get_command(None, name) is not None
        import premailer  # what rendering loads: it imports requests, which must stay idle
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    assert out == "[]"


def _imported_by(run_cli: RunCli, *args: str) -> set[str]:
    """Every module a real CLI run imports (``python -X importtime``)."""
    result = run_cli(*args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.code == 0, result.err
    return {line.split("|")[2].strip() for line in result.err.splitlines()
            if line.startswith("import time:") and "cumulative" not in line}


def test_a_send_imports_only_what_its_messages_need(run_cli: RunCli) -> None:
    """The sample's send (plain addresses at plain domains) leaves email-validator, which
    compiles its RFC 6531 patterns on import, unloaded; and the HTTP clients that premailer
    and cssutils import to fetch remote stylesheets, which they never do here, with
    importlib.metadata, which cssutils reads its version from for that fetch."""
    imported = _imported_by(run_cli, "send", SAMPLE_ISSUE, "--dry-run")
    assert "mirage_mailer.compose.render" in imported  # the check sees a real send's imports
    assert sorted(imported & {"email_validator", "http.client", "urllib3",
                              "importlib.metadata"}) == []


def test_every_command_is_in_the_table_and_found_there() -> None:
    defined: dict[str, str] = {}
    for module_name in sorted(set(COMMAND_MODULES.values())):
        module = importlib.import_module(f"mirage_mailer.commands.{module_name}")
        for command in module.COMMANDS:
            assert command.name is not None
            defined[command.name] = module_name
    assert defined == COMMAND_MODULES
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMAND_MODULES)
    for name in COMMAND_MODULES:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
    assert cli.get_command(ctx, "no-such-command") is None


def test_a_deferred_module_works_once_used() -> None:
    out = _run("""
        import sys
        from mirage_mailer.cli import defer_import
        assert type(sys.modules["requests"]).__name__ == "_Deferred"
        import requests
        assert "urllib3" not in sys.modules
        import requests.exceptions  # a submodule first, through the stand-in
        assert issubclass(requests.exceptions.HTTPError, OSError)
        assert requests.Session.__name__ == "Session"
        defer_import("colorsys")
        import colorsys
        assert type(colorsys).__name__ == "_Deferred"
        print(colorsys.rgb_to_hsv(1.0, 0.0, 0.0), type(sys.modules["colorsys"]).__name__)
    """)
    assert out == "(0.0, 1.0, 1.0) module"


def test_help_lists_every_command_without_importing_one() -> None:
    out = _run("""
        import contextlib, io, json, sys
        from mirage_mailer.cli import COMMAND_MODULES, cli, main

        def help_text():
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
                main(["--help"])
            return buffer.getvalue()

        listed = help_text()
        imported = sorted(m for m in sys.modules if m.startswith("mirage_mailer.commands."))
        for name in COMMAND_MODULES:  # now every command is real: click reads its docstring
            cli.get_command(None, name)
        print(json.dumps([imported, listed, help_text()]))
    """)
    imported, listed, with_every_command = json.loads(out)
    # Context and err, and the standard streams as cron leaves them, for every run
    assert imported == ["mirage_mailer.commands.common", "mirage_mailer.commands.streams"]
    assert listed == with_every_command
    assert "  send                  Send ISSUE to its lists; resumes where an earlier..." in listed


def test_the_summaries_are_the_commands_own() -> None:
    """The table's summary shortens as the command's own help does, at every width."""
    ctx = click.Context(cli)
    for name, (_, summary) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and not command.hidden and not command.deprecated
        stand_in = click.Command(name, help=summary)
        for width in range(10, 200):
            assert stand_in.get_short_help_str(width) == command.get_short_help_str(width), name


def test_inlining_css_validates_none_and_still_aligns_floats() -> None:
    """premailer's own image alignment validated each image's style with cssutils, whose
    first validation compiles hundreds of regular expressions (~0.1 s of a send's start)."""
    out = _run("""
        import cssutils
        from mirage_mailer.compose.render import inline_css
        html = inline_css('<html><body><img src="a.png" style="display:block;width:10px;'
                          'float:right"><img src="b.png" style="float: left"></body></html>')
        compiled = sorted(name for properties in cssutils.profile._profilesProperties.values()
                          for name, regex in properties.items() if regex.matcher is not None)
        print(compiled, html)
    """)
    assert out == ('[] <html><head></head><body><img src="a.png" style="display:block;width:10px;'
                   'float:right" align="right"><img src="b.png" style="float: left" '
                   'align="left"></body></html>')


FLOATS = [
    '<!DOCTYPE html><html><head><style>.r{float:right} @media (max-width:600px){.r{float:none}}'
    '</style></head><body><img class="r" src="a.png" style="width:10px"><img src="b.png" '
    'style="float: left; margin:0"><img src="c.png" style="FLOAT:RIGHT"><img src="d.png" '
    'style="float:left !important; float:right"><img src="e.png" align="middle" '
    'style="float:right"><img src="f.png"></body></html>',
    '<div><img src="b.png" style="float:right;width:5px"></div>',
    '  <!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n<html><head><title>t</title>'
    '<style>img{float:left}</style></head><body><img src="x.png" style="float:right"> &amp; é'
    ' &nbsp; </body></html>\n',
]


def test_inlined_html_is_premailers_own() -> None:
    """The same bytes as premailer's whole transform, image alignment included."""
    import logging
    import warnings

    from premailer import Premailer

    from mirage_mailer.compose.render import inline_css

    for html in FLOATS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = Premailer(html, allow_network=False, keep_style_tags=False,
                               remove_classes=False, strip_important=False,
                               cssutils_logging_level=logging.CRITICAL,
                               disable_validation=True).transform(pretty_print=False)
        assert inline_css(html) == theirs
    assert inline_css(FLOATS[0]).count(' align="') == 4


def test_a_deferred_submodule_works_once_used() -> None:
    out = _run("""
        import sys
        import mirage_mailer.cli
        import cssutils  # imports urllib.request, only to fetch stylesheets
        assert type(sys.modules["urllib.request"]).__name__ == "_Deferred"
        assert "http.client" not in sys.modules
        sheet = cssutils.parseString("a { color: red }", href="file:/tmp/x.css")
        import urllib.request
        print(urllib.request.pathname2url("/a b"), type(urllib.request).__name__,
              sys.modules["urllib.request"] is urllib.request, "http.client" in sys.modules)
    """)
    assert out == "/a%20b module True True"
