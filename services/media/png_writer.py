"""PNG a strip at a time: rows filtered (the five PNG filters, picked per row as libpng's
heuristic does) and fed to one zlib stream, cut into IDAT chunks as it grows."""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

from services.media.image_writer import StripWriter, rows_per_strip
from services.media.metadata import PhotoMeta


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


class PngWriter(StripWriter):
    IDAT_BYTES = 1024 * 1024

    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta, level: int = 6) -> None:
        # Small blocks: the five candidate filters of a block live as int16 at once.
        self.strip_rows = rows_per_strip(width, share=4)
        super().__init__(fp, width, height, meta)
        self._z = zlib.compressobj(level)
        self._prev = np.zeros((1, width * 3), np.uint8)
        self._pending = bytearray()
        fp.write(b"\x89PNG\r\n\x1a\n")
        fp.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        if meta.icc_profile:
            fp.write(_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(meta.icc_profile)))
        if meta.dpi:
            ppm = [max(1, round(d / 0.0254)) for d in meta.dpi]
            fp.write(_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
        exif = meta.exif_for(width, height)
        if exif:
            fp.write(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))

    def _strip(self, bgr: np.ndarray, last: bool) -> None:
        rgb = np.ascontiguousarray(bgr[..., ::-1]).reshape(bgr.shape[0], -1)
        filtered = png_filter(rgb, self._prev[-1])
        self._prev = rgb[-1:].copy()
        self._pending += self._z.compress(filtered)
        self._flush_idat(final=False)

    def _flush_idat(self, final: bool) -> None:
        while len(self._pending) >= self.IDAT_BYTES or (final and self._pending):
            n = min(len(self._pending), self.IDAT_BYTES)
            self.fp.write(_chunk(b"IDAT", bytes(self._pending[:n])))
            del self._pending[:n]

    def _close(self) -> None:
        self._pending += self._z.flush()
        self._flush_idat(final=True)
        self.fp.write(_chunk(b"IEND", b""))


def png_filter(rows: np.ndarray, prior: np.ndarray, bpp: int = 3) -> bytes:
    """Rows (n, W*bpp) uint8 filtered for PNG, each prefixed by its filter type; ``prior``
    is the row above the first. Per row the filter with the smallest sum of absolute
    signed residuals wins (libpng's heuristic)."""
    x = rows.astype(np.int16)
    b = np.vstack([prior[None, :].astype(np.int16), x[:-1]])  # above
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]  # left
    c = np.zeros_like(x)
    c[:, bpp:] = b[:, :-bpp]  # above left
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    candidates = np.stack([x, x - a, x - b, x - ((a + b) >> 1), x - paeth]).astype(np.uint8)
    del b, c, p, pa, pb, pc, paeth
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)  # (5, n)
    best = cost.argmin(axis=0)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = best
    out[:, 1:] = candidates[best, np.arange(rows.shape[0])]
    return out.tobytes()
