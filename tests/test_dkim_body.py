"""The body hash with the builder's constant runs (``compose/dkim_body.py``): the same hash
as canonicalising the whole body, whatever the hints say, and the hints of a real send
actually used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import SAMPLE_ISSUE
from mirage_mailer.compose.dkim_body import KEY, MIN_RUN, BodyHints, canonical_body
from mirage_mailer.compose.message import Personal
from mirage_mailer.delivery import Envelope
from mirage_mailer.services.loader import open_project
from mirage_mailer.services.preparation import for_the_wire
from mirage_mailer.services.sending import SendOptions, prepare
from test_dkim_config import ENV
from test_dkim_send import signing, verify  # noqa: F401  (the fixture)

LINE = st.text(alphabet=st.sampled_from(list("ab. \t=")), max_size=12)
CHUNK = st.lists(LINE, max_size=8).map(lambda lines: "\n".join(lines))
HEAD = "--=_mm_alt_0123456789abcdef\nContent-Type: text/plain\n\n"


def full(body: bytes) -> bytes:
    return hashlib.sha256(canonical_body(body)).digest()


def long_runs(chunks: list[str]) -> list[bytes]:
    """The constant chunks padded past ``MIN_RUN``, so the hints take them."""
    return [(HEAD if n == 0 else "") + c + "\n" + "x y  z\t \n" * (MIN_RUN // 8)
            for n, c in enumerate(chunks)]


@settings(max_examples=300, deadline=None)
@given(st.lists(CHUNK, min_size=1, max_size=5), st.lists(CHUNK, min_size=5, max_size=5),
       st.sampled_from(["", "\n", "\n\n", "  \n \t\n", "\r\n", "end"]))
def test_hinted_hash_is_the_full_hash(chunks: list[str], values: list[str], end: str) -> None:
    """Bodies made like message.py's (runs, then ``=\\n`` value ``=\\n`` between them),
    with blanks at line ends, runs of spaces, tabs and empty lines at the end."""
    runs = long_runs(chunks)
    body = runs[0]
    for value, run in zip(values, runs[1:], strict=False):
        body += "=\n" + value + "=\n" + run
    body += end
    hints = BodyHints()
    hints.learn(r.encode() for r in runs)
    assert hints.digest(body.encode()) == full(body.encode())
    assert hints.cached_bytes > 0


@settings(max_examples=200, deadline=None)
@given(st.lists(CHUNK, min_size=2, max_size=4), CHUNK, st.integers(0, 400),
       st.sampled_from([b"  ", b"\t", b"\n\n", b"q", b""]))
def test_wrong_hints_change_nothing(chunks: list[str], middle: str, cut: int,
                                    edit: bytes) -> None:
    """A body that differs from its hints (edited inside a run, a run that does not start a
    line, runs out of order, a run missing) still hashes as the full body."""
    runs = [r.encode() for r in long_runs(chunks)]
    body = bytearray(runs[0] + b"=\n" + middle.encode() + b"=\n" + b"=".join(runs[1:][::-1]))
    at = min(cut, len(body))
    body[at:at] = edit
    hints = BodyHints()
    hints.learn(runs)
    assert hints.digest(bytes(body)) == full(bytes(body))


def test_a_run_in_the_middle_of_a_line_is_not_taken() -> None:
    """Blanks before it and at its start are one run of spaces in the body: the run's own
    canonical form (which starts a line) would be wrong there."""
    second = b"  \tsecond run\n" * MIN_RUN
    hints = BodyHints()
    hints.learn([HEAD.encode() + b"first\n" * MIN_RUN, second])
    body = HEAD.encode() + b"first\n" * MIN_RUN + b"=\nvalue \t" + second
    assert hints.digest(body) == full(body)
    assert hints.digest(body.replace(b"value \t", b"value\n")) == full(
        body.replace(b"value \t", b"value\n"))


def test_a_body_no_hint_describes_is_hashed_in_full() -> None:
    hints = BodyHints()
    hints.learn([HEAD.encode() + b"a\n" * MIN_RUN])
    for body in (b"", b"\n", b"other\n" * 40, HEAD.replace("0", "1").encode() + b"a\n" * 80,
                 (HEAD + "a\n" * MIN_RUN).replace("\n", "\r\n").encode()):
        assert hints.digest(body) == full(body)
    assert hints.cached_bytes == 0
    blank = HEAD.encode()[:KEY] + b"\n"  # too short a first run to be learnt
    hints.learn([blank])
    assert hints.digest(blank) == full(blank)


def test_a_send_uses_the_skeletons_runs(project: Path, signing: dict[str, str],  # noqa: F811
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The send's signer knows each language's constant runs: nearly all of a body's bytes
    come canonicalised from them (if message.py's layout changes, this says so), and the
    message still verifies."""
    monkeypatch.setenv(ENV, signing[ENV])
    opened = open_project(project / "mirage.yaml", project / SAMPLE_ISSUE)
    prep = prepare(opened, SendOptions(dry_run=True))
    assert prep.dkim is not None
    for lang in prep.rendered:
        person = Personal("reader@example.org", "Réader  Name", "subscribers", {})
        built = prep.factory.build(person, lang)
        before = prep.dkim.body.cached_bytes
        [out] = for_the_wire(prep, iter([Envelope(1, "news@mirageproject.eu", person.email,
                                                  built)]))
        body = built.partition(b"\n\n")[2]
        assert prep.dkim.body.cached_bytes - before > 0.9 * len(body), lang
        assert verify(out.data.replace(b"\n", b"\r\n"))
