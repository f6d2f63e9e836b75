"""``transport.relays:``: several SMTP relays sharing one send, each with its own login and pace.

Kept apart from ``config.py`` because it is one concern with its own rules. A relay entry may
set ``url`` (required), ``username_env``/``password_env``, ``starttls``, ``concurrency``,
``rate_per_second``, ``rate_per_hour`` and ``weight``; every key it leaves out takes the
``transport:`` value (credentials included), so a list of URLs is enough for relays that share
one account. With ``relays`` the section's own ``url`` must be absent: two places saying where
mail goes would leave the reader guessing which one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mirage_mailer.project.config_checks import Section, has_userinfo, redact, secret_in_query
from mirage_mailer.project.yamlsrc import LineDict, LineList, check_keys
from mirage_mailer.util.errors import Collector, shorten

RELAY_KEYS = {"url", "username_env", "password_env", "starttls", "concurrency",
              "rate_per_second", "rate_per_hour", "weight"}
MAX_RELAYS = 16
_SECRETS = frozenset({"password", "pass", "secret", "api_key", "token"})


@dataclass(frozen=True)
class Relay:
    """One relay of ``transport.relays``, its omitted keys filled from ``transport:``."""

    url: str
    scheme: str  # smtp | smtps
    host: str
    port: int
    starttls: str
    username_env: str | None
    password_env: str | None
    concurrency: int
    rate_per_second: float | None
    rate_per_hour: float | None
    weight: int
    where: str  # "transport.relays[2]": how problems and warnings name it

    @property
    def name(self) -> str:
        """The relay as report and warnings show it: its URL, never a login."""
        return redact(self.url)


@dataclass(frozen=True)
class RelayDefaults:
    """The ``transport:`` values a relay entry inherits."""

    starttls: str
    username_env: str | None
    password_env: str | None
    concurrency: int
    rate_per_second: float | None
    rate_per_hour: float | None


def default_port(scheme: str, port: int | None) -> int:
    """The port a URL names, else its scheme's (465 for smtps, 587 for smtp); a written 0
    stays 0 for the caller to refuse, where ``port or 587`` quietly went to 587."""
    return (465 if scheme == "smtps" else 587) if port is None else port


def smtp_endpoint(url: str, key: str, line: int, path: Path,
                  problems: Collector) -> tuple[str, str, int]:
    """(scheme, host, port) of an smtp:// or smtps:// URL; a problem at ``line`` otherwise."""
    scheme = url.partition(":")[0].lower()  # SMTP:// as RFC 3986 allows
    shown = shorten(redact(url))
    if has_userinfo(url) or "@" in url:
        problems.add(path, line, f"'{key}' {shown!r} holds a user name or password",
                     "remove them from the URL; put them in environment variables named by "
                     "username_env/password_env")
        return scheme, "", 0
    if secret_in_query(problems, path, line, key, url,
                       f"{key.removesuffix('.url')}.password_env"):
        return scheme, "", 0
    if scheme not in ("smtp", "smtps"):
        problems.add(path, line, f"'{key}' {shown!r} is not an SMTP relay",
                     "write smtp://host:port or smtps://host:port")
        return scheme, "", 0
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", default_port(scheme, parts.port)
    except ValueError:
        host, port = "", 0
    if not host or not port:
        problems.add(path, line, f"'{key}' {shown!r} is not a usable SMTP URL",
                     "write smtp://host:port or smtps://host:port")
    return scheme, host, port


def load_relays(value: Any, line: int, path: Path, problems: Collector,
                defaults: RelayDefaults, starttls_modes: tuple[str, ...]) -> tuple[Relay, ...]:
    """The relays as written (``value`` is the YAML under ``transport.relays``, at ``line``)."""
    if not isinstance(value, LineList) or not value:
        problems.add(path, line, "'transport.relays' must be a list of relays",
                     "write one '- url: smtp://host:port' entry per relay")
        return ()
    if len(value) > MAX_RELAYS:
        problems.add(path, line, f"'transport.relays' lists {len(value)} relays; at most "
                     f"{MAX_RELAYS}", "remove some")
        return ()
    relays: list[Relay] = []
    seen: dict[str, str] = {}
    for index, item in enumerate(value):
        where = f"transport.relays[{index + 1}]"
        if not isinstance(item, LineDict):
            problems.add(path, value.item_line(index),
                         f"'{where}' must be a mapping with at least 'url:'",
                         "write '- url: smtp://host:port'")
            continue
        relay = _load_relay(item, where, path, problems, defaults, starttls_modes)
        if relay is None:
            continue
        endpoint = f"{relay.host.lower()}:{relay.port}"
        if endpoint in seen:
            problems.add(path, item.key_line("url"),
                         f"'{where}.url' is the same relay as {seen[endpoint]}",
                         "list each relay once; raise its weight or concurrency instead")
        seen[endpoint] = where
        relays.append(relay)
    return tuple(relays)


def _load_relay(item: LineDict, where: str, path: Path, problems: Collector,
                defaults: RelayDefaults, starttls_modes: tuple[str, ...]) -> Relay | None:
    for key in item:
        if str(key).lower() in _SECRETS:
            problems.add(path, item.key_line(key), f"'{where}.{key}' puts a secret in the "
                         "config file", "remove it; put the value in an environment variable "
                         f"and name that variable with '{where}.password_env'")
    check_keys(item, path, allowed=RELAY_KEYS, required={"url"}, problems=problems,
               where=where, ignore=_SECRETS)
    s = Section(item, path, where, problems)
    url = s.text("url")
    if not url:
        if "url" in item:
            problems.add(path, item.key_line("url"), f"'{where}.url' is empty",
                         "write smtp://host:port or smtps://host:port")
        return None
    scheme, host, port = smtp_endpoint(url, f"{where}.url", s.line("url"), path, problems)
    username_env = s.env_name("username_env") if "username_env" in item else defaults.username_env
    password_env = s.env_name("password_env") if "password_env" in item else defaults.password_env
    if ("username_env" in item) != ("password_env" in item):
        lacking = "password_env" if "username_env" in item else "username_env"
        problems.add(path, item.line, f"'{where}' sets only one of username_env and "
                     "password_env", f"add '{lacking}:' to this relay too (or neither, to "
                     "use transport's)")
    return Relay(
        url=url, scheme=scheme, host=host, port=port,
        starttls=s.choice("starttls", defaults.starttls, starttls_modes),
        username_env=username_env, password_env=password_env,
        concurrency=s.integer("concurrency", defaults.concurrency, maximum=100),
        rate_per_second=s.number("rate_per_second", defaults.rate_per_second, minimum=0.01,
                                 maximum=100_000),
        rate_per_hour=s.number("rate_per_hour", defaults.rate_per_hour, minimum=1,
                               maximum=360_000_000),
        weight=s.integer("weight", 1, maximum=1000),
        where=where,
    )


def relay_lines(transport: Any) -> dict[str, int]:
    """``transport.relays[2].password_env`` -> its line, for problems found after loading."""
    relays = transport.get("relays") if isinstance(transport, LineDict) else None
    if not isinstance(relays, LineList):
        return {}
    return {f"transport.relays[{index + 1}].{key}": item.key_line(key)
            for index, item in enumerate(relays) if isinstance(item, LineDict) for key in item}
