"""``transport.event_loop``: a send runs on uvloop's event loop when asked (issue 13), and
asking for it without uvloop installed is a config error before anything is touched."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import uvloop  # noqa: F401  (in the test extras: the uvloop path is tested, never skipped)

from helpers import SAMPLE_ISSUE, RunCli, edit, statuses, use_relay
from mirage_mailer.project.config import load_settings
from mirage_mailer.services.sending import loop_factory, run_loop
from mirage_mailer.util.errors import InputError
from support.smtp_sink import SmtpSink


async def _loop_kind() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_the_configured_loop_runs_the_delivery(project: Path) -> None:
    config = project / "mirage.yaml"
    assert run_loop(load_settings(config), _loop_kind()) == "asyncio"
    edit(config, "  timeout: 30", "  timeout: 30\n  event_loop: uvloop")
    assert run_loop(load_settings(config), _loop_kind()) == "uvloop"


def test_uvloop_not_installed_is_a_config_error(project: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = project / "mirage.yaml"
    edit(config, "  timeout: 30", "  timeout: 30\n  event_loop: uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now fails
    with pytest.raises(InputError) as caught:
        loop_factory(load_settings(config))
    problem = caught.value.problems[0]
    assert "uvloop is not installed" in problem.message and problem.line is not None


def test_a_send_on_uvloop_sends_everyone_once(project: Path, run_cli: RunCli) -> None:
    sink = SmtpSink()
    with sink.running_in_thread():
        use_relay(project, sink.url, extra="\n  event_loop: uvloop")
        result = run_cli("send", SAMPLE_ISSUE, "--yes")
        assert result.code == 0, result.err
        assert len(sink.recipients()) == len(set(sink.recipients())) == 5
    assert set(statuses(run_cli).values()) == {"sent"}
