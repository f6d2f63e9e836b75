"""VERP: a signed return path per recipient, ``bounces+<token>@domain``, so a bounce names
whom it is about even when the DSN is mangled or missing.

The token is ``<row id in base 36>-<20 hex digits>``: the tracking row (one issue and one
recipient) and an 80-bit HMAC-SHA256 over (issue, row id, address), keyed with the tracking
secret. Only lower-case letters, digits and ``-``: a dot-atom local part (RFC 5321 4.1.2)
that survives MTAs which lower-case local parts, and at most 27 characters for two billion
rows, so ``bounces+`` and the token stay inside the 64-octet limit. (Hex, not base32: the
standard library's base32 is pure Python and cost more than the HMAC itself.) The address
is in the MAC, so a row id reused by a new store never pins a bounce on someone else; every
earlier key still verifies after a rotation (``util.tokens``).

The base address is not in the MAC, and a token is looked for on every address a mail names:
after ``bounces.address`` changes (a new mailbox, a new domain), bounces of the messages sent
before come back to the earlier base, and their tokens still verify. Only the checks that
call a mail forged (a token that fails, something after the delimiter that is no token) stay
tied to the current base, as before: elsewhere a token counts only when it verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mirage_mailer.project.bounce_config import BounceConfig
from mirage_mailer.project.config import Settings
from mirage_mailer.services.signing import signing_secret
from mirage_mailer.util.addresses import ascii_domain
from mirage_mailer.util.errors import Problem
from mirage_mailer.util.tokens import Secret

_MAC_BYTES = 10  # 80 bits: 20 hex digits
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
TOKEN = r"[0-9a-z]{1,13}-[0-9a-f]{20}"

EnvelopeSender = Callable[[int, str], str]
"""(tracking row id, recipient address) -> the MAIL FROM for that message."""


def _base36(number: int) -> str:
    if number < 0:
        raise ValueError("row ids are positive")
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = _DIGITS[digit] + out
        if not number:
            return out


def _mac(key: bytes, issue: str, row: str, address: str) -> str:
    message = b"\x00".join((b"verp", issue.encode(), row.encode(),
                            address.strip().lower().encode()))
    return hmac.digest(key, message, hashlib.sha256)[:_MAC_BYTES].hex()


@dataclass(frozen=True)
class VerpToken:
    """A token as found in a bounce: its row id, and the MAC to check against the row."""

    row_id: int
    mac: str
    text: str
    here: bool = True  # on the current base address (False: an earlier one, or another)


class Verp:
    """Makes and checks the return paths of one project (base address and keys)."""

    def __init__(self, local: str, delimiter: str, domain: str, keys: Sequence[bytes]) -> None:
        # every VERP address lower case, the base's local part too (``Bounces@...`` is
        # ``bounces+...``): MTAs that lower-case local parts change nothing, and the search
        # below ignores case, so bounces to addresses made before still match
        self.local, self.delimiter, self.domain = local.lower(), delimiter, domain.lower()
        self._keys = tuple(bytes(k) for k in keys)
        # an international domain travels in A-labels (``ascii_address``): a bounce names
        # either form
        domains = "|".join(re.escape(d) for d in dict.fromkeys(
            (self.domain, ascii_domain(self.domain))))
        self._pattern = re.compile(
            rf"(?<![\w.+-]){re.escape(self.local)}{re.escape(delimiter)}({TOKEN})@"
            rf"(?:{domains})(?![\w-]|\.[\w-])", re.IGNORECASE)
        # anything after the delimiter: a token cut short or padded is not "no token"
        self._loose = re.compile(
            rf"(?<![\w.+-]){re.escape(self.local)}{re.escape(delimiter)}([^@\s<>\"]+)@"
            rf"(?:{domains})(?![\w-]|\.[\w-])", re.IGNORECASE)
        self._token = re.compile(TOKEN, re.IGNORECASE)
        # a token on any address: after a delimiter (either: it may have changed too) that
        # follows some local part, and before the ``@`` of some domain
        self._anywhere = re.compile(rf"(?<=[\w.!#$%&'*/=?^`{{|}}~-])[+-]({TOKEN})@(?=[\w\[])",
                                    re.IGNORECASE)

    def address(self, issue: str, row_id: int, recipient: str) -> str:
        """The return path of one message (made with the current key)."""
        row = _base36(row_id)
        token = f"{row}-{_mac(self._keys[0], issue, row, recipient)}"
        return f"{self.local}{self.delimiter}{token}@{self.domain}"

    def sender(self, issue: str) -> EnvelopeSender:
        """``address`` for one issue, with the HMAC of the shared prefix computed once
        (bench/verp_cost.py: a third of the per-address cost)."""
        prefix = hmac.new(self._keys[0], b"verp\x00" + issue.encode() + b"\x00",
                          hashlib.sha256)
        head, tail = f"{self.local}{self.delimiter}", f"@{self.domain}"

        def address(row_id: int, recipient: str) -> str:
            row = _base36(row_id)
            mac = prefix.copy()
            mac.update(f"{row}\x00{recipient.strip().lower()}".encode())
            return f"{head}{row}-{mac.digest()[:_MAC_BYTES].hex()}{tail}"

        return address

    def find(self, text: str) -> list[VerpToken]:
        """Every token-shaped VERP address in ``text`` (not yet checked), first seen first."""
        found: dict[str, VerpToken] = {}
        for match in self._pattern.finditer(text):
            token = match.group(1).lower()
            row, _, mac = token.partition("-")
            if token not in found:
                found[token] = VerpToken(int(row, 36), mac, token)
        return list(found.values())

    def find_anywhere(self, text: str) -> list[VerpToken]:
        """``find``'s tokens, then those on any other address (``here`` False): a bounce of a
        message sent before ``bounces.address`` changed names the earlier base."""
        found = {token.text: token for token in self.find(text)}
        for match in self._anywhere.finditer(text):
            token = match.group(1).lower()
            if token not in found:
                row, _, mac = token.partition("-")
                found[token] = VerpToken(int(row, 36), mac, token, here=False)
        return list(found.values())

    def malformed(self, text: str) -> bool:
        """``text`` names our bounce address with something after the delimiter that is no
        well-formed token (a token cut short, lengthened or altered): a forgery, never a
        reason to look for the reader some other way."""
        return any(not self._token.fullmatch(match.group(1))
                   for match in self._loose.finditer(text))

    def genuine(self, token: VerpToken, issue: str, recipient: str) -> bool:
        """The token was made by one of our keys for exactly this row, issue and address."""
        row = _base36(token.row_id)
        given = token.mac.encode("ascii")
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(_mac(key, issue, row, recipient).encode("ascii"), given)
        return ok


def verp_for(settings: Settings, keys: Iterable[bytes] | None = None) -> Verp | None:
    """The project's VERP, or None when ``bounces.verp`` is off or there is no ``bounces:``."""
    config = settings.bounces
    if config is None or not config.verp:
        return None
    if keys is None:
        secret: Secret = signing_secret(settings)
        keys = (bytes(secret), *secret.earlier)
    return Verp(config.local_part, config.delimiter, config.domain, list(keys))


