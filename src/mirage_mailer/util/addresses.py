"""E-mail addresses and header-safe values.

email-validator checks syntax (RFC 5322/6531, IDN) without DNS look-ups, so validation stays
offline and fast; header values are refused when they carry CR/LF (header injection).

Lists are long and their domains few, and two thirds of email-validator's time goes to the
domain (IDNA rules, character by character; four times as long for an international one). So
an address whose local part is a plain ASCII dot-atom, and whose domain (ASCII or not)
email-validator has already accepted in this process, is settled here: the local part kept
(lowercased where email-validator lowercases it: postmaster, info, ...), the domain as
email-validator normalised it. Everything else, and every first sight of a domain, goes
through email-validator. Tests check both agree, on tricky and on random addresses.

email-validator itself is imported at its first use: importing it compiles its RFC 6531
patterns (about 30 ms of every start), and a list of plain addresses at plain domains, like
most, never needs it. The two lists this module reads from it are copied below; a test holds
them to the installed email-validator's.

A list of a million rows meets some 40,000 domains, and email-validator's first look at each
took 60 µs (2.4 s in all). A plain ASCII host name (letters, digits and inner hyphens in
labels of at most 63, a dot, a top-level label ending in a letter, no ``--`` anywhere, so no
IDNA label, not a special-use name) passes every one of its domain checks and comes back
lowercased, so such a domain is settled here at first sight; any other goes to it.
"""

from __future__ import annotations

import functools
import re
from email.utils import parseaddr
from typing import TYPE_CHECKING

from mirage_mailer.util.errors import shorten

if TYPE_CHECKING:
    from email_validator import EmailNotValidError

# email-validator's SPECIAL_USE_DOMAIN_NAMES (2.x) and rfc_constants.CASE_INSENSITIVE_MAILBOX_NAMES
SPECIAL_USE_DOMAIN_NAMES = ("arpa", "invalid", "local", "localhost", "onion", "test")
CASE_INSENSITIVE_MAILBOX_NAMES = (
    "info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster",
    "hostmaster", "usenet", "news", "webmaster", "www", "uucp", "ftp")

_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")  # C0 controls but TAB, and DEL
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@([A-Za-z0-9.-]+)")  # dot-atom @ ASCII domain
# dot-atom @ a domain of the characters email-validator allows in one: A-Z a-z 0-9 . - and
# (RFC 6531) any non-ASCII, written as the ASCII it leaves out: a class up to U+10FFFF took
# 13 ms to compile, at every start
_DOMAIN_CHAR = r"[^\x00-\x2c\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]"
_CACHEABLE = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@({_DOMAIN_CHAR}+)")
_LOWERED = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)  # local parts email-validator lowercases
_MAX_ADDRESS = 254  # octets, as email-validator counts them (RFC 3696 errata)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")  # lowercase, at least one dot
_MAX_DOMAIN = 253  # octets (RFC 1035), email-validator's DOMAIN_MAX_LENGTH
_MAX_DOMAINS = 100_000  # about 25 MB; a list with more distinct domains takes the long way
# domain as written -> (email-validator's normalised form, the longest of its forms in octets:
# as written, normalised (Unicode for an xn-- domain) and IDNA ASCII; each is checked)
_domains: dict[str, tuple[str, int]] = {}


def is_plain_address(address: str) -> bool:
    """A dot-atom ASCII address: nothing in it needs parsing or quoting on an SMTP command."""
    return _SIMPLE.fullmatch(address) is not None


def check_header_value(value: str) -> str | None:
    """None when ``value`` may go into a header, else why not."""
    if "\r" in value or "\n" in value:
        return "contains a line break (CR/LF), which would break the message headers"
    if _CONTROL.search(value):
        return "contains a control character"
    return None


def check_address(address: str) -> tuple[str, str | None]:
    """(normalised address, error). Normalises the domain only; the local part is kept."""
    bad = check_header_value(address)
    if bad:
        return address, bad
    return check_clean_address(address)


def check_clean_address(address: str) -> tuple[str, str | None]:
    """``check_address`` for a value already known to pass ``check_header_value`` (a list
    row checks all its values at once: once per row, not again for the address)."""
    simple = _CACHEABLE.fullmatch(address)
    if simple is not None and (known := _domains.get(simple[2])
                               or _plain_domain(simple[2])) is not None:
        domain, longest = known
        local = simple[1]
        if len(local) + 1 + longest <= _MAX_ADDRESS:
            if local.lower() in _LOWERED:
                local = local.lower()
            return f"{local}@{domain}", None
    from email_validator import EmailNotValidError, validate_email

    try:
        info = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return address, (f"'{shorten(address)}' is not a valid e-mail address: "
                         f"{_reason(address, exc)}")
    if simple is not None:  # the domain passed: the next address at it takes the short way
        if len(_domains) >= _MAX_DOMAINS:
            _domains.clear()
        forms = (simple[2], info.domain, info.ascii_domain)
        _domains[simple[2]] = (info.domain, max(len(f.encode("utf-8")) for f in forms))
    return info.normalized, None


