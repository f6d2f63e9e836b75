"""mirage.yaml -> frozen settings, with every problem reported as ``path:line``.

Relative paths are resolved against the folder holding mirage.yaml, whatever the current
directory, so cron jobs and officers get the same files. Secrets never live here: only the
names of environment variables that hold them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mirage_mailer.project.base_url import base_url_problem
from mirage_mailer.project.bounce_config import BOUNCE_KEYS, BounceConfig, load_bounces
from mirage_mailer.project.cafile import ca_file_problem
from mirage_mailer.project.config_checks import MAX_TEXT, has_userinfo, redact, secret_in_query
from mirage_mailer.project.config_checks import Section as _Section
from mirage_mailer.project.eu_names import RULE, statement_problem
from mirage_mailer.project.paths import is_folder, project_path, written_path
from mirage_mailer.project.relay_config import (
    Relay,
    RelayDefaults,
    default_port,
    load_relays,
    relay_lines,
)
from mirage_mailer.project.signup_lists import read_signup_lists
from mirage_mailer.project.yamlsrc import LineDict, check_keys, load_yaml_file
from mirage_mailer.util.addresses import ascii_domain, parse_mailbox
from mirage_mailer.util.database import Database, PostgresUrl, is_postgres, parse_postgres
from mirage_mailer.util.errors import Collector, InputError, Problem, capped, display_path, shorten
from mirage_mailer.util.langs import check_language, normalise_language

CONFIG_NAME = "mirage.yaml"
PRESETS = ("amif-2014-2020", "eu-2021-2027-direct", "eu-2021-2027-shared", "custom")
STARTTLS_MODES = ("always", "auto", "never")
EVENT_LOOPS = ("asyncio", "uvloop")  # uvloop: pip install 'mirage-mailer[uvloop]'


@dataclass(frozen=True)
class Project:
    name: str
    website: str | None
    contact: str
    language: str


@dataclass(frozen=True)
class Sender:
    from_header: str
    from_email: str
    from_name: str
    reply_to: str | None
    return_path: str

    @property
    def domain(self) -> str:
        return self.from_email.rpartition("@")[2]


@dataclass(frozen=True)
class Transport:
    url: str
    scheme: str  # maildir | smtp | smtps
    maildir: Path | None
    host: str
    port: int
    starttls: str
    username_env: str | None
    password_env: str | None
    concurrency: int
    rate_per_second: float | None
    rate_per_hour: float | None
    timeout: float
    max_attempts: int
    allow_plaintext_auth: bool
    event_loop: str = "asyncio"  # asyncio | uvloop (the optional extra: faster sends)
    ca_file: Path | None = None  # PEM bundle of a private CA: trusted instead of the system's
    tls_insecure: bool = False  # no certificate or host-name check: a warning on every run
    processes: int | None = None  # sending processes of a large send; None: auto (shards.py)
    relays: tuple[Relay, ...] = ()  # transport.relays (project/relay_config.py); () = url


@dataclass(frozen=True)
class DisclaimerText:
    statement: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class DisclaimerConfig:
    preset: str
    authority: str | None
    statement: str | None
    text: str | None
    translations: dict[str, DisclaimerText] = field(default_factory=dict)


@dataclass(frozen=True)
class Tracking:
    database: Database  # a SQLite file, or a PostgreSQL server (``PostgresUrl``)
    base_url: str | None
    secret_env: str | None
    opens: bool
    clicks: bool
    lease_seconds: int = 60  # a sender's lease on a PostgreSQL store (store/leases.py)
    # a PostgreSQL sender's commits wait for the server's disk: no duplicate after a crash of
    # the server itself, at one WAL flush per commit (docs/design.md, "Several senders")
    durable_commits: bool = True


@dataclass(frozen=True)
class Web:
    """The subscriber-facing site (``serve``, ``archive``)."""

    consent_text: str
    consent_version: str
    report_user: str
    report_password_hash_env: str
    max_body_bytes: int
    signup: bool = True  # /subscribe/<list> and the snippet; off: serve only unsubscribes
    privacy_url: str | None = None  # the privacy notice, linked wherever addresses are taken
    allowed_origins: tuple[str, ...] = ()  # other sites whose forms may post sign-ups here
    # the lists the public may join; None (no key): the only list, if there is just one
    # (project/signup_lists.py)
    signup_lists: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DkimConfig:
    """DKIM signing: the key is named here (a variable or a file), never written here."""

    domain: str
    selector: str
    key_env: str | None  # the environment variable holding the PEM private key
    key_file: Path | None  # or the PEM file (relative paths: inside the project)


DEFAULT_CONSENT = ("I agree to receive the project's newsletter by e-mail. I can unsubscribe at "
                   "any time with the link in every message.")


@dataclass(frozen=True)
class Settings:
    path: Path
    root: Path
    project: Project
    sender: Sender
    transport: Transport
    disclaimer: DisclaimerConfig
    tracking: Tracking
    web: Web
    templates: Path
    lists_dir: Path
    issues_dir: Path
    state_dir: Path
    line_of: dict[str, int] = field(default_factory=dict, compare=False)
    dkim: DkimConfig | None = None  # sign every message sent (docs/guide/deliverability.md)
    bounces: BounceConfig | None = None  # the bounces: section; None: no VERP


_TOP_KEYS = {"project", "sender", "transport", "disclaimer", "tracking", "web", "templates",
             "dkim", "bounces"}
_DKIM_KEYS = {"domain", "selector", "key_env", "key_file"}
_WEB_KEYS = {"consent_text", "consent_version", "report_user", "report_password_hash_env",
             "max_body_bytes", "signup", "privacy_url", "allowed_origins", "signup_lists"}
_PROJECT_KEYS = {"name", "website", "contact", "language"}
_SENDER_KEYS = {"from", "reply_to", "return_path"}
_TRANSPORT_KEYS = {
    "url",
    "starttls",
    "username_env",
    "password_env",
    "concurrency",
    "rate_per_second",
    "rate_per_hour",
    "timeout",
    "max_attempts",
    "allow_plaintext_auth",
    "event_loop",
    "ca_file",
    "tls_insecure",
    "processes",
    "relays",
}
_DISCLAIMER_KEYS = {"preset", "authority", "statement", "text", "translations"}
_TRACKING_KEYS = {"database", "password_env", "base_url", "secret_env", "opens", "clicks",
                  "lease_seconds", "durable_commits"}
_SECRET_KEYS = frozenset({"password", "pass", "secret", "api_key", "token"})


def find_config(explicit: Path | None) -> Path:
    """The config file: ``--config`` or ``mirage.yaml`` in the current directory."""
    path = explicit if explicit is not None else Path.cwd() / CONFIG_NAME
    if not path.is_file():
        raise InputError(
            Problem(
                display_path(path),
                None,
                "config file not found",
                "run in the project folder, pass --config PATH, or create one with "
                "'mirage-mailer init DIR'",
            )
        )
    return path


def _section(root: LineDict, key: str, path: Path, problems: Collector) -> LineDict:
    value = root.get(key)
    if value is None:
        empty = LineDict()
        empty.line = root.key_line(key)
        return empty
    if not isinstance(value, LineDict):
        problems.add(path, root.key_line(key), f"'{key}' must be a mapping of settings",
                     f"indent the keys of '{key}:' below it")
        empty = LineDict()
        empty.line = root.key_line(key)
        return empty
    return value


def _reject_secrets(data: Any, path: Path, problems: Collector, where: str = "") -> None:
    if isinstance(data, LineDict):
        for key, value in data.items():
            name = f"{where}.{key}" if where else str(key)
            if str(key).lower() in _SECRET_KEYS:
                problems.add(
                    path,
                    data.key_line(key),
                    f"'{name}' puts a secret in the config file",
                    f"remove it; put the value in an environment variable and name that "
                    f"variable with '{where or 'transport'}.{_env_key(str(key))}'",
                )
            else:
                _reject_secrets(value, path, problems, name)


def _env_key(key: str) -> str:
    return "secret_env" if key.lower() == "secret" else "password_env"


@dataclass(frozen=True)
class ConfigRead:
    """mirage.yaml as far as it loaded. ``settings`` hold what each key says, or its default
    where the value failed: enough for ``validate`` to check the issue, lists and templates
    beside a config error, never to send with. ``broken`` names the sections with errors
    (``templates`` for the key of that name)."""

    settings: Settings
    errors: list[Problem]
    broken: frozenset[str]


def load_settings(path: Path) -> Settings:
    """Load and validate mirage.yaml; raises ``InputError`` listing every problem."""
    read = read_settings(path)
    problems = Collector()
    problems.problems.extend(read.errors)
    problems.raise_if_errors()
    return read.settings


def read_settings(path: Path) -> ConfigRead:
    """Load mirage.yaml and collect every problem; raises ``InputError`` only when the file
    gives no settings at all (unreadable, not YAML, not a mapping)."""
    path = path.resolve()
    root_dir = path.parent
    data = load_yaml_file(path)
    problems = Collector()
    if not isinstance(data, LineDict):
        raise InputError(Problem(display_path(path), 1, "config must be a YAML mapping",
                                 "start from 'mirage-mailer init DIR'"))
    _reject_secrets(data, path, problems)
    check_keys(data, path, allowed=_TOP_KEYS, required=set(), problems=problems,
               ignore=_SECRET_KEYS)
    for key in ("project", "sender"):
        if key not in data:
            problems.add(path, 1, f"missing required section '{key}'", f"add '{key}:'")

    broken = {key for key in ("project", "sender") if key not in data}
    failed = _Failed(problems, broken)
    project = _load_project(_section(data, "project", path, problems), path, problems)
    failed.mark("project")
    sender = _load_sender(_section(data, "sender", path, problems), path, problems)
    failed.mark("sender")
    transport = _load_transport(_section(data, "transport", path, problems), path, problems,
                                root_dir)
    failed.mark("transport")
    disclaimer = _load_disclaimer(_section(data, "disclaimer", path, problems), path, problems,
                                  project.language)
    failed.mark("disclaimer")
    tracking = _load_tracking(_section(data, "tracking", path, problems), path, problems,
                              root_dir)
    failed.mark("tracking")
    web = _load_web(_section(data, "web", path, problems), path, problems, root_dir / "lists")
    failed.mark("web")
    if isinstance(tracking.database, PostgresUrl) and (transport.processes or 1) > 1:
        # send refused it; validate and --dry-run must refuse what send will (exit 2)
        problems.add(path, _key_line(data.get("transport"), "processes"),
                     f"transport.processes is {transport.processes}, but with a PostgreSQL "
                     "store (tracking.database) the senders of an issue share it by leases",
                     "set processes: 1 and start several 'mirage-mailer send' commands "
                     "instead, on this host or others: they share the work "
                     "(docs/guide/several-senders.md)")
    failed.mark("transport")
    dkim = None
    if data.get("dkim") is not None:  # a section that is no mapping: _section says so
        dkim_sec = _section(data, "dkim", path, problems)
        if isinstance(data.get("dkim"), LineDict):
            dkim = _load_dkim(dkim_sec, path, problems, root_dir)
    failed.mark("dkim")
    bounces_sec = _section(data, "bounces", path, problems) if "bounces" in data else None
    if bounces_sec is not None:
        check_keys(bounces_sec, path, allowed=BOUNCE_KEYS, required=set(), problems=problems,
                   where="bounces", ignore=_SECRET_KEYS)
    bounces = load_bounces(bounces_sec, path, problems, root_dir, sender.return_path)
    failed.mark("bounces")
    templates_value = data.get("templates", "templates")
    if not isinstance(templates_value, str) or not templates_value.strip():
        problems.add(path, data.key_line("templates"), "'templates' must be a folder path")
        templates_value = "templates"
    elif not _inside(project_path(root_dir, templates_value), root_dir):
        problems.add(path, data.key_line("templates"),
                     f"'templates' {shorten(templates_value)!r} is outside the project folder",
                     "keep the templates in a folder beside mirage.yaml")
        templates_value = "templates"
    failed.mark("templates")
    line_of = {f"{s}.{k}": v.key_line(k) for s in _TOP_KEYS
               if isinstance(v := data.get(s), LineDict) for k in v}
    line_of.update({s: data.key_line(s) for s in data})
    line_of.update(relay_lines(data.get("transport")))
    line_of.update(_translation_lines(data.get("disclaimer")))
    settings = Settings(
        path=path,
        root=root_dir,
        project=project,
        sender=sender,
        transport=transport,
        disclaimer=disclaimer,
        tracking=tracking,
        web=web,
        templates=project_path(root_dir, templates_value),
        lists_dir=root_dir / "lists",
        issues_dir=root_dir / "issues",
        state_dir=root_dir / ".mirage",
        line_of=line_of,
        dkim=dkim,
        bounces=bounces,
    )
    return ConfigRead(settings, capped(problems.errors), frozenset(broken))


class _Failed:
    """Which sections added errors: each ``mark`` names the section loaded since the last."""

    def __init__(self, problems: Collector, broken: set[str]) -> None:
        self.problems, self.broken, self.seen = problems, broken, len(problems.errors)

    def mark(self, section: str) -> None:
        count = len(self.problems.errors)
        if count > self.seen:
            self.broken.add(section)
        self.seen = count


def _key_line(section: object, key: str) -> int | None:
    return section.key_line(key) if isinstance(section, LineDict) else None


def _inside(candidate: Path, root: Path) -> bool:
    """``candidate`` (symlinks resolved) lies inside ``root``: no file from elsewhere is read."""
    try:
        return candidate.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):
        return False


def _load_project(sec: LineDict, path: Path, problems: Collector) -> Project:
    check_keys(sec, path, allowed=_PROJECT_KEYS, required={"name", "contact"},
               problems=problems, where="project", ignore=_SECRET_KEYS)
    s = _Section(sec, path, "project", problems)
    language = s.text("language", "en", yes_no_is_text=True) or "en"  # no: Norwegian
    bad = check_language(language)
    if bad:
        problems.add(path, s.line("language"), f"'project.language' {bad}",
                     "use an ISO 639-1 code such as en, fr or pt-BR")
        language = "en"  # the default: validate reads the issue with it, nothing is sent
    language = normalise_language(language)  # EN, pt-br: as issues and lists read codes
    contact = s.text("contact") or ""
    if contact and not s.one_address("contact", contact, "give the one address readers can "
                                     "write to; a shared mailbox reaches several people"):
        contact = ""
    if contact:
        _, _, err = parse_mailbox(contact)
        if err:
            problems.add(path, s.line("contact"), f"'project.contact' {err}",
                         "give the address readers can write to, e.g. info@example.org")
    website = s.text("website")
    if website and has_userinfo(website):
        problems.add(path, s.line("website"),
                     f"'project.website' {shorten(redact(website))!r} holds a user name or "
                     "password", "remove them: every reader would see them in the messages")
        website = None
    if website and not re.match(r"^https?://[^\s/]", website):
        problems.add(path, s.line("website"), "'project.website' must start with https://")
    name = s.required_text("name", "give the project's name as readers know it",
                           yes_no_is_text=True)
    return Project(name=name, website=website, contact=contact,
                   language=language)


def _load_sender(sec: LineDict, path: Path, problems: Collector) -> Sender:
    check_keys(sec, path, allowed=_SENDER_KEYS, required={"from"}, problems=problems,
               where="sender", ignore=_SECRET_KEYS)
    s = _Section(sec, path, "sender", problems)
    # One address each: a second one would be dropped without a word (DESIGN.md gives the
    # sender one from, one reply_to and one return_path).
    from_value = s.required_text("from", "write it as 'Project name <news@example.org>'")
    if from_value and not s.one_address("from", from_value, "write it as 'Project name "
                                        "<news@example.org>', with one address"):
        from_value = ""
    name, email, err = parse_mailbox(from_value) if from_value else ("", "", None)
    if err:
        problems.add(path, s.line("from"), f"'sender.from' {err}",
                     "write it as 'Project name <news@example.org>'")
    reply_to = s.text("reply_to")
    if reply_to and not s.one_address("reply_to", reply_to, "keep one address; to reach "
                                      "several people, give one that forwards to them"):
        reply_to = None
    if reply_to and (bad := parse_mailbox(reply_to)[2]):
        problems.add(path, s.line("reply_to"), f"'sender.reply_to' {bad}")
    return_path = s.text("return_path")
    if return_path and not s.one_address("return_path", return_path,
                                         "give the one address that receives bounces"):
        return_path = None
    if return_path:
        _, rp_email, bad = parse_mailbox(return_path)
        if bad:
            problems.add(path, s.line("return_path"), f"'sender.return_path' {bad}")
        return_path = rp_email
    return Sender(from_header=from_value, from_email=email, from_name=name, reply_to=reply_to,
                  return_path=return_path or email)


def _load_transport(sec: LineDict, path: Path, problems: Collector, root: Path) -> Transport:
    check_keys(sec, path, allowed=_TRANSPORT_KEYS, required=set(), problems=problems,
               where="transport", ignore=_SECRET_KEYS)
    s = _Section(sec, path, "transport", problems)
    if "relays" in sec and "url" in sec:
        problems.add(path, s.line("url"), "'transport.url' and 'transport.relays' are both "
                     "set", "remove 'url:': with relays, each relay names its own URL")
    url = s.text("url", "maildir:outbox") or "maildir:outbox"
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()  # SMTP://, Maildir: as RFC 3986 allows (base_url took HTTPS://)
    maildir: Path | None = None
    host, port = "", 0
    shown = shorten(redact(url))
    if has_userinfo(url) or (scheme in ("smtp", "smtps") and "@" in url):
        problems.add(path, s.line("url"),
                     f"'transport.url' {shown!r} holds a user name or password",
                     "remove them from the URL; put them in environment variables named by "
                     "username_env/password_env")
    elif secret_in_query(problems, path, s.line("url"), "transport.url", url,
                         "transport.password_env"):
        pass
    elif scheme == "maildir" and rest:
        maildir = project_path(root, rest)
        if file := _file_in_the_way(maildir):  # else send said exit 3: "a rerun resumes"
            problems.add(path, s.line("url"), f"'transport.url' {shown!r}: "
                         f"{display_path(file)} is a file, not a folder",
                         "name a folder for the Maildir, e.g. maildir:outbox")
    elif scheme in ("smtp", "smtps"):
        try:
            parts = urlsplit(url)
            host, port = parts.hostname or "", default_port(scheme, parts.port)
        except ValueError:
            host = ""
        if not host or not port:
            problems.add(path, s.line("url"),
                         f"'transport.url' {shown!r} is not a usable SMTP URL",
                         "write smtp://host:port or smtps://host:port")
    else:
        problems.add(path, s.line("url"), f"'transport.url' {shown!r} has an unknown scheme",
                     "use maildir:PATH, smtp://host:port or smtps://host:port")
    ca_file, tls_insecure = _tls_keys(s, path, problems, root)
    starttls = s.choice("starttls", "always", STARTTLS_MODES)
    concurrency = s.integer("concurrency", 4, maximum=100)
    rate_per_second = s.number("rate_per_second", None, minimum=0.01, maximum=100_000)
    rate_per_hour = s.number("rate_per_hour", None, minimum=1, maximum=360_000_000)
    processes = _processes(s)
    username_env, password_env = s.env_name("username_env"), s.env_name("password_env")
    relays: tuple[Relay, ...] = ()
    if "relays" in sec:
        defaults = RelayDefaults(starttls, username_env, password_env, concurrency,
                                 rate_per_second, rate_per_hour)
        relays = load_relays(sec["relays"], s.line("relays"), path, problems, defaults,
                             STARTTLS_MODES)
        if processes is not None and processes > 1:
            problems.add(path, s.line("processes"), "'transport.processes' above 1 does not "
                         "combine with 'transport.relays'", "remove 'processes:' (the relays "
                         "share one sending process)")
        if relays:  # what code that reads the single relay sees: the first one
            url, scheme, host, port, maildir = (relays[0].url, relays[0].scheme,
                                                relays[0].host, relays[0].port, None)
    return Transport(
        url=url,
        scheme=scheme,
        maildir=maildir,
        host=host,
        port=port,
        starttls=starttls,
        username_env=username_env,
        password_env=password_env,
        concurrency=concurrency,
        rate_per_second=rate_per_second,
        rate_per_hour=rate_per_hour,
        timeout=s.number("timeout", 30.0, minimum=1, maximum=600, nullable=False) or 30.0,
        max_attempts=s.integer("max_attempts", 5, maximum=100),
        allow_plaintext_auth=s.flag("allow_plaintext_auth", False),
        event_loop=s.choice("event_loop", "asyncio", EVENT_LOOPS),
        ca_file=ca_file,
        tls_insecure=tls_insecure,
        processes=processes,
        relays=relays,
    )


def _processes(s: _Section) -> int | None:
    """``transport.processes``: 1 to 16, or ``auto`` (the default; None): what the send
    decides from the cores and the pace (``services/sending_processes.py``)."""
    value = s.data.get("processes", "auto")
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16:
        s._bad("processes", "auto or a whole number from 1 to 16")
        return None
    return value


def _tls_keys(s: _Section, path: Path, problems: Collector,
              root: Path) -> tuple[Path | None, bool]:
    """``ca_file`` (relative to mirage.yaml; must load now) and ``tls_insecure``, which
    contradict each other: a CA to trust and no checking at all."""
    insecure = s.flag("tls_insecure", False)
    value = s.text("ca_file")
    if not value:
        return None, insecure
    ca_file = project_path(root, value)  # an absolute path stays as is
    if insecure:
        problems.add(path, s.line("ca_file"),
                     "'transport.ca_file' and 'transport.tls_insecure: true' contradict each "
                     "other", "keep ca_file (the certificate is checked against it) and remove "
                     "tls_insecure")
    elif bad := ca_file_problem(ca_file):
        problems.add(path, s.line("ca_file"), f"'transport.ca_file' {shorten(value)!r} {bad}",
                     "give the PEM file of the CA that signed the relay's certificate, "
                     "relative to mirage.yaml")
    return ca_file, insecure


def _file_in_the_way(folder: Path) -> Path | None:
    """The first existing path at or above ``folder`` when it is not a folder: no Maildir
    can be made there, whatever a rerun does."""
    try:
        for candidate in (folder, *folder.parents):
            if candidate.exists():
                return None if candidate.is_dir() else candidate
    except (OSError, ValueError):  # a folder this user may not look in: the Maildir's to word
        return None
    return None


def _load_disclaimer(sec: LineDict, path: Path, problems: Collector,
                     language: str) -> DisclaimerConfig:
    check_keys(sec, path, allowed=_DISCLAIMER_KEYS, required=set(), problems=problems,
               where="disclaimer", ignore=_SECRET_KEYS)
    s = _Section(sec, path, "disclaimer", problems)
    preset = s.choice("preset", "amif-2014-2020", PRESETS)
    authority = s.text("authority", yes_no_is_text=True)
    statement = s.text("statement", yes_no_is_text=True)
    text = _long_text(sec, "text", path, problems)
    if preset == "eu-2021-2027-direct" and not authority:
        problems.add(path, s.line("preset") if "preset" in sec else sec.line,
                     "preset eu-2021-2027-direct names a granting authority",
                     "add it, e.g. 'authority: the European Research Executive Agency (REA)'")
    if preset == "custom" and not (statement and text):
        problems.add(path, s.line("preset"), "preset custom needs 'statement' and 'text'",
                     "add both, as your grant agreement words them")

    def union_name(field: str, said: str, lang: str, line: int | None) -> None:
        if refused := statement_problem(field, said, lang):
            problems.add(path, line, refused, RULE)

    if statement:  # a preset's own (English) statement in another language: a warning
        union_name("disclaimer.statement", statement, language, s.line("statement"))
    translations: dict[str, DisclaimerText] = {}
    raw = sec.get("translations") or LineDict()
    if not isinstance(raw, LineDict):
        problems.add(path, s.line("translations"), "'disclaimer.translations' must be a mapping",
                     "write lang: {statement: ..., text: ...}")
        raw = LineDict()
    for lang, entry in raw.items():
        line = raw.key_line(lang)
        bad = check_language(str(lang))
        if bad:
            problems.add(path, line, f"disclaimer translation '{shorten(lang)}': "
                         f"{shorten(bad, 120)}",
                         "use an ISO 639-1 code such as fr or pt-BR")
            continue
        if not isinstance(entry, LineDict):
            problems.add(path, line, f"disclaimer translation '{shorten(lang)}' must be a "
                         "mapping",
                         "give 'statement:' and 'text:' under it")
            continue
        check_keys(entry, path, allowed={"statement", "text"}, required=set(),
                   problems=problems, where=f"disclaimer.translations.{lang}")
        ts = _Section(entry, path, f"disclaimer.translations.{lang}", problems)
        code = normalise_language(str(lang))  # FR, pt-br: the codes issues and lists use
        if code in translations:
            problems.add(path, line, f"disclaimer translation '{shorten(lang)}' repeats "
                         f"'{code}'", "keep only one translation per language")
            continue
        translations[code] = DisclaimerText(
            statement=ts.text("statement", yes_no_is_text=True),
            text=_long_text(entry, "text", path, problems)
        )
        if said := translations[code].statement:
            union_name(f"disclaimer.translations.{lang}.statement", said, str(lang),
                       entry.key_line("statement"))
    return DisclaimerConfig(preset=preset, authority=authority, statement=statement, text=text,
                            translations=translations)


def _translation_lines(disclaimer: object) -> dict[str, int]:
    """``disclaimer.translations.fr`` (the code as normalised) -> its line, for the warning
    about a partial translation found after loading."""
    raw = disclaimer.get("translations") if isinstance(disclaimer, LineDict) else None
    if not isinstance(raw, LineDict):
        return {}
    return {f"disclaimer.translations.{normalise_language(str(lang))}": raw.key_line(lang)
            for lang in raw if not check_language(str(lang))}


def _long_text(sec: LineDict, key: str, path: Path, problems: Collector) -> str | None:
    value = sec.text(key) if isinstance(sec.get(key), str | int | float | bool) else sec.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(path, sec.key_line(key), f"'{key}' must be text")
        return None
    if len(value) > 20 * MAX_TEXT:
        problems.add(path, sec.key_line(key), f"'{key}' is {len(value):,} characters long; at "
                     f"most {20 * MAX_TEXT:,}", "shorten it")
        return None
    return " ".join(value.split())


def _load_tracking(sec: LineDict, path: Path, problems: Collector, root: Path) -> Tracking:
    check_keys(sec, path, allowed=_TRACKING_KEYS, required=set(), problems=problems,
               where="tracking", ignore=_SECRET_KEYS)
    s = _Section(sec, path, "tracking", problems)
    base_url = s.text("base_url")
    if base_url and (bad := base_url_problem(base_url)):
        message, hint = bad
        problems.add(path, s.line("base_url"),
                     f"'tracking.base_url' {shorten(redact(base_url))!r} {message}", hint)
    base_url = base_url.rstrip("/") if base_url else None  # '/' appended once: never '//u/'
    database = _database(s, path, problems, root)
    opens, clicks = s.flag("opens", False), s.flag("clicks", False)
    for key, on in (("opens", opens), ("clicks", clicks)):
        if on and not base_url:
            problems.add(path, s.line(key),
                         f"'tracking.{key}' needs tracking.base_url: the "
                         f"{'open pixel' if key == 'opens' else 'click redirect'} is served "
                         "by 'mirage-mailer serve' at that address",
                         f"set tracking.base_url to the server's public https address, or "
                         f"remove '{key}: true' (tracking is off by default; see "
                         "docs/guide/web.md, 'Opens and clicks')")
    return Tracking(
        database=database,
        base_url=base_url,
        secret_env=s.env_name("secret_env"),
        opens=opens,
        clicks=clicks,
        lease_seconds=s.integer("lease_seconds", 60, minimum=2, maximum=3600),
        durable_commits=s.flag("durable_commits", True),
    )


def _database(s: _Section, path: Path, problems: Collector, root: Path) -> Database:
    """A path (relative to the project), or a ``postgresql://`` URL without a password."""
    text = s.text("database", ".mirage/tracking.sqlite") or ".mirage/tracking.sqlite"
    password_env = s.env_name("password_env")
    if not is_postgres(text):
        if password_env is not None:
            problems.add(path, s.line("password_env"),
                         "'tracking.password_env' is only for a postgresql:// database",
                         "remove it, or set tracking.database to the server's URL")
        database = project_path(root, text)
        if is_folder(database):  # else each command met it differently, send --dry-run as
            # "I/O"; a state folder this user may not look in is the store's to word
            problems.add(path, s.line("database"),
                         f"'tracking.database' {shorten(text)!r} is a folder",
                         "name the database file, e.g. .mirage/tracking.sqlite")
        return database
    try:
        return parse_postgres(text, password_env)
    except ValueError as exc:
        problems.add(path, s.line("database"),
                     f"'tracking.database' {shorten(redact(text.partition('?')[0]))!r} {exc}",
                     "remove it from the URL; give it as PGPASSWORD, in ~/.pgpass, or in the "
                     "variable that 'tracking.password_env: NAME' names"
                     if "password" in str(exc) else
                     "write it as postgresql://USER@HOST:PORT/DATABASE (a port from 1 to "
                     "65535, an IPv6 host in [brackets])")
        return (root / ".mirage/tracking.sqlite").resolve()


