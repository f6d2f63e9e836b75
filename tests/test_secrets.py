"""The signing secret: at least 32 bytes, refused otherwise (exit 2, one line, never printed);
rotation keeps earlier keys for verification only, so links already sent keep working."""

from __future__ import annotations

import email
import hmac
import random
import re
import stat
from email import policy
from pathlib import Path
from urllib.parse import unquote

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.util.errors import InputError
from mirage_mailer.util.tokens import Signer, _b64, load_secret

ISSUE = "2021-10-partners-meeting"
MARIA = "maria.georgiou@example.org"
OLD = "o" * 40
NEW = "n" * 40


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": warning: " not in line]


@pytest.mark.parametrize("content", [b"", b"\n", b"x", b"x" * 31 + b"\n"])
def test_an_empty_or_short_secret_file_is_refused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "secret").write_bytes(content)
    with pytest.raises(InputError) as caught:
        load_secret(tmp_path, None)
    line = str(caught.value)
    assert "\n" not in line
    assert "secret" in line and "32" in line and "token_urlsafe" in line
    assert "xxx" not in line


def test_a_short_env_secret_is_refused_naming_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRAGE_SECRET_T", "hunter2")
    with pytest.raises(InputError) as caught:
        load_secret(tmp_path, "MIRAGE_SECRET_T")
    line = str(caught.value)
    assert "MIRAGE_SECRET_T" in line and "32" in line and "hunter2" not in line
    assert not (tmp_path / "secret").exists()


def test_a_short_earlier_key_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(f"{NEW}\nqz7kq\n")
    with pytest.raises(InputError) as caught:
        load_secret(tmp_path, None)
    assert "secret:2: " in str(caught.value) and "qz7kq" not in str(caught.value)


