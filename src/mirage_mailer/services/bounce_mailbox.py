"""The bounce mailbox: a Maildir, or an IMAP folder over TLS only (imaps, or STARTTLS that
must succeed), with the server's certificate verified. What to do with a processed mail is
``bounces.processed``: ``seen`` (flag it; only unseen mail is read), ``move`` (to
``done_folder``) or ``keep`` (leave it; the store's record keeps it from counting twice).
Mail that matches nothing can be set aside unread in ``unmatched_folder`` instead.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mirage_mailer.delivery.tls import client_context
from mirage_mailer.project.bounce_config import BounceConfig, ImapMailbox
from mirage_mailer.services.bounce_parse import MAX_BYTES
from mirage_mailer.util.errors import DeliveryError, InputError, Problem, display_path
from mirage_mailer.util.maildirfile import NotRegularFile, entry_ref, open_regular


@dataclass(frozen=True)
class RawMail:
    ref: str  # for the summary: a file name or an IMAP UID
    handle: str
    data: bytes | None  # None: too large or unreadable (problem says which)
    problem: str | None = None
    size: int = 0
    leave: bool = False  # not to be marked or moved (not a regular file: not ours to touch)


class BounceBox(Protocol):
    def messages(self) -> Iterator[RawMail]: ...

    def finish(self, mail: RawMail, folder: str | None, *, seen: bool = True) -> str | None:
        """Mark or move ``mail`` as handled (to ``folder`` when given; left unread there
        without ``seen``); a note if it failed."""
        ...

    def close(self) -> None: ...


def _split_info(name: str) -> tuple[str, str]:
    base, _, info = name.partition(":")
    return base, info[2:] if info.startswith("2,") else ""


class MaildirBounces:
    """A Maildir; folders for ``move`` are Maildir++ sub-folders (``.Processed``)."""

    def __init__(self, root: Path, processed: str) -> None:
        if not (root / "new").is_dir() or not (root / "cur").is_dir():
            raise InputError(Problem(display_path(root), None, "the bounce mailbox is not a "
                                     "Maildir (no new/ and cur/ folders)",
                                     "check bounces.mailbox in mirage.yaml"))
        self.root, self.processed = root, processed

    def messages(self) -> Iterator[RawMail]:
        paths = [p for sub in ("new", "cur") for p in sorted((self.root / sub).iterdir())
                 if self._wanted(p)]
        for path in paths:
            ref = entry_ref(path)
            try:
                with open_regular(path) as (handle, info):
                    if info.st_size > MAX_BYTES:
                        yield RawMail(ref, str(path), None, f"{info.st_size:,} bytes, too "
                                      "large for a bounce", info.st_size)
                        continue
                    data = handle.read(MAX_BYTES + 1)
            except NotRegularFile as exc:  # never followed: a link could point anywhere
                yield RawMail(ref, str(path), None, exc.line, leave=True)
                continue
            except OSError as exc:
                yield RawMail(ref, str(path), None, f"cannot read: {exc.strerror}")
                continue
            yield RawMail(ref, str(path), data, None, len(data))

    def _wanted(self, path: Path) -> bool:
        if path.name.startswith("."):
            return False
        seen = "S" in _split_info(path.name)[1]
        return path.parent.name == "new" or not seen or self.processed != "seen"

    def finish(self, mail: RawMail, folder: str | None, *, seen: bool = True) -> str | None:
        source = Path(mail.handle)
        base, flags = _split_info(source.name)
        name = f"{base}:2,{''.join(sorted(set(flags) | ({'S'} if seen else set())))}"
        if folder is not None:
            target_dir = self.root / f".{folder}"
            for sub in ("cur", "new", "tmp"):
                (target_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
            target = target_dir / "cur" / name
        elif self.processed == "keep":
            return None
        else:
            target = self.root / "cur" / name
        if target == source:
            return None
        try:
            os.rename(source, target)
        except OSError as exc:
            return f"could not {'move' if folder else 'mark'} it: {exc.strerror}"
        return None

    def close(self) -> None:
        return None


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificate and host name verified, TLS >= 1.2: the SMTP relay's context
    (delivery/tls.py), with a private CA from ``bounces.ca_file``."""
    return client_context(ca_file=ca_file)


