"""The one TLS client context every outbound SMTP connection uses, and certificate failures in
the officer's words.

Verification is on unless the project says ``tls_insecure: true``: the relay's certificate
must chain to a trusted CA (the system's, or only the PEM bundle in ``transport.ca_file`` for
a private CA) and name the host in ``transport.url``. Without that, anyone on the path can
read the SMTP password and every reader's address. TLS 1.2 is the floor (RFC 8996 retired
1.0 and 1.1).
"""

from __future__ import annotations

import ssl
from pathlib import Path

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) that a user can act on, by what to tell them.
_UNKNOWN_CA = frozenset({2, 18, 19, 20, 21, 27})
_EXPIRED = 10
_NOT_YET_VALID = 9
_NAME_MISMATCH = frozenset({62, 64})  # host name, IP address


def client_context(*, ca_file: Path | None = None, insecure: bool = False) -> ssl.SSLContext:
    """A client context: system CAs (or only ``ca_file``), host-name check, TLS >= 1.2.

    ``insecure`` keeps the encryption and drops every check: for a lab relay only. Raises
    ``OSError`` or ``ssl.SSLError`` when ``ca_file`` cannot be read or holds no certificate.
    """
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def certificate_problem(error: ssl.SSLCertVerificationError, where: str, *,
                        private_ca: bool = False) -> tuple[str, str]:
    """What failed and what to do, for a certificate that did not verify at ``where``;
    ``private_ca``: the trust came from ``transport.ca_file``, not the system."""
    code = error.verify_code
    reason = error.verify_message or error.reason or "verification failed"
    if code in _NAME_MISMATCH:
        return (f"TLS certificate of {where} does not match the host name ({reason})",
                "the certificate is for another name: put that name in transport.url, or "
                "ask the relay's operator for a certificate that names this host")
    if code == _EXPIRED:
        return (f"TLS certificate of {where} has expired",
                "the relay's operator must renew it; check this machine's clock too")
    if code == _NOT_YET_VALID:
        return (f"TLS certificate of {where} is not valid yet",
                "check this machine's clock (and the relay's)")
    if code in _UNKNOWN_CA and private_ca:
        return (f"TLS certificate of {where} is not signed by the CA in transport.ca_file "
                f"({reason})", "ask the relay's operator for the CA certificate that signed "
                "it, and put that PEM file in transport.ca_file")
    if code in _UNKNOWN_CA:
        return (f"TLS certificate of {where} is signed by an unknown CA ({reason})",
                "for a relay with a private CA, set transport.ca_file to that CA's PEM "
                "certificate")
    return (f"TLS certificate of {where} was not accepted ({reason})",
            "check the relay's certificate; for a private CA set transport.ca_file")
