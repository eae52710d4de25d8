"""BMP: uncompressed rows written as they come (top-down, a negative height); of the
metadata only the DPI has a place."""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np

from services.media.image_writer import ImageWriter, WriterError
from services.media.metadata import PhotoMeta


class BmpWriter(ImageWriter):
    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta) -> None:
        super().__init__(fp, width, height, meta)
        self.stride = (width * 3 + 3) & ~3
        size = 54 + self.stride * height
        if size >= 2**32:
            raise WriterError(f"a {width}x{height} BMP is over the format's 4 GiB")
        ppm = [max(0, round(d / 0.0254)) for d in (meta.dpi or (0, 0))]
        fp.write(b"BM" + struct.pack("<IHHI", size, 0, 0, 54))
        # Negative height: rows top to bottom, as they arrive.
        fp.write(struct.pack("<IiiHHIIiiII", 40, width, -height, 1, 24, 0, self.stride * height, ppm[0], ppm[1], 0, 0))
        self._pad = b"\0" * (self.stride - width * 3)

    def _write(self, rows: np.ndarray) -> None:
        if not self._pad:
            self.fp.write(np.ascontiguousarray(rows).tobytes())
            return
        for row in rows:
            self.fp.write(row.tobytes())
            self.fp.write(self._pad)

    def _close(self) -> None:
        pass
