"""Real image files for tests: image checks read the content, so a signature is not enough."""

from __future__ import annotations

import os
import struct
import zlib


def png(width: int = 4, height: int = 4, *, filler: int = 0,
        rgb: bytes = b"\xff\x00\x00") -> bytes:
    """A real PNG of one colour; ``filler`` bytes of random text make it that much bigger."""
    raw = b"".join(b"\x00" + rgb * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    extra = chunk(b"tEXt", b"c\x00" + os.urandom(filler)) if filler else b""
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
