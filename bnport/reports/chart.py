"""A bar chart of each layer's error against its tolerance, drawn as a PNG with numpy and zlib only.

One bar per compared pair, in execution order; height is log10(max abs error / tolerance) between -8 and +4,
green at or under the tolerance line, red above it. The PNG is embedded in the HTML report, so the report is
one self-contained file, and tests decode the image to check the bars.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

GREEN = (46, 160, 67)
RED = (207, 34, 46)
LINE = (30, 30, 30)
GRID = (225, 225, 225)
LOW, HIGH = -8.0, 4.0
HEIGHT, BAR, GAP, MARGIN = 240, 6, 2, 10


def ratio_to_row(ratio: float) -> int:
    """The pixel row a log ratio reaches (row 0 at the top)."""
    value = min(max(np.log10(max(ratio, 1e-30)), LOW), HIGH)
    return round(float(MARGIN + (HIGH - value) / (HIGH - LOW) * (HEIGHT - 2 * MARGIN)))


def draw(ratios: list[float]) -> np.ndarray:
    """RGB image (H, W, 3) of the bars for ``ratios`` (error / tolerance)."""
    width = 2 * MARGIN + max(1, len(ratios)) * (BAR + GAP)
    img = np.full((HEIGHT, width, 3), 255, np.uint8)
    for decade in range(int(LOW), int(HIGH) + 1):
        img[ratio_to_row(10.0**decade), :] = GRID
    base = ratio_to_row(10.0**LOW)
    for i, ratio in enumerate(ratios):
        x0 = MARGIN + i * (BAR + GAP)
        top = ratio_to_row(ratio)
        img[top:base + 1, x0:x0 + BAR] = RED if ratio > 1.0 else GREEN
    img[ratio_to_row(1.0), :] = LINE  # the tolerance
    return img


def png(img: np.ndarray) -> bytes:
    """Encode an RGB uint8 image as PNG (8-bit truecolour, no interlace)."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def decode(data: bytes) -> np.ndarray:
    """Decode a PNG written by :func:`png` (filter type 0 rows) back to an RGB array."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if tag == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    w, h = size
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    return rows[:, 1:].reshape(h, w, 3)