def test_earlier_keys_verify_and_only_the_current_one_signs(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    old = Signer(OLD.encode())
    old_token = old.make("unsubscribe", ISSUE, MARIA)
    old_click = old.clicks(ISSUE).token(old.subject_id(MARIA), "https://example.org/a")
    (tmp_path / "secret").write_text(f"{NEW}\n{OLD}\n")
    rotated = Signer(load_secret(tmp_path, None))
    assert rotated.verify("unsubscribe", old_token) == (ISSUE, old.subject_id(MARIA))
    assert rotated.verify_click(old_click, "https://example.org/a") == (
        ISSUE, old.subject_id(MARIA))
    assert rotated.verify("view", old_token) is None  # still bound to its purpose
    assert rotated.make("unsubscribe", ISSUE, MARIA) == Signer(NEW.encode()).make(
        "unsubscribe", ISSUE, MARIA)
    monkeypatch.setenv("MIRAGE_SECRET_T", f"{NEW} {OLD}")
    from_env = Signer(load_secret(tmp_path / "elsewhere", "MIRAGE_SECRET_T"))
    assert from_env.verify("unsubscribe", old_token) is not None
    assert from_env.subject_id(MARIA) == Signer(NEW.encode()).subject_id(MARIA)
    assert Signer(NEW.encode()).verify("unsubscribe", old_token) is None


def test_short_secret_stops_send_with_one_line_and_sends_nothing(project: Path,
                                                                 run_cli: RunCli) -> None:
    (project / ".mirage").mkdir(exist_ok=True)  # init makes it
    (project / ".mirage/secret").write_text("abc\n")
    result = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert result.code == 2
    assert len(errors(result.err)) == 1, result.err
    assert ".mirage/secret" in result.err and "abc" not in result.err
    assert not (project / "outbox/new").exists() or not any((project / "outbox/new").iterdir())


def test_env_secret_short_stops_preview(project: Path, run_cli: RunCli) -> None:
    text = (project / "mirage.yaml").read_text()
    (project / "mirage.yaml").write_text(text.replace(
        "  database: .mirage/tracking.sqlite", "  database: .mirage/tracking.sqlite\n"
        "  secret_env: MIRAGE_SIGNING_SECRET"))
    result = run_cli("preview", SAMPLE_ISSUE, env={"MIRAGE_SIGNING_SECRET": "tooshort"})
    assert result.code == 2
    assert "MIRAGE_SIGNING_SECRET" in result.err and "tooshort" not in result.err
    assert len(errors(result.err)) == 1, result.err



def _with_secret_env(project: Path) -> None:
    text = (project / "mirage.yaml").read_text()
    (project / "mirage.yaml").write_text(text.replace(
        "  database: .mirage/tracking.sqlite", "  database: .mirage/tracking.sqlite\n"
        "  secret_env: MIRAGE_SIGNING_SECRET"))


def _secret_lines(stderr: str) -> list[str]:
    return [line for line in errors(stderr) if "signing secret" in line]


def test_validate_refuses_a_short_secret_file_like_preview(project: Path,
                                                           run_cli: RunCli) -> None:
    (project / ".mirage").mkdir(exist_ok=True)  # init makes it
    (project / ".mirage/secret").write_text("qz7kq\n")
    refused = run_cli("preview", SAMPLE_ISSUE)
    result = run_cli("validate", SAMPLE_ISSUE)
    assert refused.code == 2 and result.code == 2, result
    assert _secret_lines(result.err) == _secret_lines(refused.err), result.err
    assert len(_secret_lines(result.err)) == 1 and "qz7kq" not in result.err
    assert (project / ".mirage/secret").read_text() == "qz7kq\n"


def test_validate_refuses_a_short_env_secret_and_writes_no_secret(project: Path,
                                                                  run_cli: RunCli) -> None:
    _with_secret_env(project)
    env = {"MIRAGE_SIGNING_SECRET": "qz7kq"}
    refused = run_cli("preview", SAMPLE_ISSUE, env=env)
    result = run_cli("validate", SAMPLE_ISSUE, env=env)
    assert refused.code == 2 and result.code == 2, result
    assert _secret_lines(result.err) == _secret_lines(refused.err), result.err
    assert len(_secret_lines(result.err)) == 1
    assert "MIRAGE_SIGNING_SECRET" in result.err and "qz7kq" not in result.err
    assert not (project / ".mirage/secret").exists()
    assert run_cli("validate", SAMPLE_ISSUE, env={"MIRAGE_SIGNING_SECRET": NEW}).code == 0


def test_validate_creates_no_secret_where_there_is_none(project: Path, run_cli: RunCli) -> None:
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert not (project / ".mirage/secret").exists()


def mailto_token(project: Path, address: str) -> str:
    for path in sorted((project / "outbox/new").iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"].addresses[0].addr_spec == address:
            found = re.search(r"\?subject=([^>]+)>", str(message["List-Unsubscribe"]))
            assert found is not None
            return unquote(found.group(1))
    raise AssertionError(address)


def test_rotate_secret_keeps_old_mailto_links_working(project: Path, run_cli: RunCli) -> None:
    sent = run_cli("send", SAMPLE_ISSUE, "--yes")
    assert sent.code == 0, sent.err
    before = (project / ".mirage/secret").read_text().split()
    assert len(before) == 1
    request = mailto_token(project, MARIA)

    rotated = run_cli("rotate-secret")
    assert rotated.code == 0, rotated.err
    after = (project / ".mirage/secret").read_text().split()
    assert len(after) == 2 and after[1] == before[0] and len(after[0]) >= 32
    assert before[0] not in rotated.out + rotated.err and after[0] not in rotated.out
    assert stat.S_IMODE((project / ".mirage/secret").stat().st_mode) == 0o600

    inbox = project / "inbox"
    for sub in ("new", "cur", "tmp"):
        (inbox / sub).mkdir(parents=True)
    mail = (f"From: {MARIA}\r\nTo: info@mirageproject.eu\r\nSubject: {request}\r\n"
            "Date: Mon, 01 Nov 2021 10:00:00 +0100\r\nMessage-ID: <1@example.org>\r\n\r\n"
            "bye\r\n").encode()
    (inbox / "new/1.maria.host").write_bytes(mail)
    done = run_cli("process-unsubscribes", "--maildir", "inbox")
    assert done.code == 0, done.err
    assert f"unsubscribed {MARIA}" in done.out, done.out


def test_subject_ids_and_signatures_keep_base64url_text_exactly() -> None:
    """Subject ids sit in the store and in links already sent: the faster encoder must write
    exactly what ``base64.urlsafe_b64encode`` wrote, for every byte and length."""
    import base64
    import hmac
    import random

    from mirage_mailer.util.tokens import _b64

    rnd = random.Random(13)
    for size in range(0, 40):
        for _ in range(50):
            raw = rnd.randbytes(size)
            assert _b64(raw) == base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    key = b"k" * 32
    for address in ("Someone@Example.org", " a+b@x.eu ", "zoë@münchen.de"):
        digest = hmac.digest(key, b"id\x00" + address.strip().lower().encode(), "sha256")
        old = base64.urlsafe_b64encode(digest[:12]).rstrip(b"=").decode("ascii")
        assert Signer(key).subject_id(address) == old


@pytest.mark.parametrize("size", [32, 48, 63, 64, 65, 100, 200])
def test_the_subject_id_is_the_hmac_the_library_computes(size: int) -> None:
    """``Signer.subject_id`` hashes its padded key once; the id must stay exactly
    HMAC-SHA256 (the store keeps it and old links carry it), for any key length."""
    rnd = random.Random(size)
    key = bytes(rnd.randrange(256) for _ in range(size))
    signer = Signer(key)
    for address in ("Maria.Georgiou@Example.org", " x@y.z ", "josé@münchen-hilfe.de", "",
                    "a" * 300 + "@example.org"):
        want = hmac.digest(key, b"id\x00" + address.strip().lower().encode(), "sha256")
        assert signer.subject_id(address) == _b64(want[:12])
    assert signer.subject_id("a@b.c") == signer.subject_id("A@B.C")  # states not consumed
