"""E-mail addresses and header-safe values.

email-validator checks syntax (RFC 5322/6531, IDN) without DNS look-ups, so validation stays
offline and fast; header values are refused when they carry CR/LF (header injection).
"""

from __future__ import annotations

from email.utils import parseaddr

from email_validator import EmailNotValidError, validate_email

_CONTROL = {chr(c) for c in range(32) if c != 9} | {"\x7f"}


def check_header_value(value: str) -> str | None:
    """None when ``value`` may go into a header, else why not."""
    if "\r" in value or "\n" in value:
        return "contains a line break (CR/LF), which would break the message headers"
    if any(ch in _CONTROL for ch in value):
        return "contains a control character"
    return None


def check_address(address: str) -> tuple[str, str | None]:
    """(normalised address, error). Normalises the domain only; the local part is kept."""
    bad = check_header_value(address)
    if bad:
        return address, bad
    try:
        info = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return address, f"'{address}' is not a valid e-mail address: {exc}"
    return info.normalized, None


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
