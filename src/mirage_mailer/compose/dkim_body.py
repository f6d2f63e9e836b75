"""The DKIM body hash (RFC 6376 3.4.4 relaxed, SHA-256), with the canonical form of the
body's constant runs computed once per language.

A newsletter body is about 14 KB of which a few dozen bytes change per recipient (the
greeting, the unsubscribe link): canonicalising all of it for every message cost more than
hashing it (bench/dkim_cost.py). Relaxed body canonicalisation works line by line, except
for the empty lines at the very end, so a body cut at line starts canonicalises piece by
piece: the builder names its constant runs (``BodyHints.learn``), their canonical form is
kept, and per message only the bytes between them are canonicalised.

The hints are only ever a shortcut: a run counts where the body holds it byte for byte at
the start of a line; anything else (a run not found, a body from another builder, CRLF
line endings) is canonicalised in full, so the hash is the same with or without them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

SPACES = re.compile(rb"  +")  # a single space is already canonical: left alone
KEY = 48  # a body's first bytes that pick its runs (message.py: the MIME boundary is there)
PROBE = 32  # a run's first bytes, searched for before the whole run is compared
MIN_RUN = 64  # shorter runs save less than looking for them costs


def canonical_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4 relaxed: blanks compressed, none at line ends, no empty lines at the
    end, CRLF line endings; an empty body stays empty.

    Tabs become spaces first, so the one regular expression left starts with a literal
    (``"  "``) that the engine finds with a fast search: ``[ \t]{2,}|\t`` tried every byte
    and took over 400 µs on a 13 KB newsletter, this takes under 20 (bench/dkim_cost.py)."""
    body = _lines(body).rstrip(b" \n")
    return body.replace(b"\n", b"\r\n") + b"\r\n" if body else b""


def _lines(text: bytes) -> bytes:
    """The line-by-line part of relaxed canonicalisation, in LF form: what a piece of a
    body that starts a line and ends with one canonicalises to on its own."""
    if b"\r" in text:
        text = text.replace(b"\r\n", b"\n")
    if b"\t" in text:
        text = text.replace(b"\t", b" ")
    if b"  " in text:
        text = SPACES.sub(b" ", text)
    if b" \n" in text:
        text = text.replace(b" \n", b"\n")
    return text


@dataclass(frozen=True)
class _Run:
    data: bytes  # as in the body: starts a line, ends with a newline
    probe: bytes
    lines: bytes  # canonical, LF form
    wire: bytes  # canonical, CRLF form: what is hashed


class BodyHints:
    """Constant runs of the bodies a builder makes, in order, grouped by the body's first
    bytes (one group per language skeleton)."""

    def __init__(self) -> None:
        self._groups: dict[bytes, tuple[_Run, ...]] = {}
        self.cached_bytes = 0  # body bytes whose canonical form came from a run (the tests)

    def learn(self, runs: Iterable[bytes]) -> None:
        """Runs of one kind of body, in body order; the first must start the body. Each is
        cut back to its last newline (the partial line after it is canonicalised with the
        per-recipient bytes that follow); runs that do not start a line are never found."""
        kept = []
        for run in runs:
            run = run[:run.rfind(b"\n") + 1]
            if len(run) >= MIN_RUN:
                lines = _lines(run)
                kept.append(_Run(run, run[:PROBE], lines, lines.replace(b"\n", b"\r\n")))
        if kept and len(kept[0].data) >= KEY:
            self._groups[kept[0].data[:KEY]] = tuple(kept)

    def digest(self, body: bytes) -> bytes:
        """SHA-256 of ``canonical_body(body)``."""
        runs = self._groups.get(body[:KEY]) if self._groups else None
        if runs is None:
            return hashlib.sha256(canonical_body(body)).digest()
        pieces: list[tuple[bytes, bytes | None]] = []  # (LF form, CRLF form if known)
        pos = 0
        for run in runs:
            at = _find(body, run, pos)
            if at < 0:
                continue
            if at > pos:
                pieces.append((_lines(body[pos:at]), None))
            pieces.append((run.lines, run.wire))
            self.cached_bytes += len(run.data)
            pos = at + len(run.data)
        if pos < len(body):
            pieces.append((_lines(body[pos:]), None))
        return _hash(pieces)


def _find(body: bytes, run: _Run, pos: int) -> int:
    """Where ``run`` sits in ``body`` at or after ``pos``, at the start of a line; -1."""
    at = body.find(run.probe, pos)
    while at >= 0:
        if (at == 0 or body[at - 1] == 0x0A) and body.startswith(run.data, at):
            return at
        at = body.find(run.probe, at + 1)
    return -1


def _hash(pieces: list[tuple[bytes, bytes | None]]) -> bytes:
    """The canonical pieces hashed in order, with the end rule: no empty lines at the end,
    one CRLF after the last line, nothing at all for a blank body."""
    while pieces and not pieces[-1][0].rstrip(b" \n"):
        pieces.pop()
    state = hashlib.sha256()
    if not pieces:
        return state.digest()
    last = pieces.pop()[0].rstrip(b" \n")
    for lines, wire in pieces:
        state.update(wire if wire is not None else lines.replace(b"\n", b"\r\n"))
    state.update(last.replace(b"\n", b"\r\n") + b"\r\n")
    return state.digest()
