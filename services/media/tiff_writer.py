"""TIFF a strip at a time: Deflate-compressed strips with the horizontal predictor, the
directory written last (offsets are known then), EXIF and GPS as sub-directories. The
file must be seekable: the header's pointer to the directory is filled in at close."""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np
from PIL import Image, TiffImagePlugin

from services.media.image_writer import StripWriter, rows_per_strip
from services.media.metadata import PhotoMeta

_ASCII_IFD0 = (270, 271, 272, 305, 306, 315, 33432)  # description, make, model, software, date, artist, (c)
_SHORT, _LONG, _RATIONAL, _UNDEFINED, _ASCII = 3, 4, 5, 7, 2


class TiffWriter(StripWriter):
    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta, level: int = 6) -> None:
        self.strip_rows = rows_per_strip(width, share=8)
        super().__init__(fp, width, height, meta)
        self.level = level
        self._offsets: list[int] = []
        self._counts: list[int] = []
        fp.write(b"II*\x00\x00\x00\x00\x00")  # the directory's offset is filled in at close

    def _strip(self, bgr: np.ndarray, last: bool) -> None:
        rgb = np.ascontiguousarray(bgr[..., ::-1]).reshape(bgr.shape[0], -1)
        diff = rgb.copy()
        diff[:, 3:] -= rgb[:, :-3]  # predictor 2: horizontal differences per sample (mod 256)
        data = zlib.compress(diff.tobytes(), self.level)
        self._offsets.append(self.fp.tell())
        self._counts.append(len(data))
        self.fp.write(data)

    def _close(self) -> None:
        if self.fp.tell() % 2:
            self.fp.write(b"\0")
        ifd_at = self.fp.tell()
        dpi = self.meta.dpi or (72.0, 72.0)
        entries: list[tuple[int, int, int, bytes]] = [
            (256, _LONG, 1, struct.pack("<I", self.width)),
            (257, _LONG, 1, struct.pack("<I", self.height)),
            (258, _SHORT, 3, struct.pack("<3H", 8, 8, 8)),
            (259, _SHORT, 1, struct.pack("<H", 8)),  # Adobe Deflate
            (262, _SHORT, 1, struct.pack("<H", 2)),  # RGB
            (273, _LONG, len(self._offsets), struct.pack(f"<{len(self._offsets)}I", *self._offsets)),
            (277, _SHORT, 1, struct.pack("<H", 3)),
            (278, _LONG, 1, struct.pack("<I", self.strip_rows)),
            (279, _LONG, len(self._counts), struct.pack(f"<{len(self._counts)}I", *self._counts)),
            (282, _RATIONAL, 1, _rational(dpi[0])),
            (283, _RATIONAL, 1, _rational(dpi[1])),
            (284, _SHORT, 1, struct.pack("<H", 1)),
            (296, _SHORT, 1, struct.pack("<H", 2)),  # inches
            (317, _SHORT, 1, struct.pack("<H", 2)),  # horizontal predictor
        ]
        if self.meta.icc_profile:
            entries.append((34675, _UNDEFINED, len(self.meta.icc_profile), self.meta.icc_profile))
        sub_ifds = []
        exif_bytes = self.meta.exif_for(self.width, self.height)
        if exif_bytes:
            exif = Image.Exif()
            exif.load(exif_bytes)
            for tag in _ASCII_IFD0:
                value = exif.get(tag)
                if isinstance(value, str) and value:
                    entries.append(
                        (
                            tag,
                            _ASCII,
                            len(value.encode("latin-1", "replace")) + 1,
                            value.encode("latin-1", "replace") + b"\0",
                        )
                    )
            for tag in (34665, 34853):  # Exif, GPS
                sub = dict(exif.get_ifd(tag))
                if 0xA005 in sub and not isinstance(sub[0xA005], dict):  # Interop: a sub-sub-directory
                    sub[0xA005] = exif.get_ifd(0xA005)
                if sub:
                    sub_ifds.append((tag, sub))
                    entries.append((tag, _LONG, 1, b"\0\0\0\0"))  # offset filled below
        entries.sort(key=lambda e: e[0])
        # Layout after the directory: values too big for their entry, then sub-directories.
        n = len(entries)
        data_at = ifd_at + 2 + 12 * n + 4
        blob = bytearray()
        raw_entries = []
        positions = {}
        for tag, typ, count, value in entries:
            if len(value) <= 4:
                raw_entries.append(struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0"))
            else:
                at = data_at + len(blob)
                blob += value + (b"\0" if len(value) % 2 else b"")
                raw_entries.append(struct.pack("<HHI", tag, typ, count) + struct.pack("<I", at))
            positions[tag] = len(raw_entries) - 1
        for tag, sub in sub_ifds:
            at = data_at + len(blob)
            ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II*\x00\x08\x00\x00\x00", group=tag)
            for k, v in sub.items():
                ifd[k] = v
            blob += ifd.tobytes(at)
            if len(blob) % 2:
                blob += b"\0"
            i = positions[tag]
            raw_entries[i] = raw_entries[i][:8] + struct.pack("<I", at)
        self.fp.write(struct.pack("<H", n) + b"".join(raw_entries) + b"\0\0\0\0" + bytes(blob))
        end = self.fp.tell()
        self.fp.seek(4)
        self.fp.write(struct.pack("<I", ifd_at))
        self.fp.seek(end)


def _rational(value: float) -> bytes:
    return struct.pack("<II", max(1, round(value * 1000)), 1000)
