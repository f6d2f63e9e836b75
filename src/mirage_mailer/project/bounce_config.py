"""The ``bounces:`` section of mirage.yaml: the VERP return path and the bounce mailbox.

Kept apart from ``config.py`` because it is one concern with its own rules: the VERP base
address must leave room in the 64-octet local part (RFC 5321 4.5.3.1.1) for the token, the
mailbox is a Maildir or an IMAP folder reached over TLS only, and the soft-bounce limit is a
count within a window of days. Every value is type and range checked as ``path:line``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mirage_mailer.project.config_checks import Section, has_userinfo, redact, secret_in_query
from mirage_mailer.project.paths import project_path
from mirage_mailer.project.yamlsrc import LineDict
from mirage_mailer.util.addresses import parse_mailbox
from mirage_mailer.util.errors import Collector, shorten

BOUNCE_KEYS = {"address", "verp", "delimiter", "mailbox", "username_env", "password_env",
               "ca_file", "soft_limit", "soft_window_days", "processed", "done_folder",
               "ignored_folder", "unmatched_folder", "before_run_due"}
DELIMITERS = ("+", "-")
PROCESSED = ("seen", "move", "keep")
TOKEN_ROOM = 28  # VERP token (services/verp.py, two billion rows) plus its delimiter
MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1: octets in a local part
# RFC 5322 dot-atom: the characters a local part may hold without quoting.
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*/=?^_`{|}~+-]+(?:\.[A-Za-z0-9!#$%&'*/=?^_`{|}~+-]+)*$")
_FOLDER = re.compile(r"^[\x20-\x7e]{1,200}$")


@dataclass(frozen=True)
class ImapMailbox:
    host: str
    port: int
    folder: str
    tls: bool  # True: imaps:// (TLS from the start); False: imap:// with STARTTLS required


@dataclass(frozen=True)
class BounceConfig:
    """Where bounces come back to, and what reading them does."""

    address: str  # the VERP base, e.g. bounces@example.org
    verp: bool
    delimiter: str
    maildir: Path | None
    imap: ImapMailbox | None
    username_env: str | None
    password_env: str | None
    ca_file: Path | None
    soft_limit: int
    soft_window_days: int
    processed: str  # seen | move | keep
    done_folder: str
    ignored_folder: str | None
    unmatched_folder: str | None  # mail that matches nothing, set aside unread; None: as read
    before_run_due: bool

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def mailbox_set(self) -> bool:
        return self.maildir is not None or self.imap is not None


def load_bounces(sec: LineDict | None, path: Path, problems: Collector, root: Path,
                 return_path: str) -> BounceConfig | None:
    """The section as written, or None when mirage.yaml has no ``bounces:`` (VERP off).
    Its keys are checked by the caller (``config.py``) against ``BOUNCE_KEYS``."""
    if sec is None:
        return None
    s = Section(sec, path, "bounces", problems)
    address = _address(s, return_path)
    delimiter = s.choice("delimiter", "+", DELIMITERS)
    local = address.rpartition("@")[0]
    if delimiter in local and "address" in sec:
        problems.add(path, s.line("address"),
                     f"'bounces.address' {address!r} already holds the delimiter '{delimiter}'",
                     "give the plain base address, e.g. bounces@example.org")
    maildir, imap = _mailbox(s, root)
    processed = s.choice("processed", "seen", PROCESSED)
    config = BounceConfig(
        address=address,
        verp=s.flag("verp", True),
        delimiter=delimiter,
        maildir=maildir,
        imap=imap,
        username_env=s.env_name("username_env"),
        password_env=s.env_name("password_env"),
        ca_file=_ca_file(s, root),
        soft_limit=s.integer("soft_limit", 3, minimum=1, maximum=100),
        soft_window_days=s.integer("soft_window_days", 30, minimum=1, maximum=365),
        processed=processed,
        done_folder=_folder(s, "done_folder", "Processed") or "Processed",
        ignored_folder=_folder(s, "ignored_folder", None),
        unmatched_folder=_folder(s, "unmatched_folder", None),
        before_run_due=s.flag("before_run_due", True),
    )
    if imap is not None and not (config.username_env and config.password_env):
        problems.add(path, s.line("mailbox"),
                     "an IMAP 'bounces.mailbox' needs 'bounces.username_env' and "
                     "'bounces.password_env'",
                     "name the environment variables that hold the IMAP user and password")
    return config


def _address(s: Section, return_path: str) -> str:
    written = s.text("address")
    address = return_path
    if written:
        _, address, bad = parse_mailbox(written)
        if bad:
            s.problems.add(s.path, s.line("address"), f"'bounces.address' {bad}",
                           "write the base address, e.g. bounces@example.org")
            return return_path
    local = address.rpartition("@")[0]
    line = s.line("address") if written else s.data.line
    if not _DOT_ATOM.match(local):
        s.problems.add(s.path, line, f"the bounce address {address!r} has a quoted or unusual "
                       "local part, which cannot carry a VERP token",
                       "set 'bounces.address' to a plain one, e.g. bounces@example.org")
    elif len(local.encode()) + TOKEN_ROOM > MAX_LOCAL:
        s.problems.add(s.path, line, f"the local part of the bounce address {address!r} is "
                       f"{len(local.encode())} characters; with the VERP token it must fit in "
                       f"{MAX_LOCAL} (RFC 5321), so at most {MAX_LOCAL - TOKEN_ROOM}",
                       "set 'bounces.address' to a shorter one, e.g. bounces@example.org")
    return address


def _mailbox(s: Section, root: Path) -> tuple[Path | None, ImapMailbox | None]:
    url = s.text("mailbox")
    if not url:
        return None, None
    shown = shorten(redact(url))
    line = s.line("mailbox")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("imaps", "imap"):
        if has_userinfo(url):
            s.problems.add(s.path, line, f"'bounces.mailbox' {shown!r} holds a user name or "
                           "password",
                           "remove them; name the environment variables that hold them with "
                           "username_env and password_env")
            return None, None
        if secret_in_query(s.problems, s.path, line, "bounces.mailbox", url,
                           "bounces.password_env"):
            return None, None
        try:
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port
        except ValueError:
            host, port = "", None
        folder = unquote(parts.path.lstrip("/")) if host else ""
        if not host:
            s.problems.add(s.path, line, f"'bounces.mailbox' {shown!r} is not a usable IMAP "
                           "URL", "write imaps://host[:port]/FOLDER")
            return None, None
        if folder and not _FOLDER.match(folder):
            s.problems.add(s.path, line, f"'bounces.mailbox' folder {folder!r} is not plain "
                           "ASCII", "give the folder's IMAP name, e.g. INBOX or Bounces")
            return None, None
        tls = scheme == "imaps"
        return None, ImapMailbox(host, port or (993 if tls else 143), folder or "INBOX", tls)
    if scheme:
        s.problems.add(s.path, line, f"'bounces.mailbox' {shown!r} has an unknown scheme",
                       "use a Maildir folder (maildir:PATH or PATH), imaps://host/FOLDER, or "
                       "imap://host/FOLDER (STARTTLS)")
        return None, None
    folder_path = url[len("maildir:"):] if url.startswith("maildir:") else url
    return project_path(root, folder_path), None


def _ca_file(s: Section, root: Path) -> Path | None:
    value = s.text("ca_file")
    if not value:
        return None
    path = project_path(root, value)
    if not path.is_file():
        s.problems.add(s.path, s.line("ca_file"), f"'bounces.ca_file' {value!r} is not a file",
                       "give the PEM file of the CA that signed the IMAP server's certificate")
        return None
    return path


def _folder(s: Section, key: str, default: str | None) -> str | None:
    value = s.text(key, default)
    if value is None:
        return None
    if not _FOLDER.match(value) or value.startswith(".") or "/" in value:
        s.problems.add(s.path, s.line(key), f"'bounces.{key}' {value!r} is not a usable folder "
                       "name", "use plain ASCII letters, e.g. Processed")
        return default
    return value

