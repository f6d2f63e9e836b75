"""``transport.ca_file``: a PEM bundle of the private CA that signed the relay's certificate.

Checked when the config loads, so a typo or a wrong file is exit 2 with the line to fix, not
a certificate failure half-way into a send.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def ca_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as the relay's CA bundle, or None when it loads."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(path))
    except FileNotFoundError:
        return "does not exist"
    except IsADirectoryError:
        return "is a folder, not a PEM file"
    except PermissionError:
        return "cannot be read (permission denied)"
    except ssl.SSLError:
        return "holds no PEM certificate that loads"
    except (OSError, ValueError) as exc:
        return f"cannot be read ({exc})"
    if not context.cert_store_stats().get("x509"):
        return "holds no certificate"
    return None
