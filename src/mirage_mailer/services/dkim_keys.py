"""The DKIM private key, read from where ``dkim:`` names it, checked before anything is sent.

``validate`` lists every problem; ``send`` and ``preview`` refuse (exit 2) on the same ones
before the first message is built. No message ever shows the key: a PEM that does not parse
is reported by where it came from, never by its content.

Alignment (DMARC, RFC 7489 3.1.1, relaxed): the signature only helps the From domain when
``d=`` and the From address share an organisational domain. That takes the Public Suffix
List; ``publicsuffixlist`` ships a dated copy and never fetches one at run time (a send from
a cron host must not depend on a download), so a new suffix waits for the next release.
"""

from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from publicsuffixlist import PublicSuffixList

from mirage_mailer.compose.dkim import DkimSigner, PrivateKey
from mirage_mailer.project.config import DkimConfig, Settings
from mirage_mailer.util.addresses import ascii_domain
from mirage_mailer.util.errors import InputError, Problem, display_path, shorten

MIN_RSA_BITS = 1024  # RFC 8301: verifiers must not accept less
GOOD_RSA_BITS = 2048  # what providers ask for; less is a warning
MAX_KEY_BYTES = 64 * 1024  # a PEM private key is a few KB: a bigger file is something else
NEW_KEY = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem"