def _load_web(sec: LineDict, path: Path, problems: Collector, lists_dir: Path) -> Web:
    check_keys(sec, path, allowed=_WEB_KEYS, required=set(), problems=problems, where="web",
               ignore=_SECRET_KEYS)
    s = _Section(sec, path, "web", problems)
    return Web(
        consent_text=_long_text(sec, "consent_text", path, problems) or DEFAULT_CONSENT,
        consent_version=s.text("consent_version", "1", yes_no_is_text=True) or "1",
        report_user=s.text("report_user", "report", yes_no_is_text=True) or "report",
        report_password_hash_env=s.env_name("report_password_hash_env")
        or "MIRAGE_REPORT_PASSWORD_HASH",
        max_body_bytes=s.integer("max_body_bytes", 16384, minimum=1024, maximum=10_000_000),
        signup=s.flag("signup", True),
        privacy_url=s.web_address("privacy_url", "give the address of your privacy notice"),
        allowed_origins=s.origins("allowed_origins"),
        signup_lists=read_signup_lists(sec, path, problems, lists_dir),
    )


# RFC 6376 3.1: a selector is a dot-separated run of labels; the signing domain a host name.
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_SELECTOR = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_DOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})+$")


def _load_dkim(sec: LineDict, path: Path, problems: Collector, root: Path) -> DkimConfig:
    check_keys(sec, path, allowed=_DKIM_KEYS, required={"domain", "selector"},
               problems=problems, where="dkim", ignore=_SECRET_KEYS)
    s = _Section(sec, path, "dkim", problems)
    # an internationalised name may be written either way; d= carries its A-label form
    domain = ascii_domain(s.text("domain") or "")
    if "domain" in sec and (len(domain) > 253 or not _DOMAIN.match(domain)):
        problems.add(path, s.line("domain"),
                     f"'dkim.domain' {shorten(domain)!r} is not a domain name",
                     "give the domain that publishes the key, e.g. example.org")
    selector = (s.text("selector") or "").lower()
    if "selector" in sec and (len(selector) > 63 or not _SELECTOR.match(selector)):
        problems.add(path, s.line("selector"),
                     f"'dkim.selector' {shorten(selector)!r} is not a DKIM selector",
                     "use letters, digits and hyphens (dots between labels), e.g. news2026: "
                     "the key is published at <selector>._domainkey.<domain>")
    key_env = s.env_name("key_env")
    key_text = (s.required_text("key_file", "give the path of the PEM private key")
                if sec.get("key_file") is not None else None)
    if (sec.get("key_env") is None) == (sec.get("key_file") is None):
        problems.add(path, sec.line,
                     "'dkim' needs exactly one of 'key_env' and 'key_file'",
                     "name the environment variable that holds the PEM private key "
                     "(key_env: MIRAGE_DKIM_KEY), or the key's file (key_file: "
                     ".mirage/dkim.pem)")
    key_file: Path | None = None
    if key_text:
        given = written_path(key_text)
        if given.is_absolute():
            key_file = given  # the officer chose a place outside the project on purpose
        elif _inside(root / given, root):
            key_file = (root / given).resolve()
        else:
            problems.add(path, s.line("key_file"),
                         f"'dkim.key_file' {shorten(key_text)!r} is outside the project folder",
                         "keep the key under .mirage/ (git-ignored), or give an absolute path "
                         "such as /etc/mirage/dkim.pem")
    return DkimConfig(domain=domain, selector=selector, key_env=key_env, key_file=key_file)