def envelope_sender(settings: Settings, issue: str) -> EnvelopeSender:
    """What the sender passes as MAIL FROM for each recipient of ``issue``: the signed VERP
    address when bounces are on, else ``sender.return_path`` for everyone."""
    verp = verp_for(settings)
    if verp is None:
        fixed = settings.sender.return_path
        return lambda _row_id, _recipient: fixed
    return verp.sender(issue)


def bounce_warnings(config: BounceConfig | None, from_email: str, where: str,
                    line: int | None) -> list[Problem]:
    """What ``validate`` says about the bounces section: a return path whose domain does not
    share the From domain's organisational domain fails DMARC's relaxed SPF alignment
    (RFC 7489 3.1.2), so SPF passing for it counts nothing."""
    if config is None or not config.verp:
        return []
    from mirage_mailer.services.dkim_keys import organisational_domain  # the suffix list

    from_domain = from_email.rpartition("@")[2]
    org_from = organisational_domain(from_domain) if from_domain else None
    if org_from is None or organisational_domain(config.domain) == org_from:
        return []
    return [Problem(where, line, f"the bounce address's domain {config.domain} does not align "
                    f"with the From domain {from_domain}: SPF passes for the return path "
                    "but counts nothing for DMARC",
                    f"use a bounce address at {from_domain} (or another name under "
                    f"{org_from}), or rely on a DKIM signature aligned with the From domain",
                    warning=True)]
