"""Checks for the EU emblem PNG drawn by ``scripts/draw_emblem.py``.

The PNG is decoded with a small stdlib decoder written here from the PNG specification, and the
expected geometry is recomputed from the emblem's official description, independently of the
script's own code.
"""

from __future__ import annotations

import importlib.util
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "draw_emblem.py"
EMBLEM = ROOT / "src" / "mirage_mailer" / "data" / "eu-emblem.png"

BLUE = (0x00, 0x33, 0x99)
GOLD = (0xFF, 0xCC, 0x00)

Pixel = tuple[int, int, int]


class Image:
    def __init__(self, width: int, height: int, rows: list[bytes]) -> None:
        self.width = width
        self.height = height
        self.rows = rows

    def pixel(self, x: int, y: int) -> Pixel:
        r, g, b = self.rows[y][3 * x : 3 * x + 3]
        return (r, g, b)


# --------------------------------------------------------------------------- PNG decoder


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> Image:
    """Decode a non-interlaced 8-bit RGB PNG, checking signature, chunk CRCs and layout."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "bad signature"
    pos = 8
    chunks: list[tuple[bytes, bytes]] = []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(tag + payload) & 0xFFFFFFFF == crc, f"bad CRC in {tag!r}"
        chunks.append((tag, payload))
        pos += 12 + length
    assert pos == len(data), "trailing bytes"
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")

    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(p for t, p in chunks if t == b"IDAT"))

    bpp, stride = 3, 3 * width
    assert len(raw) == height * (stride + 1)
    rows: list[bytes] = []
    prior = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            if kind == 0:
                predictor = 0
            elif kind == 1:
                predictor = a
            elif kind == 2:
                predictor = b
            elif kind == 3:
                predictor = (a + b) // 2
            elif kind == 4:
                predictor = _paeth(a, b, c)
            else:
                raise AssertionError(f"bad filter type {kind}")
            line[i] = (line[i] + predictor) & 0xFF
        rows.append(bytes(line))
        prior = line
    return Image(width, height, rows)


# --------------------------------------------------------------------------- helpers


def star_centres(width: int, height: int) -> list[tuple[float, float]]:
    """Clock-face positions on a circle of radius height/3 around the flag centre."""
    ring = height / 3
    return [
        (
            width / 2 + ring * math.sin(math.radians(30 * hour)),
            height / 2 - ring * math.cos(math.radians(30 * hour)),
        )
        for hour in range(12)
    ]


def run_script(output: Path, *args: str) -> bytes:
    subprocess.run(
        [sys.executable, str(SCRIPT), "-o", str(output), *args],
        check=True,
        capture_output=True,
    )
    return output.read_bytes()


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("draw_emblem", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def srgb_to_linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


@pytest.fixture(scope="module")
def emblem() -> Image:
    assert EMBLEM.is_file(), "run scripts/draw_emblem.py to create the emblem"
    return decode_png(EMBLEM.read_bytes())


# --------------------------------------------------------------------------- tests


def test_dimensions_are_3_to_2(emblem: Image) -> None:
    assert (emblem.width, emblem.height) == (180, 120)
    assert emblem.width * 2 == emblem.height * 3


def test_corners_are_reflex_blue(emblem: Image) -> None:
    w, h = emblem.width, emblem.height
    for x, y in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)]:
        assert emblem.pixel(x, y) == BLUE, (x, y)


def test_flag_centre_is_blue(emblem: Image) -> None:
    w, h = emblem.width, emblem.height
    for x in (w // 2 - 1, w // 2):
        for y in (h // 2 - 1, h // 2):
            assert emblem.pixel(x, y) == BLUE, (x, y)


@pytest.mark.parametrize("hour", range(12))
def test_star_centre_is_gold(emblem: Image, hour: int) -> None:
    x, y = star_centres(emblem.width, emblem.height)[hour]
    assert emblem.pixel(math.floor(x), math.floor(y)) == GOLD, (hour, x, y)


def test_gold_only_inside_star_circles(emblem: Image) -> None:
    """Every non-blue pixel lies within (outer radius + 1 px) of some star centre."""
    centres = star_centres(emblem.width, emblem.height)
    limit = emblem.height / 18 + 1
    for y in range(emblem.height):
        for x in range(emblem.width):
            if emblem.pixel(x, y) != BLUE:
                nearest = min(math.dist((x + 0.5, y + 0.5), c) for c in centres)
                assert nearest <= limit, (x, y, nearest)


def test_stars_are_upright(emblem: Image) -> None:
    """The topmost gold of each star sits straight above its centre."""
    for cx, cy in star_centres(emblem.width, emblem.height):
        top = math.floor(cy - emblem.height / 18)
        columns = range(math.floor(cx) - 6, math.floor(cx) + 7)
        row = next(
            y for y in range(top, math.ceil(cy)) if any(emblem.pixel(x, y) != BLUE for x in columns)
        )
        lit = [x for x in columns if emblem.pixel(x, row) != BLUE]
        assert all(abs(x + 0.5 - cx) <= 1 for x in lit), (cx, cy, lit)


def test_gold_area_matches_twelve_pentagrams(emblem: Image) -> None:
    """Anti-aliased coverage (red channel, blended in linear light) ~ 12 regular stars."""
    outer = emblem.height / 18
    inner = outer * math.cos(math.radians(72)) / math.cos(math.radians(36))
    expected = 12 * 5 * outer * inner * math.sin(math.radians(36))
    covered = sum(
        srgb_to_linear(emblem.pixel(x, y)[0])
        for y in range(emblem.height)
        for x in range(emblem.width)
    )
    assert covered == pytest.approx(expected, rel=0.02)


def test_mirror_symmetric(emblem: Image) -> None:
    for y in range(emblem.height):
        for x in range(emblem.width // 2):
            assert emblem.pixel(x, y) == emblem.pixel(emblem.width - 1 - x, y), (x, y)


def test_deterministic_and_matches_committed_file(tmp_path: Path) -> None:
    first = run_script(tmp_path / "a.png")
    second = run_script(tmp_path / "b.png")
    assert first == second
    # Compare pixels rather than bytes with the committed file, so that a different zlib build
    # (which may compress differently) does not fail the test.
    assert decode_png(first).rows == decode_png(EMBLEM.read_bytes()).rows


def test_size_option(tmp_path: Path) -> None:
    image = decode_png(run_script(tmp_path / "big.png", "--size", "300"))
    assert (image.width, image.height) == (300, 200)
    assert image.pixel(0, 0) == BLUE
    for x, y in star_centres(300, 200):
        assert image.pixel(math.floor(x), math.floor(y)) == GOLD


def test_size_option_rejects_bad_width(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "-o", str(tmp_path / "x.png"), "--size", "181"],
        capture_output=True,
    )
    assert result.returncode != 0
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("kind", range(5))
def test_decoder_agrees_with_every_filter_type(kind: int) -> None:
    """The script may pick any filter; make sure each round-trips through the decoder."""
    draw = load_script()
    rows = draw.render(60, 40)
    prior_rows = [bytes(len(rows[0])), *rows[:-1]]
    raw = b"".join(draw.filter_row(kind, r, p, 3) for r, p in zip(rows, prior_rows, strict=True))

    def chunk(tag: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 60, 40, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    assert decode_png(png).rows == rows
