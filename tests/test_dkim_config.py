"""The ``dkim:`` section and the key checks of validate, preview and send.

Config mistakes come back as ``mirage.yaml:LINE`` problems (read in-process, one load each);
the key checks run through the real CLI, since their exit codes are the contract: a key that
cannot sign stops everything (exit 2, nothing sent), a weak key or a signing domain that does
not align with From is a warning (exit 0).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.project.config import load_settings
from mirage_mailer.services.dkim_keys import alignment_problem, organisational_domain
from mirage_mailer.util.errors import InputError
from support.ports import free_port
from test_dkim_signer import rsa_key

ENV = "MIRAGE_DKIM_KEY"


def pem(key: PrivateKeyTypes, password: bytes | None = None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption).decode()


def weak_512_bit_key() -> rsa.RSAPrivateKey:
    """cryptography refuses to make one; a throwaway from two fixed 256-bit primes."""
    p = 0xe7b03a2370fb0da35115676d46415296ba0eefeda4fc66df4e86124fc53c1a49
    q = 0xc9a540e2bee364357cb70a311bf7fe19825e8a4bf072d6a718576c22e4ddbacf
    e = 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                    rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, p * q))
    return numbers.private_key()


def add_dkim(project: Path, body: str) -> int:
    """Append a ``dkim:`` section; the line number of its first key."""
    config = project / "mirage.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text + "\ndkim:\n" + body, encoding="utf-8")
    return text.count("\n") + 3


def problems(project: Path) -> list[str]:
    try:
        load_settings(project / "mirage.yaml")
    except InputError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_a_valid_section_loads(project: Path) -> None:
    add_dkim(project, "  domain: MirageProject.eu.\n  selector: News-2026.a\n"
                      f"  key_env: {ENV}\n")
    dkim = load_settings(project / "mirage.yaml").dkim
    assert dkim is not None
    assert (dkim.domain, dkim.selector, dkim.key_env, dkim.key_file) == (
        "mirageproject.eu", "news-2026.a", ENV, None)
    assert problems(project) == []


@pytest.mark.parametrize(("body", "offset", "expected"), [
    ("  domain: localhost\n  selector: s1\n  key_env: K\n", 0,
     "'dkim.domain' 'localhost' is not a domain name"),
    ("  domain: -bad-.org\n  selector: s1\n  key_env: K\n", 0,
     "'dkim.domain' '-bad-.org' is not a domain name"),
    ("  domain: example.org\n  selector: news 2026\n  key_env: K\n", 1,
     "'dkim.selector' 'news 2026' is not a DKIM selector"),
    ("  domain: example.org\n  selector: a..b\n  key_env: K\n", 1,
     "'dkim.selector' 'a..b' is not a DKIM selector"),
    ("  domain: example.org\n  selector: s1\n  key_env: K\n  key_file: k.pem\n", 0,
     "'dkim' needs exactly one of 'key_env' and 'key_file'"),
    ("  domain: example.org\n  selector: s1\n", 0,
     "'dkim' needs exactly one of 'key_env' and 'key_file'"),
    ("  domain: example.org\n  selector: s1\n  key_env: '-----BEGIN'\n", 2,
     "'dkim.key_env' must name an environment variable"),
    ("  domain: example.org\n  selector: s1\n  key_file: ../k.pem\n", 2,
     "'dkim.key_file' '../k.pem' is outside the project folder"),
    ("  domain: example.org\n  selector: s1\n  key_file: ''\n", 2,
     "'dkim.key_file' is empty"),
    ("  domain: example.org\n  selector: s1\n  key_env: K\n  algorithm: rsa\n", 3,
     "algorithm"),
    ("  domain: example.org\n  key_env: K\n", None, "selector"),
])
def test_config_mistakes_name_the_line(project: Path, body: str, offset: int | None,
                                       expected: str) -> None:
    first = add_dkim(project, body)
    found = problems(project)
    assert len(found) == 1, found
    assert expected in found[0]
    if offset is not None:
        assert f"mirage.yaml:{first + offset}: " in found[0], found


def test_a_section_that_is_no_mapping(project: Path) -> None:
    config = project / "mirage.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "\ndkim: yes please\n",
                      encoding="utf-8")
    [found] = problems(project)
    assert "'dkim' must be a mapping" in found


def test_absolute_key_file_is_the_officers_choice(project: Path, tmp_path: Path) -> None:
    add_dkim(project, f"  domain: mirageproject.eu\n  selector: s1\n"
                      f"  key_file: {tmp_path / 'keys' / 'dkim.pem'}\n")
    dkim = load_settings(project / "mirage.yaml").dkim
    assert dkim is not None and dkim.key_file == tmp_path / "keys" / "dkim.pem"


def test_alignment_uses_organisational_domains() -> None:
    assert organisational_domain("news.mirage.example.co.uk") == "example.co.uk"
    assert organisational_domain("co.uk") is None
    assert alignment_problem("mirageproject.eu", "mirageproject.eu") is None
    assert alignment_problem("mail.mirageproject.eu", "news.mirageproject.eu") is None
    assert alignment_problem("example.co.uk", "news.example.co.uk") is None
    assert alignment_problem("other.co.uk", "example.co.uk") is not None
    assert alignment_problem("mailer-service.com", "mirageproject.eu") is not None
    assert alignment_problem("co.uk", "example.co.uk") is not None


# Through the CLI: the lines an officer sees and the exit codes.

def _validate(run_cli: RunCli, key: str | None) -> tuple[int, str]:
    env = {ENV: key} if key is not None else {}
    result = run_cli("validate", SAMPLE_ISSUE, env=env)
    return result.code, result.err


@pytest.fixture
def env_section(project: Path) -> int:
    os.environ.pop(ENV, None)
    return add_dkim(project, f"  domain: mirageproject.eu\n  selector: news2026\n"
                             f"  key_env: {ENV}\n")


def test_missing_variable_stops_validate_preview_and_send(project: Path, run_cli: RunCli,
                                                           env_section: int) -> None:
    line = f"mirage.yaml:{env_section + 2}: dkim.key_env names {ENV}, which is not set"
    code, err = _validate(run_cli, None)
    assert code == 2 and line in err
    for args in (("preview", SAMPLE_ISSUE), ("send", SAMPLE_ISSUE, "--yes"),
                 ("send", SAMPLE_ISSUE, "--dry-run")):
        result = run_cli(*args)
        assert result.code == 2 and line in result.err, args
    assert not (project / "outbox").exists() and not (project / "preview").exists()
    code, err = _validate(run_cli, pem(rsa_key()))
    assert code == 0, err


def test_serve_refuses_a_key_that_cannot_sign(project: Path, run_cli: RunCli,
                                             env_section: int) -> None:
    """Its sign-up confirmations are signed: refused at start, like half-set credentials."""
    result = run_cli("serve", "--port", str(free_port()), timeout=20)
    assert (result.code, result.out) == (2, "")
    assert f"mirage.yaml:{env_section + 2}: dkim.key_env names {ENV}, which is not set" in (
        result.err)


def test_broken_encrypted_and_weak_keys(run_cli: RunCli, env_section: int) -> None:
    secret_part = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    code, err = _validate(run_cli, f"-----BEGIN PRIVATE KEY-----\n{secret_part}\n"
                                   "-----END PRIVATE KEY-----\n")
    assert code == 2 and f"the DKIM key in {ENV} does not load as a PEM private key" in err
    assert secret_part not in err  # never echo the key
    code, err = _validate(run_cli, "/etc/dkim/news.pem")
    assert code == 2 and "is not PEM text" in err
    code, err = _validate(run_cli, pem(rsa_key(), b"passphrase"))
    assert code == 2 and "protected by a passphrase" in err
    code, err = _validate(run_cli, pem(weak_512_bit_key()))
    assert code == 2 and "is a 512-bit RSA key" in err
    code, err = _validate(run_cli, pem(rsa_key(1024)).replace("\n", "\\n"))  # one-line form
    assert code == 0 and "warning: the DKIM key in MIRAGE_DKIM_KEY is 1024-bit RSA" in err
    code, err = _validate(run_cli, pem(ed25519.Ed25519PrivateKey.generate()))
    assert code == 0 and "is Ed25519" in err
    code, err = _validate(run_cli, pem(ec.generate_private_key(ec.SECP256R1())))
    assert code == 2 and f"the DKIM key in {ENV} is an EC key" in err
    code, err = _validate(run_cli, pem(ed448.Ed448PrivateKey.generate()))
    assert code == 2 and f"the DKIM key in {ENV} is an Ed448 key" in err
    code, err = _validate(run_cli, pem(rsa_key()))
    assert code == 0 and "DKIM" not in err


def test_misaligned_domain_is_a_warning_that_says_what_to_change(project: Path,
                                                                 run_cli: RunCli) -> None:
    first = add_dkim(project, f"  domain: mailer-service.com\n  selector: s1\n"
                              f"  key_env: {ENV}\n")
    code, err = _validate(run_cli, pem(rsa_key()))
    assert code == 0, err
    assert (f"mirage.yaml:{first}: warning: dkim.domain 'mailer-service.com' does not align "
            "with the From domain 'mirageproject.eu'") in err
    assert "set dkim.domain to mirageproject.eu" in err


def test_key_file_must_be_private(project: Path, run_cli: RunCli) -> None:
    key_file = project / ".mirage" / "dkim.pem"
    key_file.parent.mkdir(exist_ok=True)
    key_file.write_text(pem(rsa_key()), encoding="utf-8")
    key_file.chmod(0o640)
    first = add_dkim(project, "  domain: mirageproject.eu\n  selector: s1\n"
                              "  key_file: .mirage/dkim.pem\n")
    code, err = _validate(run_cli, None)
    assert code == 2
    assert ".mirage/dkim.pem: the DKIM private key is open to other users (mode 0640)" in err
    assert "chmod 600 .mirage/dkim.pem" in err
    key_file.chmod(0o600)
    code, err = _validate(run_cli, None)
    assert code == 0, err
    key_file.unlink()
    code, err = _validate(run_cli, None)
    assert code == 2 and f"mirage.yaml:{first + 2}: dkim.key_file .mirage/dkim.pem: " in err


def test_an_internationalised_domain_aligns_in_either_form() -> None:
    """``bücher.de`` and ``xn--bcher-kva.de`` are one domain: compared as IDNA A-labels."""
    assert alignment_problem("xn--bcher-kva.de", "bücher.de") is None
    assert alignment_problem("bücher.de", "xn--bcher-kva.de") is None
    assert alignment_problem("mail.xn--bcher-kva.de", "news.Bücher.de.") is None
    bad = alignment_problem("mailer-service.com", "bücher.de")
    assert bad is not None and "set dkim.domain to xn--bcher-kva.de " in bad[1]


def test_an_internationalised_from_domain_takes_dkim_domain_in_either_form(
        project: Path, run_cli: RunCli) -> None:
    config = project / "mirage.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "<news@mirageproject.eu>", "<news@bücher.de>"), encoding="utf-8")
    base = config.read_text(encoding="utf-8")
    for written in ("xn--bcher-kva.de", "Bücher.de", "mail.bücher.de"):
        config.write_text(base, encoding="utf-8")
        add_dkim(project, f"  domain: {written}\n  selector: s1\n  key_env: {ENV}\n")
        dkim = load_settings(config).dkim
        assert dkim is not None and dkim.domain == written.lower().replace(
            "bücher", "xn--bcher-kva")  # the d= tag is ASCII
        code, err = _validate(run_cli, pem(rsa_key()))
        assert code == 0, err
        assert "does not align" not in err, written
    config.write_text(base, encoding="utf-8")
    add_dkim(project, f"  domain: mailer-service.com\n  selector: s1\n  key_env: {ENV}\n")
    code, err = _validate(run_cli, pem(rsa_key()))
    assert code == 0 and "set dkim.domain to xn--bcher-kva.de (or another name under " \
        "xn--bcher-kva.de)" in err, err