@dataclass
class KeyCheck:
    """What was found about the configured key: the key when it loads, and what to say."""

    key: PrivateKey | None = None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def check_dkim(settings: Settings) -> KeyCheck:
    """Every DKIM problem of the project (none when ``dkim:`` is not configured)."""
    dkim = settings.dkim
    if dkim is None:
        return KeyCheck()
    check = KeyCheck()
    where = display_path(settings.path)
    line = settings.line_of.get("dkim.key_env") or settings.line_of.get("dkim.key_file")
    pem, source = _read_key(dkim, settings, where, line, check)
    if pem is not None:
        loaded = _parse(pem)
        if isinstance(loaded, str):
            check.errors.append(Problem(where, line, f"the DKIM key in {source} {loaded}",
                                        _pem_hint(dkim)))
        else:
            check.key = loaded
            check.warnings.extend(_key_warnings(loaded, source, where, line))
    if (bad := alignment_problem(dkim.domain, settings.sender.domain)) is not None:
        check.warnings.append(Problem(where, settings.line_of.get("dkim.domain"), bad[0],
                                      bad[1], warning=True))
    return check


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The signer for every message of this run; raises ``InputError`` (exit 2) when the
    configured key cannot be used, so nothing goes out unsigned by mistake."""
    if settings.dkim is None:
        return None
    check = check_dkim(settings)
    if check.errors or check.key is None:
        raise InputError(check.errors)
    return DkimSigner(settings.dkim.domain, settings.dkim.selector, check.key)


def dkim_warnings(settings: Settings) -> list[Problem]:
    """The warnings alone (weak key, no alignment), said by every command that opens an
    issue; the errors come from ``validate``, ``preview`` and ``send`` themselves."""
    return check_dkim(settings).warnings if settings.dkim is not None else []


def _read_key(dkim: DkimConfig, settings: Settings, where: str, line: int | None,
              check: KeyCheck) -> tuple[bytes | None, str]:
    """The PEM bytes and a name for where they came from (never the bytes themselves)."""
    if dkim.key_env:
        value = os.environ.get(dkim.key_env, "")
        if not value.strip():
            check.errors.append(Problem(
                where, line, f"dkim.key_env names {dkim.key_env}, which is not set",
                f"export {dkim.key_env}=\"$(cat dkim.pem)\" (the PEM private key itself)"))
            return None, dkim.key_env
        # .env files and CI secret stores often hold the PEM on one line with literal \n
        return value.replace("\\n", "\n").encode("utf-8", "replace"), dkim.key_env
    path = dkim.key_file
    assert path is not None  # the config holds exactly one of key_env and key_file
    shown = display_path(path)
    file_line = settings.line_of.get("dkim.key_file")
    try:
        info = path.stat()
    except OSError as exc:
        check.errors.append(Problem(where, file_line,
                                    f"dkim.key_file {shorten(shown)}: {exc.strerror or exc}",
                                    f"put the PEM private key there; make one with: {NEW_KEY}"))
        return None, shown
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_KEY_BYTES:
        check.errors.append(Problem(where, file_line,
                                    f"dkim.key_file {shorten(shown)} is not a key file",
                                    "name the PEM file that holds the private key"))
        return None, shown
    if stat.S_IMODE(info.st_mode) & 0o077:
        check.errors.append(Problem(
            shown, None, f"the DKIM private key is open to other users (mode "
            f"{stat.S_IMODE(info.st_mode):04o})", f"chmod 600 {shown}: whoever reads it can "
            "sign mail as your domain"))
        return None, shown
    try:
        return path.read_bytes(), shown
    except OSError as exc:
        check.errors.append(Problem(shown, None, f"cannot read the DKIM key: "
                                    f"{exc.strerror or exc}", "check the file's owner"))
        return None, shown


@functools.lru_cache(maxsize=4)
def _parse(pem: bytes) -> PrivateKey | str:
    """The private key, or what is wrong with it (words only: never its content). Cached:
    ``open_project`` and the signer read the same key in one command."""
    if b"-----BEGIN" not in pem:
        return "is not PEM text (no '-----BEGIN' line)"
    try:
        key = load_pem_private_key(pem, password=None)
    except TypeError:
        return "is protected by a passphrase"
    except (ValueError, UnsupportedAlgorithm):
        return "does not load as a PEM private key"
    if isinstance(key, RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            return (f"is a {key.key_size}-bit RSA key; verifiers refuse keys under "
                    f"{MIN_RSA_BITS} bits (RFC 8301)")
        return key
    if isinstance(key, Ed25519PrivateKey):
        return key
    kind = type(key).__name__.removesuffix("PrivateKey").removeprefix("_")
    # EC, Ed448, X25519 are said letter by letter: "an EC key", but "a DSA key"
    return f"is {'an' if kind and kind[0] in 'AEFHILMNORSX' else 'a'} {kind} key"


def _pem_hint(dkim: DkimConfig) -> str:
    where = f"the variable {dkim.key_env}" if dkim.key_env else "the file"
    return (f"put an unencrypted RSA (2048 bits) or Ed25519 private key in PEM form in "
            f"{where}, e.g. from '{NEW_KEY}'")


def _key_warnings(key: PrivateKey, source: str, where: str,
                  line: int | None) -> list[Problem]:
    if isinstance(key, RSAPrivateKey):
        if key.key_size < GOOD_RSA_BITS:
            return [Problem(where, line, f"the DKIM key in {source} is {key.key_size}-bit RSA, "
                            "which providers treat as weak", f"make a 2048-bit key ({NEW_KEY}) "
                            "and publish it under a new selector", warning=True)]
        return []
    return [Problem(where, line, f"the DKIM key in {source} is Ed25519: most providers, Gmail "
                    "among them, do not check ed25519-sha256 signatures yet, so DMARC sees "
                    "no valid DKIM", f"sign with a 2048-bit RSA key instead ({NEW_KEY})",
                    warning=True)]


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the copy bundled with the package: nothing is fetched


def organisational_domain(domain: str) -> str | None:
    """``news.example.co.uk`` -> ``example.co.uk``; None for a public suffix itself. Both
    in A-label form (``ascii_domain``), whichever form ``domain`` is written in."""
    found = _suffixes().privatesuffix(ascii_domain(domain))
    return str(found) if found else None


def alignment_problem(signing: str, from_domain: str) -> tuple[str, str] | None:
    """(message, hint) when a ``d=`` of ``signing`` does not align with the From domain
    under DMARC's relaxed rule; None when it does. Domains are compared, and named in the
    advice, in A-label form: the form ``dkim.domain`` takes and ``d=`` carries."""
    signing, from_domain = ascii_domain(signing), ascii_domain(from_domain)
    org_from = organisational_domain(from_domain)
    org_signing = organisational_domain(signing)
    if org_signing is None:
        return (f"dkim.domain '{signing}' is a public suffix, not a domain of yours",
                f"set dkim.domain to {org_from or from_domain}")
    if org_from is not None and org_from == org_signing:
        return None
    return (f"dkim.domain '{signing}' does not align with the From domain '{from_domain}': "
            "DMARC counts a DKIM signature only when both share one organisational domain",
            f"set dkim.domain to {from_domain} (or another name under "
            f"{org_from or from_domain}) and publish the key there, or send from an address "
            f"at {signing}")
