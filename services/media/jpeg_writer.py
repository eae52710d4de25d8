"""JPEG a strip at a time: each strip is a JPEG of its own encoded by Pillow (libjpeg-turbo)
with a restart marker after every MCU row; the strips' entropy-coded data are joined under
the first strip's headers. Restart markers reset the DC predictors, so the joined stream
is the image a one-shot encode gives (pixel for pixel; the test checks it), 2 bytes larger
per MCU row."""

from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from services.media.image_writer import StripWriter, WriterError, rows_per_strip
from services.media.metadata import JPEG_MAX_EXIF, PhotoMeta

_SOF0, _DHT, _DQT, _DRI, _SOS, _EOI = 0xC0, 0xC4, 0xDB, 0xDD, 0xDA, 0xD9
_RST7 = b"\xff\xd7"


class JpegWriter(StripWriter):
    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta, quality: int = 95) -> None:
        # Full-resolution chroma at high quality: restored faces and text edges smear
        # visibly with 4:2:0 subsampling, and the size cost is modest.
        self.subsampling = "4:4:4" if quality >= 90 else "4:2:0"
        mcu = 8 if self.subsampling == "4:4:4" else 16
        # Restart markers count 0..7: strips of 8k MCU rows keep each strip's own
        # numbering right in the joined stream, with RST7 between strips.
        self.strip_rows = rows_per_strip(width, multiple=8 * mcu)
        self.quality = quality
        super().__init__(fp, width, height, meta)
        self._tables: bytes | None = None

    def _strip(self, bgr: np.ndarray, last: bool) -> None:
        first = self._tables is None
        opts: dict[str, Any] = {
            "format": "JPEG",
            "quality": self.quality,
            "subsampling": self.subsampling,
            "restart_marker_rows": 1,
        }
        if first:
            opts.update(_jpeg_meta(self.meta, self.width, self.height))
        out = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(bgr[..., ::-1])).save(out, **opts)
        data = out.getvalue()
        header_end, sof_height_at, tables = _jpeg_layout(data)
        if data[-2:] != b"\xff\xd9":
            raise WriterError("the JPEG encoder's output does not end with EOI")
        entropy = memoryview(data)[header_end:-2]
        if first:
            self._tables = tables
            head = bytearray(data[:header_end])
            struct.pack_into(">H", head, sof_height_at, self.height)
            self.fp.write(head)
        else:
            if tables != self._tables:
                raise WriterError("the JPEG encoder changed its tables between strips")
            self.fp.write(_RST7)
        self.fp.write(entropy)

    def _close(self) -> None:
        self.fp.write(b"\xff\xd9")


def _jpeg_meta(meta: PhotoMeta, width: int, height: int) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    exif = meta.exif_for(width, height, max_bytes=JPEG_MAX_EXIF)
    if exif:
        opts["exif"] = exif
    if meta.icc_profile:
        opts["icc_profile"] = meta.icc_profile
    if meta.dpi:
        opts["dpi"] = meta.dpi
    return opts


def _jpeg_layout(data: bytes) -> tuple[int, int, bytes]:
    """(end of the SOS header, offset of SOF0's height, the coding tables as bytes with the
    height zeroed): what must be equal for two strips' scans to be joined."""
    pos, tables, sof_height_at = 2, [], None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise WriterError("malformed JPEG from the encoder")
        marker = data[pos + 1]
        length = struct.unpack_from(">H", data, pos + 2)[0]
        seg = data[pos : pos + 2 + length]
        if marker == _SOF0:
            sof_height_at = pos + 5
            tables.append(seg[:5] + b"\0\0" + seg[7:])
        elif marker in (_DHT, _DQT, _DRI):
            tables.append(seg)
        elif marker == _SOS:
            if sof_height_at is None:
                raise WriterError("the JPEG encoder wrote no baseline frame header")
            tables.append(seg)
            return pos + 2 + length, sof_height_at, b"".join(tables)
        elif 0xC1 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            raise WriterError("the JPEG encoder wrote a non-baseline frame")
        pos += 2 + length
    raise WriterError("no scan in the encoder's JPEG")
