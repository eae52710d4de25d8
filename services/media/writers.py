"""Image writers that take the picture a strip of rows at a time.

A 24 MP photo upscaled twice is 96 MP: 288 MB as 8-bit BGR, 384 MB more in Pillow's
4-byte layout, before the encoder's own buffers. Holding it whole to encode it is what
took the enhance worker past its memory limit. These writers keep one strip in memory,
one module per format (what they share, rows in and strips, is ``image_writer``):

- ``jpeg_writer``: strips encoded as JPEGs of their own, joined under restart markers.
- ``png_writer``: filtered rows fed to one zlib stream.
- ``tiff_writer``: Deflate strips with the horizontal predictor, the directory last.
- ``bmp_writer``: uncompressed top-down rows.
- ``webp_writer``: libwebp encodes whole pictures only, so this one gathers the image; the
  caller bounds WebP outputs (:func:`services.contracts.photo_cost.output_limit`).

Rows come in as HxWx3 uint8 BGR, top to bottom; ``close()`` checks that every row came.
Metadata (ICC profile, EXIF, DPI) goes where each format keeps it; BMP keeps only DPI.
"""

from __future__ import annotations

from typing import BinaryIO

from services.media.bmp_writer import BmpWriter
from services.media.image_writer import FORMATS, MAX_SIDE, WHOLE_IMAGE_BYTES_PER_PIXEL, ImageWriter, WriterError
from services.media.jpeg_writer import JpegWriter
from services.media.metadata import PhotoMeta
from services.media.png_writer import PngWriter
from services.media.tiff_writer import TiffWriter
from services.media.webp_writer import WebpWriter

__all__ = ["FORMATS", "MAX_SIDE", "WHOLE_IMAGE_BYTES_PER_PIXEL", "ImageWriter", "WriterError", "open_writer"]


def open_writer(
    fmt: str, fp: BinaryIO, width: int, height: int, meta: PhotoMeta | None = None, *, quality: int = 95
) -> ImageWriter:
    """A writer for ``fmt``; ``fp`` must be seekable for TIFF (its directory comes last)."""
    meta = meta or PhotoMeta()
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be within 1..100, got {quality}")
    if fmt in MAX_SIDE and max(width, height) > MAX_SIDE[fmt]:
        raise WriterError(f"{fmt.upper()} stores at most {MAX_SIDE[fmt]} pixels a side, not {width}x{height}")
    if fmt == "jpeg":
        return JpegWriter(fp, width, height, meta, quality)
    if fmt == "png":
        return PngWriter(fp, width, height, meta)
    if fmt == "tiff":
        return TiffWriter(fp, width, height, meta)
    if fmt == "bmp":
        return BmpWriter(fp, width, height, meta)
    if fmt == "webp":
        return WebpWriter(fp, width, height, meta, quality)
    raise ValueError(f"unknown image format {fmt!r}; expected one of {list(FORMATS)}")