def settled_domain(domain: str) -> tuple[str, int] | None:
    """(normalised domain, the longest of its forms in octets) of a domain as written that
    needs email-validator no more (seen by it already, or a plain host name); else None:
    ``check_clean_address``'s short way, for a reader that splits addresses itself."""
    return _domains.get(domain) or _plain_domain(domain)


# for a reader that settles plain addresses in its own loop, as ``check_clean_address``
# does (``project/list_columns.py``)
MAX_ADDRESS = _MAX_ADDRESS
LOWERED_LOCALS = _LOWERED


def _reason(address: str, exc: EmailNotValidError) -> str:
    """email-validator's reason, except where it misleads: an unmatched double quote makes
    it read the rest as a quoted string and say the address "must have an @-sign"."""
    text = str(exc)
    if "@" in address and "must have an @-sign" in text and '"' in address:
        return ('The part before the @-sign has an unmatched double quote (").'
                if address.count('"') % 2 else "The @-sign is inside double quotes.")
    return text


def _plain_domain(written: str) -> tuple[str, int] | None:
    """(lowercased, length) of a plain ASCII host name, remembered as email-validator's
    answer would be; None for any other domain (email-validator decides those)."""
    if not written.isascii() or len(written) > _MAX_DOMAIN or "--" in written:
        return None
    domain = written.lower()
    if not domain[-1:].isalpha() or _PLAIN_DOMAIN.fullmatch(domain) is None:
        return None
    for special in SPECIAL_USE_DOMAIN_NAMES:  # the list as email-validator has it
        if domain == special or domain.endswith("." + special):
            return None
    if len(_domains) >= _MAX_DOMAINS:
        _domains.clear()
    known = _domains[written] = (domain, len(domain))
    return known


@functools.lru_cache(maxsize=4096)
def ascii_domain(domain: str) -> str:
    """The one form domains are compared in (DKIM, SPF and DMARC alignment): IDNA A-labels,
    lower case, no trailing dot, so ``Bücher.de.`` and ``xn--bcher-kva.de`` are one name.
    A name that is no domain at all comes back lowercased, for the caller to report."""
    name = domain.strip().rstrip(".").lower()
    if name.isascii():
        return name  # ASCII labels, xn-- ones included, are A-labels already
    from email_validator import EmailNotValidError, validate_email

    try:
        info = validate_email(f"postmaster@{name}", check_deliverability=False)
    except EmailNotValidError:  # e.g. a special-use name: the codec's IDNA 2003 form
        try:
            return name.encode("idna").decode("ascii")
        except UnicodeError:
            return name
    return str(info.ascii_domain).lower()


def ascii_address(address: str) -> str:
    """The address as it goes on the wire and into headers: an ASCII local part with the
    domain in IDNA A-labels (RFC 5890), so ``hans@bücher.de`` travels as
    ``hans@xn--bcher-kva.de`` and needs neither SMTPUTF8 (RFC 6531) nor a UTF-8 header.
    A non-ASCII local part has no ASCII form: it is kept, and needs SMTPUTF8."""
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii():
        return address
    name = ascii_domain(domain)
    return f"{local}@{name}" if name.isascii() else address


def parse_mailbox(value: str) -> tuple[str, str, str | None]:
    """'Name <addr>' or 'addr' -> (name, address, error)."""
    bad = check_header_value(value)
    if bad:
        return "", value, bad
    name, addr = parseaddr(value)
    if not addr:
        return "", value, f"'{value}' is not an e-mail address"
    normalised, err = check_address(addr)
    return name, normalised, err


EMPTY_ADDRESS = "(empty address at "  # how an invalid row without an address is stored


def looks_corrected(bad: str, new: str) -> bool:
    """Whether ``new`` reads as ``bad`` (an address recorded invalid) corrected: an empty one
    filled in, or the same address but for a few typing mistakes (``b@exa mple.org``,
    ``jean,dupont@@example.org``). A wholly other address is somebody else: cron must not send
    them a finished issue because they landed on a deleted row's line."""
    if bad.startswith(EMPTY_ADDRESS):
        return True
    a, b = bad.strip().lower(), new.strip().lower()
    return _edits(a, b, max(3, len(b) // 5))


def _edits(a: str, b: str, limit: int) -> bool:
    """Levenshtein distance of ``a`` and ``b`` at most ``limit`` (a row of the table at a time,
    given up once every cell of a row is past the limit)."""
    if abs(len(a) - len(b)) > limit:
        return False
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
        if min(row) > limit:
            return False
    return row[-1] <= limit
