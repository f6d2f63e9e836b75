"""One dict kept in a marshal file behind a header, for the caches beside the byte code.

``util.classcode`` and ``util.kept`` both keep values from one run to the next this way: the
header names what the values depend on (the Python, library versions), so a file that does
not start with it, or cannot be read, counts as empty rather than stale; a write goes through
a temporary file and a rename, so a reader never meets half a file.
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path
from typing import Any


def read(path: Path, header: bytes) -> dict[Any, Any]:
    """The dict stored behind ``header``; empty for a missing, foreign or damaged file."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    if not data.startswith(header):
        return {}
    try:
        values = marshal.loads(data[len(header):])
    except (EOFError, ValueError, TypeError):
        return {}
    return values if isinstance(values, dict) else {}


def write(path: Path, header: bytes, values: dict[Any, Any]) -> None:
    """Replace the file atomically; a read-only place or an unmarshallable value writes
    nothing (the next run computes again, as without the cache)."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(header + marshal.dumps(values))
        os.replace(temporary, path)
    except (OSError, ValueError):
        temporary.unlink(missing_ok=True)
