"""A small IMAP4rev1 server on 127.0.0.1 for tests: TLS from a trustme CA, enough of the
protocol for imaplib and imapclient (CAPABILITY, STARTTLS, LOGIN, SELECT/EXAMINE, LIST,
CREATE, UID SEARCH/FETCH/STORE/COPY/MOVE/EXPUNGE, LOGOUT), and a log of the commands.

Why not Dovecot: it needs root-owned system users and privilege separation to start, which a
test run as an ordinary user cannot count on; this speaks the same wire protocol the client
code meets, with real TLS and certificate checks. ``mode``: ``imaps`` (TLS from the start),
``starttls``, ``starttls-bad`` (answers STARTTLS with BAD), or ``plain`` (offers no
STARTTLS). One connection at a time; every socket has a timeout, so a test never hangs.
Needs trustme, not pytest.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

import trustme

_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"|(\([^)]*\))|(\S+)')
Mail = tuple[bytes, set[str]]


class ImapServer:
    """``folders``: folder name -> {uid: (raw message, flags)}; INBOX is ``messages``."""

    def __init__(self, ca: trustme.CA, mode: str, messages: dict[int, Mail], *,
                 password: str = "right", move: bool = True) -> None:
        self.mode = mode
        self.password = password
        self.move = move
        self.folders: dict[str, dict[int, Mail]] = {"INBOX": messages}
        self.commands: list[str] = []
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(self.context)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def messages(self) -> dict[int, Mail]:
        return self.folders["INBOX"]

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(10)
        self.listener.close()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            try:
                self._session(conn)
            except (OSError, ssl.SSLError, ValueError):
                pass
            finally:
                conn.close()

    def _capabilities(self, tls: bool) -> str:
        words = ["IMAP4rev1", "UIDPLUS"] + (["MOVE"] if self.move else [])
        if self.mode in ("starttls", "starttls-bad") and not tls:
            words.append("STARTTLS")
        return " ".join(words)

    def _session(self, conn: socket.socket) -> None:
        tls = self.mode == "imaps"
        if tls:
            conn = self.context.wrap_socket(conn, server_side=True)
        stream = conn.makefile("rwb")
        state: dict[str, Any] = {"folder": None, "readonly": True}

        def say(line: bytes | str) -> None:
            stream.write(line.encode() if isinstance(line, str) else line)
            stream.write(b"\r\n")
            stream.flush()

        say("* OK fake IMAP ready")
        while line := stream.readline():
            words = [next(g for g in m.groups() if g is not None).decode()
                     for m in _ARG.finditer(line.strip())]
            if len(words) < 2:
                say("* BAD no command")
                continue
            tag, verb, args = words[0], words[1].upper(), words[2:]
            self.commands.append(" ".join([verb, *(args if verb != "LOGIN" else args[:1])]))
            done = f"{tag} OK {verb} completed"
            if verb == "CAPABILITY":
                say(f"* CAPABILITY {self._capabilities(tls)}")
                say(done)
            elif verb == "STARTTLS" and self.mode == "starttls-bad":
                say(f"{tag} BAD STARTTLS not available now")
            elif verb == "STARTTLS" and self.mode == "starttls" and not tls:
                say(done)
                conn = self.context.wrap_socket(conn, server_side=True)
                stream = conn.makefile("rwb")
                tls = True
            elif verb == "LOGIN":
                ok = len(args) == 2 and args[1] == self.password
                say(done if ok else f"{tag} NO [AUTHENTICATIONFAILED] wrong password")
            elif verb in ("SELECT", "EXAMINE"):
                folder = args[0] if args else ""
                if folder not in self.folders:
                    say(f"{tag} NO [NONEXISTENT] no such folder")
                    continue
                state.update(folder=folder, readonly=verb == "EXAMINE")
                say(f"* {len(self.folders[folder])} EXISTS")
                say("* FLAGS (\\Seen \\Deleted)")
                say("* OK [UIDVALIDITY 1] ok")
                say(f"{tag} OK [{'READ-ONLY' if state['readonly'] else 'READ-WRITE'}] done")
            elif verb == "LIST":
                pattern = args[1] if len(args) > 1 else "*"
                for name in self.folders:
                    if pattern in ("*", name):
                        say(f'* LIST (\\HasNoChildren) "/" "{name}"')
                say(done)
            elif verb == "CREATE":
                self.folders.setdefault(args[0], {})
                say(done)
            elif verb == "UID" and state["folder"] is not None:
                self._uid(args, tag, state, say)
            elif verb == "LOGOUT":
                say("* BYE")
                say(done)
                return
            else:
                say(done)

    def _uid(self, args: list[str], tag: str, state: dict[str, Any],
             say: Callable[[bytes | str], None]) -> None:
        sub = args[0].upper()
        box = self.folders[state["folder"]]
        uids = sorted(box)
        if sub == "SEARCH":
            seen_ok = "UNSEEN" not in [a.upper() for a in args[1:]]
            found = [u for u in uids if seen_ok or "\\Seen" not in box[u][1]]
            say("* SEARCH " + " ".join(map(str, found)))
        elif sub in ("STORE", "COPY", "MOVE", "FETCH") and state["readonly"] and sub != "FETCH":
            say(f"{tag} NO read-only folder")
            return
        elif sub == "FETCH":
            for uid in (int(u) for u in args[1].split(",") if int(u) in box):
                self._fetch(uid, uids.index(uid) + 1, box[uid], args[2].upper(), say)
        elif sub == "STORE":
            flags = set(args[3].strip("()").split())
            for uid in (int(u) for u in args[1].split(",") if int(u) in box):
                if args[2].upper().startswith("-"):
                    box[uid][1].difference_update(flags)
                else:
                    box[uid][1].update(flags)
        elif sub in ("COPY", "MOVE"):
            target = self.folders.get(args[2])
            if target is None:
                say(f"{tag} NO [TRYCREATE] no such folder")
                return
            for uid in (int(u) for u in args[1].split(",") if int(u) in box):
                raw, flags = box[uid]
                target[max(target, default=0) + 1] = (raw, set(flags))
                if sub == "MOVE":
                    del box[uid]
        elif sub == "EXPUNGE":
            for uid in [u for u in uids if "\\Deleted" in box[u][1]]:
                del box[uid]
        say(f"{tag} OK UID {sub} completed")

    @staticmethod
    def _fetch(uid: int, seq: int, mail: Mail, items: str,
               say: Callable[[bytes | str], None]) -> None:
        raw, flags = mail
        parts = [f"UID {uid}".encode()]
        if "RFC822.SIZE" in items:
            parts.append(f"RFC822.SIZE {len(raw)}".encode())
        if "[HEADER]" in items:
            header = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
            parts.append(f"BODY[HEADER] {{{len(header)}}}".encode() + b"\r\n" + header)
        elif "BODY[]" in items or "BODY.PEEK[]" in items or "RFC822" in items.split():
            parts.append(f"BODY[] {{{len(raw)}}}".encode() + b"\r\n" + raw)
        if "PEEK" not in items and ("BODY" in items or "RFC822 " in items):
            flags.add("\\Seen")
        say(f"* {seq} FETCH (".encode() + b" ".join(parts) + b")")
