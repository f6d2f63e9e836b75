"""Start-up stays cheap: a command imports its own module only, and requests only when used.

Each check runs in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import click

from mirage_mailer.cli import COMMAND_MODULES, cli

HEAVY = ("starlette", "pygal", "rich", "urllib3", "mirage_mailer.web",
         "mirage_mailer.commands.report", "mirage_mailer.commands.web")


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, check=False, timeout=60)
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
