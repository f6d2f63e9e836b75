"""``transport.relays`` in mirage.yaml: how it combines with ``transport:`` and every mistake
said as ``path:line`` (in process: no network, no subprocess)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import edit
from mirage_mailer.project.config import load_settings
from mirage_mailer.util.errors import InputError


def with_transport(project: Path, body: str) -> Path:
    """The sample config with its ``url:`` line replaced by ``body`` (indented lines)."""
    config = project / "mirage.yaml"
    edit(config, "  url: maildir:outbox\n", body)
    return config


def problems(config: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_settings(config)
    return [str(p) for p in caught.value.problems]


def line_of(config: Path, text: str) -> int:
    lines = config.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if text in line)


def test_relays_inherit_transport_values_and_override_them(project: Path) -> None:
    config = with_transport(project, (
        "  relays:\n"
        "    - url: smtp://one.example.org:587\n"
        "    - url: smtps://two.example.org\n"
        "      username_env: TWO_USER\n"
        "      password_env: TWO_PASSWORD\n"
        "      concurrency: 8\n"
        "      rate_per_second: 2.5\n"
        "      rate_per_hour: 5000\n"
        "      starttls: auto\n"
        "      weight: 3\n"))
    transport = load_settings(config).transport
    one, two = transport.relays
    assert (one.host, one.port, one.weight, one.concurrency) == ("one.example.org", 587, 1, 4)
    assert (one.username_env, one.password_env) == ("MIRAGE_SMTP_USER", "MIRAGE_SMTP_PASSWORD")
    assert (one.rate_per_second, one.starttls) == (10.0, "always")
    assert (two.scheme, two.port, two.username_env, two.password_env) == (
        "smtps", 465, "TWO_USER", "TWO_PASSWORD")
    assert (two.concurrency, two.rate_per_second, two.rate_per_hour) == (8, 2.5, 5000.0)
    assert (two.starttls, two.weight, two.name) == ("auto", 3, "smtps://two.example.org")
    assert transport.scheme == "smtp" and transport.url == one.url


def test_without_relays_the_single_url_is_unchanged(project: Path) -> None:
    transport = load_settings(project / "mirage.yaml").transport
    assert transport.relays == () and transport.url == "maildir:outbox"


def test_url_and_relays_together_are_refused(project: Path) -> None:
    config = with_transport(project, "  url: smtp://a.example.org\n  relays:\n"
                                     "    - url: smtp://b.example.org\n")
    [problem] = problems(config)
    assert f"mirage.yaml:{line_of(config, 'url: smtp://a')}: " in problem
    assert "'transport.url' and 'transport.relays' are both set" in problem


@pytest.mark.parametrize(("entry", "needle", "said"), [
    ("- url: http://a.example.org", "http://", "'transport.relays[1].url'"),
    ("- url: smtp://bob:secret@a.example.org", "bob", "holds a user name or password"),
    ("- {url: smtp://a.example.org, weight: 0}", "weight", "'transport.relays[1].weight' must "
     "be a whole number from 1 to 1000; you wrote 0"),
    ("- {url: smtp://a.example.org, concurrency: 500}", "500",
     "'transport.relays[1].concurrency' must be a whole number from 1 to 100"),
    ("- {url: smtp://a.example.org, rate_per_second: -1}", "-1",
     "'transport.relays[1].rate_per_second' must be a number"),
    ("- {url: smtp://a.example.org, starttls: sometimes}", "sometimes",
     "'transport.relays[1].starttls' must be always, auto or never"),
    ("- {url: smtp://a.example.org, password: hunter2}", "hunter2",
     "'transport.relays[1].password' puts a secret in the config file"),
    ("- {url: smtp://a.example.org, colour: red}", "colour",
     "unknown key 'transport.relays[1].colour'"),
    ("- {url: smtp://a.example.org, username_env: ONLY_USER}", "ONLY_USER",
     "sets only one of username_env and password_env"),
    ("- weight: 2", "weight: 2", "missing required key 'transport.relays[1].url'"),
    ("- smtp://a.example.org", "smtp://a", "'transport.relays[1]' must be a mapping"),
    ("- url: smtp://a.example.org:0", ":0",  # went to port 587 unsaid
     "'transport.relays[1].url' 'smtp://a.example.org:0' is not a usable SMTP URL"),
])
def test_each_relay_mistake_is_one_line_at_its_line(project: Path, entry: str, needle: str,
                                                      said: str) -> None:
    config = with_transport(project, f"  relays:\n    - url: smtp://ok.example.org\n"
                                     f"    {entry}\n")
    said = said.replace("relays[1]", "relays[2]")
    found = [p for p in problems(config) if said in p]
    assert len(found) == 1, problems(config)
    assert f"mirage.yaml:{line_of(config, needle)}: " in found[0]
    assert "hunter2" not in found[0] and "secret@" not in found[0]


@pytest.mark.parametrize(("body", "said"), [
    ("  relays: smtp://a.example.org\n", "'transport.relays' must be a list of relays"),
    ("  relays: []\n", "'transport.relays' must be a list of relays"),
    ("  processes: 2\n  relays:\n    - url: smtp://a.example.org\n",
     "'transport.processes' above 1 does not combine with 'transport.relays'"),
    ("  relays:\n    - url: smtp://a.example.org\n    - url: smtp://A.example.org:587\n",
     "'transport.relays[2].url' is the same relay as transport.relays[1]"),
])
def test_relays_as_a_whole_are_checked(project: Path, body: str, said: str) -> None:
    config = with_transport(project, body)
    found = problems(config)
    assert any(said in p and "mirage.yaml:" in p for p in found), found


@pytest.mark.parametrize("url", ["smtp://a.example.org:0", "smtps://a.example.org:0"])
def test_port_zero_is_refused_not_taken_for_the_default(project: Path, url: str) -> None:
    config = with_transport(project, f"  url: {url}\n")
    [problem] = problems(config)
    assert problem.endswith(f"mirage.yaml:{line_of(config, url)}: 'transport.url' '{url}' is "
                            "not a usable SMTP URL (write smtp://host:port or "
                            "smtps://host:port)")



@pytest.mark.parametrize("where", ["url", "relay"])
@pytest.mark.parametrize(("url", "scheme"), [("SMTP://relay.example.org:587", "smtp"),
                                             ("Smtps://relay.example.org", "smtps")])
def test_a_scheme_in_capitals_is_the_same_scheme(project: Path, where: str, url: str,
                                                 scheme: str) -> None:
    """RFC 3986 schemes ignore case (tracking.base_url took HTTPS://); 'SMTP://' was refused
    as an unknown scheme."""
    body = f"  url: {url}\n" if where == "url" else f"  relays:\n    - url: {url}\n"
    transport = load_settings(with_transport(project, body)).transport
    relay = transport.relays[0] if where == "relay" else transport
    assert (relay.scheme, relay.host) == (scheme, "relay.example.org")
