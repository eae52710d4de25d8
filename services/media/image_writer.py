"""What every image writer shares: rows come in as HxWx3 uint8 BGR, top to bottom, and
are counted (``ImageWriter``: ``close()`` checks that every row came); the encoders that
take a strip at a time get them gathered into strips (``StripWriter``); and what each
format can hold (``MAX_SIDE``) or makes a writer hold (``WHOLE_IMAGE_BYTES_PER_PIXEL``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import BinaryIO

import numpy as np

from services.media.metadata import PhotoMeta

STRIP_BYTES = 4 * 1024 * 1024  # uncompressed pixels an encoder holds at a time
FORMATS = ("jpeg", "png", "webp", "bmp", "tiff")
# Largest side a format can store (JPEG: 16-bit sizes; WebP: 14-bit).
MAX_SIDE = {"jpeg": 65_535, "webp": 16_383, "png": 2**31 - 1, "tiff": 2**32 - 1, "bmp": 2**31 - 1}
# Bytes per pixel a writer holds besides its strip: WebP gathers the picture (3), Pillow
# copies it (4) and libwebp converts it to YUV with its own buffers (about 4 more).
WHOLE_IMAGE_BYTES_PER_PIXEL = {"webp": 11}


class WriterError(Exception):
    pass


class ImageWriter(ABC):
    """Counts the rows and checks their shape; a format writes them in ``_write`` and ends
    the file in ``_close``."""

    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta):
        if width < 1 or height < 1:
            raise WriterError(f"cannot write an empty {width}x{height} image")
        self.fp, self.width, self.height, self.meta = fp, width, height, meta
        self.rows = 0

    def write(self, rows: np.ndarray) -> None:
        if rows.ndim != 3 or rows.shape[1:] != (self.width, 3) or rows.dtype != np.uint8:
            raise WriterError(f"expected rows of shape (n, {self.width}, 3) uint8, got {rows.dtype} {rows.shape}")
        if self.rows + rows.shape[0] > self.height:
            raise WriterError(f"more than {self.height} rows written")
        self.rows += rows.shape[0]
        self._write(rows)

    def close(self) -> None:
        if self.rows != self.height:
            raise WriterError(f"{self.rows} of {self.height} rows written")
        self._close()

    @abstractmethod
    def _write(self, rows: np.ndarray) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...


class StripWriter(ImageWriter):
    """Gathers rows into strips of ``strip_rows`` (the last may be shorter)."""

    strip_rows = 1

    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta) -> None:
        super().__init__(fp, width, height, meta)
        self._buf = np.empty((min(self.strip_rows, height), width, 3), np.uint8)
        self._fill = 0
        self._done = 0  # rows encoded

    def _write(self, rows: np.ndarray) -> None:
        i = 0
        while i < rows.shape[0]:
            n = min(rows.shape[0] - i, self._buf.shape[0] - self._fill)
            self._buf[self._fill : self._fill + n] = rows[i : i + n]
            self._fill += n
            i += n
            if self._fill == self._buf.shape[0] or self._done + self._fill == self.height:
                self._strip(self._buf[: self._fill], last=self._done + self._fill == self.height)
                self._done += self._fill
                self._fill = 0

    @abstractmethod
    def _strip(self, bgr: np.ndarray, last: bool) -> None: ...


def rows_per_strip(width: int, *, share: int = 1, multiple: int = 1) -> int:
    """Rows of a strip ``width`` pixels wide: as many as ``STRIP_BYTES // share`` bytes of
    BGR hold, rounded down to a whole ``multiple`` (one at least)."""
    rows = max(1, (STRIP_BYTES // share) // (width * 3))
    return max(multiple, rows // multiple * multiple)