class ImapBounces:
    """One IMAP folder through imapclient; read-only (EXAMINE) for a dry run."""

    def __init__(self, target: ImapMailbox, config: BounceConfig, *, user: str,
                 password: str, readonly: bool, timeout: float = 30.0) -> None:
        from imapclient import IMAPClient  # imported only when an IMAP mailbox is used

        self.target, self.config, self.readonly = target, config, readonly
        self.where = f"{target.host}:{target.port}"
        context = tls_context(config.ca_file)
        try:
            self.client = IMAPClient(target.host, port=target.port, ssl=target.tls,
                                     ssl_context=context, timeout=timeout)
        except (OSError, ssl.SSLError) as exc:
            raise self._fault("cannot connect", exc, "check bounces.mailbox (host and port), "
                              "the network, and the server's certificate") from None
        try:
            self._open(user, password, context)
        except BaseException:
            self.close()
            raise

    def _fault(self, what: str, exc: BaseException, hint: str) -> DeliveryError:
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        return DeliveryError(Problem("bounces.mailbox", None, f"{what} {self.where}: {text}",
                                     hint))

    def _open(self, user: str, password: str, context: ssl.SSLContext) -> None:
        from imapclient.exceptions import IMAPClientError

        try:
            if not self.target.tls:
                if b"STARTTLS" not in self.client.capabilities():
                    raise DeliveryError(Problem(
                        "bounces.mailbox", None, f"{self.where} does not offer STARTTLS; "
                        "mirage-mailer never sends an IMAP password unencrypted",
                        "use imaps://host/FOLDER, or enable TLS on the server"))
                try:
                    self.client.starttls(context)
                except (IMAPClientError, OSError, ssl.SSLError) as exc:
                    raise self._fault("STARTTLS failed with", exc, "no login was tried; check "
                                      "that the server's STARTTLS works and its certificate "
                                      "(bounces.ca_file for a private CA), or use "
                                      "imaps://host/FOLDER") from None
            self.client.login(user, password)
        except DeliveryError:
            raise
        except IMAPClientError as exc:
            raise self._fault("login refused by", exc, "check the variables named by "
                              "bounces.username_env and bounces.password_env") from None
        except (OSError, ssl.SSLError) as exc:
            raise self._fault("TLS or connection failure with", exc,
                              "check the server's certificate (bounces.ca_file for a private "
                              "CA) and the network") from None
        try:
            self.client.select_folder(self.target.folder, readonly=self.readonly)
        except IMAPClientError as exc:
            raise InputError(Problem("bounces.mailbox", None, f"no folder "
                                     f"'{self.target.folder}' on {self.where}: "
                                     f"{' '.join(str(exc).split())[:200]}",
                                     "check the folder in bounces.mailbox")) from None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from imapclient.exceptions import IMAPClientError

        try:
            return getattr(self.client, method)(*args, **kwargs)
        except (TimeoutError, IMAPClientError, OSError, ssl.SSLError) as exc:
            raise self._fault("lost", exc, "rerun: mail already recorded is never counted "
                              "twice") from None

    def messages(self) -> Iterator[RawMail]:
        criteria = ["UNSEEN"] if self.config.processed == "seen" else ["ALL"]
        uids = sorted(int(u) for u in self._call("search", criteria))
        for uid in uids:
            ref = f"imap UID {uid}"
            sizes = self._call("fetch", [uid], ["RFC822.SIZE"])
            size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
            if size > MAX_BYTES:
                yield RawMail(ref, str(uid), None, f"{size:,} bytes, too large for a bounce",
                              size)
                continue
            fetched = self._call("fetch", [uid], ["BODY.PEEK[]"])
            data = fetched.get(uid, {}).get(b"BODY[]")
            if not isinstance(data, bytes):
                yield RawMail(ref, str(uid), None, "the server sent no message")
                continue
            yield RawMail(ref, str(uid), data[: MAX_BYTES + 1], None, len(data))

    def finish(self, mail: RawMail, folder: str | None, *, seen: bool = True) -> str | None:
        # read with BODY.PEEK: a mail moved stays unread (``seen`` only flags one left here)
        from imapclient import SEEN
        from imapclient.exceptions import IMAPClientError

        uid = int(mail.handle)
        try:
            if folder is None:
                if self.config.processed == "seen":
                    self.client.add_flags([uid], [SEEN], silent=True)
                return None
            if not self.client.folder_exists(folder):
                self.client.create_folder(folder)
            if self.client.has_capability("MOVE"):
                self.client.move([uid], folder)
            else:
                self.client.copy([uid], folder)
                self.client.delete_messages([uid], silent=True)
                if self.client.has_capability("UIDPLUS"):
                    self.client.uid_expunge([uid])
                else:
                    self.client.expunge()
        except (IMAPClientError, OSError, ssl.SSLError) as exc:
            said = " ".join(str(exc).split())[:120]
            return f"could not {'move' if folder else 'flag'} it: {said}"
        return None

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # already gone: close the socket, whatever state it is in
            with contextlib.suppress(Exception):
                client.shutdown()
